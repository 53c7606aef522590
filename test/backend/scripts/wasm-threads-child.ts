/**
 * Run by wasm-threads.test.ts in a child process (the wasm backend initialises once per
 * process): node --import tsx wasm-threads-child.ts <threads|default>
 * Prints one JSON line: the threads in use (XNNPACK's and the heap loops' pool), a convolution's
 * output and the weights after a seeded SimpleCNN training step (its filter gradients run on the
 * heap pool), so that runs with different thread counts can be compared.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { heapParallel } from '../../../src/backend/wasm/heap-parallel.js';
import {
  adaBelief,
  nodeWasmThreading,
  setupBackend,
  setWasmThreading,
  simpleCnn,
} from '../../../src/node.js';

const arg = process.argv[2] ?? 'default';
// A cache directory that cannot be created (under a file): threads are refused with a note.
if (process.argv[3] === 'unwritable')
  setWasmThreading(nodeWasmThreading({ cacheDir: join(import.meta.filename, 'cache') }));
const info = await setupBackend('wasm', arg === 'default' ? {} : { threads: Number(arg) });
const conv = tf.tidy(() => {
  const x = tf.randomNormal([2, 20, 20, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 8, 16], 0, 1, 'float32', 2) as tf.Tensor4D;
  return Array.from(tf.conv2d(x, w, 1, 'same').dataSync());
});
const model = simpleCnn({
  inputShape: [32, 32, 1],
  numClasses: 3,
  filters: [8, 16],
  dense: 16,
  dropout: 0,
  seed: 5,
});
const x = tf.randomUniform([8, 32, 32, 1], 0, 1, 'float32', 6);
const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
const opt = adaBelief({ learningRate: 1e-2 });
const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
for (let i = 0; i < 2; i++) {
  opt.minimize(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    false,
    vars,
  );
}
const weights = vars.flatMap((v) => Array.from(v.dataSync()));
const heapThreads = heapParallel(tf.backend())?.threads ?? 1;
console.log(JSON.stringify({ threads: info.threads, heapThreads, note: info.threadsNote, conv, weights }));
