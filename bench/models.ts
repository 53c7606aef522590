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
const info = await setupBackend(job.backend, job.threads === undefined ? {} : { threads: job.threads });
const model = benchModel(job.model, job.train, job.size, job.channels);
const step = benchStep(model, job.train, job.batch, job.size, job.channels);
// Two warm-up steps, as on PyTorch's side: the first grows the wasm heap, the second still
// page-faults on part of it (timed, MobileNetV2's last-block row read 111 images/s, its steady
// steps ~180).
await step();
await step();
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
