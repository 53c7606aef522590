/**
 * GaussianBlur on wasm: a SHA-256 of its outputs on five shapes (RGB and gray, square and
 * [kx, ky] kernels, edges reflected) and the time of one 224x224x3 blur with 5 taps, the BUSI
 * recipe's (mean of 200, after the hash's warm-up):
 *   node --import tsx bench/blur-time.ts
 * Run it in a git worktree of each of two commits, alternating, to compare them: the hash says
 * whether the numbers changed, the time what the change bought.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { gaussianBlur, setupBackend } from '../src/node.js';

await setupBackend('wasm');
const hash = createHash('sha256');
const cases: [[number, number, number, number], number | [number, number], number][] = [
  [[2, 37, 41, 3], 5, 1.3],
  [[1, 224, 224, 3], 5, 0.7],
  [[3, 9, 7, 1], 3, 2],
  [[1, 30, 20, 3], [7, 3], 1.1],
  [[1, 6, 5, 3], 5, 1.9],
];
for (const [shape, kernelSize, sigma] of cases) {
  const y = tf.tidy(() =>
    gaussianBlur(tf.randomUniform(shape, 0, 255, 'float32', 7) as tf.Tensor4D, { kernelSize, sigma }),
  );
  hash.update(new Uint8Array((y.dataSync() as Float32Array).buffer));
  y.dispose();
}
const image = tf.randomUniform([1, 224, 224, 3], 0, 255, 'float32', 8) as tf.Tensor4D;
const t0 = performance.now();
for (let i = 0; i < 200; i++) gaussianBlur(image, { kernelSize: 5, sigma: 1.2 }).dispose();
console.log(`${hash.digest('hex')} ${((performance.now() - t0) / 200).toFixed(3)} ms per 224x224x3 blur`);
