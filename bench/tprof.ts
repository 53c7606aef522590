import * as tf from '@tensorflow/tfjs-core';
import {
  Compose,
  GaussianBlur,
  Grayscale,
  Letterbox,
  Normalize,
  RandomErasing,
  setupBackend,
} from '../src/index.js';

await setupBackend('wasm');
const batch = tf.randomUniform([32, 256, 256, 3], 0, 255, 'float32', 1) as tf.Tensor4D;
for (const [name, t] of [
  ['letterbox', new Letterbox({ height: 224, width: 224 })],
  ['grayscale', new Grayscale()],
  ['blur', new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] })],
  ['erasing', new RandomErasing({ p: 1 })],
  ['normalize', new Normalize({ mean: [127.5], std: [127.5] })],
] as const) {
  const input =
    name === 'letterbox' || name === 'grayscale'
      ? batch
      : tf.tidy(() => new Grayscale().apply(new Letterbox({ height: 224, width: 224 }).apply(batch)));
  tf.dispose(t.apply(input));
  const t0 = performance.now();
  tf.tidy(() => t.apply(input));
  console.log(name, (performance.now() - t0).toFixed(0), 'ms per batch of 32');
}
void Compose;
