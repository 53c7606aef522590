/**
 * One model timing in a child process (so a slow backend can be cut off by a timeout):
 *   node --import tsx bench/models.ts '{"backend":"wasm","model":"simple-cnn",...}'
 * Prints one JSON line: { imagesPerSecond, secondsPerStep, params, gflopPerImage, ... }.
 */
import { countParams, setupBackend } from '../src/node.js';
import { type BenchModel, type BenchTrain, benchModel, benchStep, stepGflopPerImage } from './common.js';

interface Job {
  backend: 'wasm' | 'cpu';
  /** wasm threads (default: every core). */
  threads?: number;
  model: BenchModel;
  train: BenchTrain;
  size: number;
  channels: number;
  batch: number;
  steps: number;
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const WARMUP_STEPS = 3;
const info = await setupBackend(job.backend, job.threads === undefined ? {} : { threads: job.threads });
const model = benchModel(job.model, job.train, job.size, job.channels);
const step = benchStep(model, job.train, job.batch, job.size, job.channels);
// Three warm-up steps, as on PyTorch's side: the first grows the wasm heap and later ones still
// page-fault on parts of it (`bench/steps.ts mobilenetv2 224 32 last-block`: 1290, 260, 350, then
// ~190 ms; timing the second and third read 111 images/s).
for (let i = 0; i < WARMUP_STEPS; i++) await step();
const t0 = performance.now();
for (let i = 0; i < job.steps; i++) await step();
const secondsPerStep = (performance.now() - t0) / 1000 / job.steps;
console.log(
  JSON.stringify({
    imagesPerSecond: job.batch / secondsPerStep,
    secondsPerStep,
    params: countParams(model),
    gflopPerImage: stepGflopPerImage(model, job.train),
    trainable: model.trainableWeights.length,
    threads: info.threads ?? 1,
  }),
);
