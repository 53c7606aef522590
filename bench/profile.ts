/**
 * Kernel-time profile of one training step:
 *   node --import tsx bench/profile.ts simple-cnn|user-cnn|mobilenetv2|resnet50v2 [size] [batch] [full|frozen|conv5|last-block|blocks-13]
 * (`mobilenetv2 224 32 blocks-13`: the layers the brain-MRI fine-tuning recipe trains)
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '../src/node.js';
import { type BenchModel, type BenchTrain, benchModel, benchStep } from './common.js';

const [name = 'simple-cnn', sizeArg, batchArg, trainArg = 'full'] = process.argv.slice(2);
const trainMode = trainArg as BenchTrain;
const size = Number(sizeArg ?? 128);
const batch = Number(batchArg ?? 32);
const backend = await setupBackend(
  'wasm',
  process.env.THREADS ? { threads: Number(process.env.THREADS) } : {},
);
console.log(`wasm threads: ${backend.threads}`);
const channels = name === 'simple-cnn' || name === 'user-cnn' ? 1 : 3;
const model = benchModel(name as BenchModel, trainMode, size, channels);
const step = benchStep(model, trainMode, batch, size, channels);
// Two warm-up steps: the first grows the heap, the second still touches some of it for the first time.
await step();
await step();
const info = await tf.profile(async () => {
  await step();
});
const byKernel = new Map<string, { ms: number; n: number }>();
let total = 0;
for (const k of info.kernels) {
  const ms = (await k.kernelTimeMs) as number;
  const key = `${k.name} ${k.name.startsWith('Conv') || k.name.startsWith('Depthwise') || k.name === process.env.SHAPES_OF ? JSON.stringify(k.inputShapes) : ''}`;
  const e = byKernel.get(key) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n++;
  byKernel.set(key, e);
  total += ms;
}
console.log(`total kernel time ${total.toFixed(0)} ms over ${info.kernels.length} kernels`);
for (const [k, v] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
  console.log(`${v.ms.toFixed(0).padStart(7)} ms  x${v.n}  ${k}`);
