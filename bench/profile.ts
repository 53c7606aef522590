/**
 * Kernel-time profile of one training step:
 *   node --import tsx bench/profile.ts simple-cnn|user-cnn|mobilenetv2|resnet50v2 [size] [batch] [full|frozen|conv5|last-block|blocks-13|inference]
 * (`mobilenetv2 224 32 blocks-13`: the layers the brain-MRI fine-tuning recipe trains)
 *
 * Each kernel of the wasm backend is wrapped with a wall-clock timer, and three steps are timed
 * after four warm-up steps; it prints the step's wall time beside the kernels' sum (the rest is
 * JavaScript around them), per kernel name, and the kernels by name and input shapes. A kernel
 * that calls others through the engine is counted with them. `PROFILE=tf` uses `tf.profile`
 * instead, as before the eighth session: it waits between kernels, which let the heap pool's
 * workers sleep and slowed their loops several times (a strided depthwise input gradient of
 * 0.9 ms showed as 12 ms), so its figures for the heap loops are not their cost in a step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '../src/node.js';
import { type BenchModel, type BenchTrain, benchModel, benchStep, timeWasmKernels } from './common.js';

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

const byKernel = new Map<string, { ms: number; n: number }>();
const add = (key: string, ms: number) => {
  const e = byKernel.get(key) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n++;
  byKernel.set(key, e);
};
const print = (steps: number, wall: number | null) => {
  const total = [...byKernel.values()].reduce((s, v) => s + v.ms, 0) / steps;
  const count = [...byKernel.values()].reduce((s, v) => s + v.n, 0) / steps;
  console.log(
    `${wall === null ? '' : `step wall time ${wall.toFixed(1)} ms; `}kernel time ${total.toFixed(1)} ms over ${count} kernels per step`,
  );
  const byName = new Map<string, { ms: number; n: number }>();
  for (const [k, v] of byKernel) {
    const kernel = k.split(' ')[0] as string;
    const e = byName.get(kernel) ?? { ms: 0, n: 0 };
    e.ms += v.ms / steps;
    e.n += v.n / steps;
    byName.set(kernel, e);
  }
  console.log(
    `by kernel: ${[...byName]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, 15)
      .map(([k, v]) => `${k} ${v.ms.toFixed(1)} ms x${v.n}`)
      .join(' | ')}`,
  );
  for (const [k, v] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
    console.log(`${(v.ms / steps).toFixed(2).padStart(8)} ms  x${v.n / steps}  ${k}`);
};

if (process.env.PROFILE === 'tf') {
  await step();
  await step();
  const info = await tf.profile(async () => {
    await step();
  });
  for (const k of info.kernels)
    add(`${k.name} ${JSON.stringify(k.inputShapes)}`, (await k.kernelTimeMs) as number);
  print(1, null);
} else {
  const timing = timeWasmKernels((kernel, inputs, ms) => {
    const shapes = Object.values(inputs)
      .map((t) => (t as tf.TensorInfo | undefined)?.shape.join('x'))
      .join(', ');
    add(`${kernel} [${shapes}]`, ms);
  });
  // Four warm-up steps: the heap grows, pages are touched, V8 tiers the loops up.
  for (let i = 0; i < 4; i++) await step();
  const steps = 3;
  timing.on = true;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const wall = (performance.now() - t0) / steps;
  timing.on = false;
  print(steps, wall);
}
