/**
 * Run by wasm-threads.test.ts in a child process (the wasm backend initialises once per
 * process): node --import tsx wasm-threads-child.ts <threads|default> [tmp|unwritable] [fused|unfused]
 * (`fused`/`unfused`: `setRelaxedSimd(true/false)` first; the parent adds
 * --experimental-wasm-relaxed-simd where the engine needs it.)
 * Prints one JSON line: the threads in use (XNNPACK's and the heap loops' pool), a convolution's
 * output and the weights after a seeded SimpleCNN training step (its filter gradients run on the
 * heap pool), a Winograd convolution's output and gradients (its tile loops run on the heap
 * pool too) and a 1x1 convolution's gradients (heap GEMMs on the pool), so that runs with different thread counts can be compared.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  heapParallel,
  runBalanced,
  setBalancedPool,
  setMinPooledValues,
  threadsFor,
} from '../../../src/backend/wasm/heap-parallel.js';
import { heapSimd } from '../../../src/backend/wasm/heap-simd.js';
import {
  adaBelief,
  nodeWasmThreading,
  setRelaxedSimd,
  setupBackend,
  setWasmThreading,
  simpleCnn,
} from '../../../src/node.js';

const arg = process.argv[2] ?? 'default';
// A cache directory that cannot be created (under a file): threads are refused with a note.
if (process.argv[3] === 'unwritable')
  setWasmThreading(nodeWasmThreading({ cacheDir: join(import.meta.filename, 'cache') }));
if (process.argv[4]) setRelaxedSimd(process.argv[4] === 'fused');
const info = await setupBackend('wasm', arg === 'default' ? {} : { threads: Number(arg) });
// Every memory-bound loop split over the pool, however small (by default, loops over fewer than
// 2^21 values run on the caller alone): the small tensors here then test the split.
const defaultMinPooled = setMinPooledValues(0);
/** The gradients of sum(op(x, f) * probe) with respect to x and f, for a seeded random probe. */
function probedGrads(
  op: (x: tf.Tensor4D, f: tf.Tensor4D) => tf.Tensor4D,
  x: tf.Tensor4D,
  f: tf.Tensor4D,
  seed: number,
): tf.Tensor[] {
  const probe = tf.randomNormal(op(x, f).shape, 0, 1, 'float32', seed);
  return tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(op(a as tf.Tensor4D, b as tf.Tensor4D), probe)),
  )([x, f]);
}
/** The bits of the tensors' values, hashed (the values would overflow the parent's output buffer). */
function hashed(tensors: tf.Tensor[]): { count: number; sha256: string; sample: number[] } {
  const values = Float32Array.from(tensors.flatMap((t) => Array.from(t.dataSync())));
  return {
    count: values.length,
    sha256: createHash('sha256').update(new Uint8Array(values.buffer)).digest('hex'),
    // Every 97th value, to compare runs within a tolerance.
    sample: Array.from(values.filter((_, i) => i % 97 === 0)),
  };
}
const conv = tf.tidy(() => {
  const x = tf.randomNormal([2, 20, 20, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 8, 16], 0, 1, 'float32', 2) as tf.Tensor4D;
  return Array.from(tf.conv2d(x, w, 1, 'same').dataSync());
});
// A grayscale first layer, 32 outputs with a bias and ReLU6: the single-channel heap loop
// (direct-conv.ts), images split over the heap pool.
const gray = tf.tidy(() => {
  const x = tf.randomNormal([5, 20, 19, 1], 0, 1, 'float32', 11) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 1, 32], 0, 1, 'float32', 12) as tf.Tensor4D;
  const bias = tf.randomNormal([32], 0, 1, 'float32', 13);
  return hashed([tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias, activation: 'relu6' })]);
});
// 4 x 8 x 8 = 256 tiles of 16 -> 16 channels: Winograd F(4x4, 3x3) (winograd.ts).
const wino = tf.tidy(() => {
  const x = tf.randomNormal([4, 30, 30, 16], 0, 1, 'float32', 3) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 16, 16], 0, 1, 'float32', 4) as tf.Tensor4D;
  const conv = (a: tf.Tensor4D, f: tf.Tensor4D) => tf.conv2d(a, f, 1, 'same');
  return hashed([conv(x, w), ...probedGrads(conv, x, w, 5)]);
});
// 1x1 gradients over 2304 positions in two panels: the heap GEMMs (conv.ts, `isPointwise`); the
// forward pass with a bias and ReLU6 on the heap loop, rows split over the pool (direct-conv.ts).
// The same input's strided depthwise input gradient: the heap loop, images split (depthwise.ts).
const pointwise = tf.tidy(() => {
  const x = tf.randomNormal([4, 24, 24, 16], 0, 1, 'float32', 7) as tf.Tensor4D;
  const w = tf.randomNormal([1, 1, 16, 24], 0, 1, 'float32', 8) as tf.Tensor4D;
  // And a strided depthwise convolution's gradients (images split over the pool, the filter's
  // in fixed chunks: depthwise.ts).
  const d = tf.randomNormal([3, 3, 16, 1], 0, 1, 'float32', 10) as tf.Tensor4D;
  const bias = tf.randomNormal([24], 0, 1, 'float32', 14);
  return hashed([
    tf.fused.conv2d({ x, filter: w, strides: 1, pad: 'same', bias, activation: 'relu6' }),
    ...probedGrads((a, f) => tf.conv2d(a, f, 1, 'valid'), x, w, 9),
    ...probedGrads(
      (a, f) => tf.depthwiseConv2d(a, f, 2, 'valid'),
      tf.slice(x, [0, 0, 0, 0], [4, 23, 23, 16]),
      d,
      11,
    ),
  ]);
});
// The ReLU6 and ReLU gradients and a bias Add split over the pool (elementwise.ts): every value
// against the definition, over 70,001 values (ranges on whole cache lines, a ragged end).
const elementwise = tf.tidy(() => {
  const x = tf.randomNormal([70001], 0, 3, 'float32', 12);
  const dy = tf.randomNormal([70001], 0, 1, 'float32', 13);
  const y = tf
    .grad((a: tf.Tensor) => tf.relu(a))(x, dy)
    .dataSync();
  const g = tf
    .grad((a: tf.Tensor) => tf.clipByValue(a, 0, 6))(x, dy)
    .dataSync();
  const xv = x.dataSync();
  const dv = dy.dataSync();
  // A bias added over rows split on the pool (elementwise.ts `add`): 10,000 rows of 7.
  const bias = tf.tensor1d([1, -2, 3, -4, 5, -6, 7]);
  const biased = tf.add(tf.reshape(tf.slice(x, [0], [70000]), [10000, 7]), bias).dataSync();
  let wrong = 0;
  for (let i = 0; i < 70000; i++)
    if (biased[i] !== Math.fround((xv[i] as number) + [1, -2, 3, -4, 5, -6, 7][i % 7]!)) wrong++;
  for (let i = 0; i < xv.length; i++) {
    const v = xv[i] as number;
    if (y[i] !== (v > 0 ? dv[i] : 0)) wrong++;
    if (g[i] !== (v >= 0 && v <= 6 ? dv[i] : 0)) wrong++;
  }
  return { wrong, count: xv.length };
});
// The balanced pool (heap-parallel.ts `runBalanced`), driven directly: 50 groups of `gemm` calls
// that add (init = 0) a . b into disjoint 4-row blocks of a zeroed c, so a group run twice or
// never shows; then the same with argument 0 a per-thread value (thread t's copy of a, two
// identical copies), every group adding a's first rows. Then the Winograd convolution above with
// the pool's fixed shares: the same bits.
const balanced = (() => {
  const be = tf.backend() as unknown as {
    makeOutput(shape: number[], dtype: 'float32'): { dataId: object };
    getMemoryOffset(id: object): number;
    typedArrayFromHeap(t: { dataId: object }): Float32Array;
    disposeData(id: object): void;
  };
  const simd = heapSimd(be);
  if (!simd) throw new Error('heap SIMD loops unavailable');
  const [m, k, n] = [200, 12, 8];
  const av = Float32Array.from({ length: m * k }, (_, i) => ((i * 7919) % 13) - 6);
  const bv = Float32Array.from({ length: k * n }, (_, i) => ((i * 104729) % 11) - 5);
  const [a1, a2, bt, ct] = [m * k, m * k, k * n, m * n].map((size) => be.makeOutput([size], 'float32'));
  for (const t of [a1, a2]) be.typedArrayFromHeap(t as { dataId: object }).set(av);
  be.typedArrayFromHeap(bt as { dataId: object }).set(bv);
  be.typedArrayFromHeap(ct as { dataId: object }).fill(0);
  const at = (t: { dataId: object } | undefined) => be.getMemoryOffset((t as { dataId: object }).dataId);
  // Group g adds rows [4g, 4g + 4) of a . b into the same rows of c.
  const block = (g: number, a: number) => [a + g * 4 * k * 4, at(bt), at(ct) + g * 4 * n * 4, 4, k, n, k, 0];
  runBalanced(
    tf.backend(),
    'gemm',
    simd,
    Array.from({ length: m / 4 }, (_, g) => [block(g, at(a1))]),
  );
  const c = be.typedArrayFromHeap(ct as { dataId: object });
  let wrong = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let q = 0; q < k; q++) sum += (av[i * k + q] as number) * (bv[q * n + j] as number);
      if (c[i * n + j] !== sum) wrong++;
    }
  // A per-thread argument: every group adds row block 0 of a (thread t's copy) into its own block.
  be.typedArrayFromHeap(ct as { dataId: object }).fill(0);
  runBalanced(
    tf.backend(),
    'gemm',
    simd,
    Array.from({ length: m / 4 }, (_, g) => [[0, ...block(g, 0).slice(1)]]),
    { arg: 0, values: Array.from({ length: 8 }, (_, t) => at(t % 2 ? a2 : a1)) },
  );
  const c2 = be.typedArrayFromHeap(ct as { dataId: object });
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) if (c2[i * n + j] !== c[(i % 4) * n + j]) wrong++;
  for (const t of [a1, a2, bt, ct]) be.disposeData((t as { dataId: object }).dataId);
  setBalancedPool(false);
  const fixed = tf.tidy(() => {
    const x = tf.randomNormal([4, 30, 30, 16], 0, 1, 'float32', 3) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 16, 16], 0, 1, 'float32', 4) as tf.Tensor4D;
    const conv = (a: tf.Tensor4D, f: tf.Tensor4D) => tf.conv2d(a, f, 1, 'same');
    return hashed([conv(x, w), ...probedGrads(conv, x, w, 5)]);
  });
  setBalancedPool(true);
  return { wrong, fixedSame: fixed.sha256 === wino.sha256 };
})();
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
// Under the default minimum, a memory-bound loop over 4 parts just below it, at it, and a
// compute-bound one (no count of values).
setMinPooledValues(defaultMinPooled);
const split = [defaultMinPooled - 1, defaultMinPooled, undefined].map((v) => threadsFor(tf.backend(), 4, v));
// Switching the fused loops once they are loaded: refused with a reason (or nothing to switch).
let relaxedSwitch = '';
try {
  setRelaxedSimd(!info.relaxedSimd);
} catch (error) {
  relaxedSwitch = (error as Error).message;
}
console.log(
  JSON.stringify({
    threads: info.threads,
    heapThreads,
    note: info.threadsNote,
    relaxedSimd: info.relaxedSimd,
    relaxedSwitch,
    conv,
    gray,
    wino,
    pointwise,
    elementwise,
    weights,
    split,
    balanced,
  }),
);
