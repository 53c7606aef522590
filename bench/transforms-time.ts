/**
 * The BUSI recipe's augmentation on wasm, transform by transform: wall time per 32 images of
 * 224x224x3 (0-255 floats, seeded), and the kernels' time inside it, after three warm-up rounds,
 * the median of ten:
 *   node --import tsx bench/transforms-time.ts
 * `OFF=MedimgChannelPair,MedimgEraseRect` unregisters those kernels (the one-pass Rescale and
 * Normalize, RandomErasing's copy and fill), so the transforms run their tfjs ops, as before the
 * tenth session.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import {
  Compose,
  GaussianBlur,
  Normalize,
  RandomErasing,
  Rescale,
  setupBackend,
  type Transform,
} from '../src/node.js';
import { timeWasmKernels } from './common.js';

await setupBackend('wasm');
for (const kernel of (process.env.OFF ?? '').split(',').filter(Boolean)) tf.unregisterKernel(kernel, 'wasm');
const kernelMs = new Map<string, number>();
const timing = timeWasmKernels((kernel, _inputs, ms) =>
  kernelMs.set(kernel, (kernelMs.get(kernel) ?? 0) + ms),
);
const images = Array.from(
  { length: 32 },
  (_, i) => tf.floor(tf.randomUniform([224, 224, 3], 0, 256, 'float32', i)) as tf.Tensor3D,
);
const transforms: [string, Transform][] = [
  ['GaussianBlur', new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2], seed: 1 })],
  ['RandomErasing', new RandomErasing({ p: 0.5, seed: 1 })],
  ['Rescale', new Rescale({ scale: 1 / 255 })],
  ['Normalize', new Normalize({ mean: [0.5], std: [0.5] })],
];
transforms.push([
  'the recipe (all four)',
  new Compose(
    transforms.map(([, t]) => t),
    { seed: 1 },
  ),
]);
for (const [name, transform] of transforms) {
  const round = () => tf.tidy(() => void images.map((image) => transform.apply(image)));
  for (let i = 0; i < 3; i++) round();
  const walls: number[] = [];
  kernelMs.clear();
  timing.on = true;
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    round();
    walls.push(performance.now() - t0);
  }
  timing.on = false;
  const wall = [...walls].sort((a, b) => a - b)[5] as number;
  const kernels = [...kernelMs].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${(ms / 10).toFixed(2)}`);
  console.log(`${name.padEnd(22)} ${wall.toFixed(2)} ms per 32 images; kernels: ${kernels.join(', ')}`);
}
