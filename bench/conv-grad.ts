import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers';
import { setupBackend } from '../src/index.js';

const shapes = {
  x: [8, 64, 64, 32] as [number, number, number, number],
  f: [3, 3, 32, 64] as [number, number, number, number],
};
async function time(backend: 'cpu' | 'wasm', which: 'input' | 'filter' | 'forward', reps: number) {
  await setupBackend(backend);
  const x = tf.randomNormal(shapes.x, 0, 1, 'float32', 1) as tf.Tensor4D;
  const f = tf.randomNormal(shapes.f, 0, 1, 'float32', 2) as tf.Tensor4D;
  const dy = tf.randomNormal([8, 64, 64, 64], 0, 1, 'float32', 3) as tf.Tensor4D;
  const run = () =>
    tf
      .tidy(() =>
        which === 'forward'
          ? tf.conv2d(x, f, 1, 'same')
          : which === 'input'
            ? tf.conv2dTranspose(dy, f, shapes.x, 1, 'same')
            : tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 1, 'same'), dy)))(f),
      )
      .dataSync();
  run();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  const ms = (performance.now() - t0) / reps;
  const gflop = (2 * 8 * 64 * 64 * 9 * 32 * 64) / 1e9;
  console.log(`${backend} ${which}: ${ms.toFixed(1)} ms, ${(gflop / (ms / 1000)).toFixed(1)} GFLOP/s`);
  tf.dispose([x, f, dy]);
}
await time('wasm', 'forward', 5);
await time('wasm', 'input', 5);
await time('wasm', 'filter', 3);
