import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  installEarlyGradientRelease,
  setEarlyGradientRelease,
} from '../../src/backend/patches/early-gradient-release.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { simpleCnn } from '../../src/index.js';
import { useBackend } from '../helpers.js';

/** A residual chain: conv -> batch norm -> relu, with identity shortcuts, ending in a sum. */
function residualChain(x: tf.Tensor4D, filters: tf.Tensor4D[]): tf.Scalar {
  let h: tf.Tensor4D = x;
  for (const f of filters) {
    const y = tf.relu(
      tf.batchNorm(tf.conv2d(h, f, 1, 'same'), tf.scalar(0.1), tf.scalar(2), tf.scalar(0.3), tf.scalar(1.5)),
    );
    h = tf.add(h, y);
  }
  return tf.sum(tf.square(h));
}

/** Runs `fn` with early release on or off; returns the values it computed, checking for leaks. */
function run(early: boolean, fn: () => tf.Tensor[]): Float32Array[] {
  setEarlyGradientRelease(early);
  try {
    const before = tf.memory().numTensors;
    const out = fn();
    const values = out.map((t) => t.dataSync() as Float32Array);
    tf.dispose(out);
    expect(tf.memory().numTensors).toBe(before);
    return values;
  } finally {
    setEarlyGradientRelease(true);
  }
}

describe('early release of backprop memory', () => {
  beforeAll(async () => {
    await useBackend('cpu');
    installEarlyGradientRelease();
    installEarlyGradientRelease(); // idempotent
  });

  it('gives the same gradients on a residual conv/BN/ReLU chain, without leaks', () => {
    const x = tf.randomNormal([2, 16, 16, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
    const filters = Array.from(
      { length: 6 },
      (_, i) => tf.randomNormal([3, 3, 8, 8], 0, 0.2, 'float32', 10 + i) as tf.Tensor4D,
    );
    const grads = () =>
      tf.grads((a: tf.Tensor, ...w: tf.Tensor[]) => residualChain(a as tf.Tensor4D, w as tf.Tensor4D[]))([
        x,
        ...filters,
      ]);
    const off = run(false, grads);
    const on = run(true, grads);
    expect(on.length).toBe(7);
    on.forEach((v, i) => expect([...v], `gradient ${i}`).toEqual([...off[i]!]));
    tf.dispose([x, ...filters]);
  });

  it('measures the peak: the whole-backward cost of keeping every gradient is gone', async () => {
    const x = tf.randomNormal([2, 16, 16, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
    const filters = Array.from(
      { length: 8 },
      (_, i) => tf.randomNormal([3, 3, 8, 8], 0, 0.2, 'float32', 20 + i) as tf.Tensor4D,
    );
    const peakOf = async (early: boolean) => {
      setEarlyGradientRelease(early);
      try {
        const start = tf.memory().numBytes;
        const info = await tf.profile(() => {
          tf.dispose(tf.grads((...w: tf.Tensor[]) => residualChain(x, w as tf.Tensor4D[]))(filters));
        });
        return info.peakBytes - start;
      } finally {
        setEarlyGradientRelease(true);
      }
    };
    const off = await peakOf(false);
    const on = await peakOf(true);
    const activation = x.size * 4;
    // Measured: a peak of 119 activation-sized buffers without early release, 84 with it (the
    // gradients of finished blocks no longer pile up on the forward pass's tensors).
    expect(off - on).toBeGreaterThan(16 * activation);
    tf.dispose([x, ...filters]);
  });

  it('leaves a dy the caller supplies, gradients passed through unchanged, and higher-order gradients intact', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const dy = tf.tensor1d([1, 10, 100]);
    // Reshape, clone and identity-like ops pass their gradient on as it is.
    const g = tf.grad((a: tf.Tensor) => tf.reshape(tf.clone(tf.reshape(a, [3, 1])), [3]))(x, dy);
    expect([...g.dataSync()]).toEqual([1, 10, 100]);
    expect(dy.isDisposed).toBe(false);
    expect([...dy.dataSync()]).toEqual([1, 10, 100]);
    // d2/dx2 of x^3 = 6x: the inner backward runs with the tape kept (gradientDepth > 0).
    const second = tf.grad((a: tf.Tensor) => tf.sum(tf.grad((b: tf.Tensor) => tf.sum(tf.pow(b, 3)))(a)))(x);
    expect([...second.dataSync()]).toEqual([6, 12, 18]);
    tf.dispose([x, dy, g, second]);
  });

  it('keeps a gradient that a gradient function passes on as it is (the same tensor object)', () => {
    // A kernel whose gradient returns dy itself: that tensor becomes the next node's dy.
    tf.registerKernel({
      kernelName: 'MedimgTestPassThrough',
      backendName: 'cpu',
      kernelFunc: ({ inputs, backend }) =>
        tf.getKernel('Identity', 'cpu')!.kernelFunc({ inputs, backend, attrs: {} }) as tf.TensorInfo,
    });
    tf.registerGradient({
      kernelName: 'MedimgTestPassThrough',
      gradFunc: (dy) => ({ x: () => dy as tf.Tensor }),
    });
    installEarlyGradientRelease();
    const x = tf.tensor1d([1, -2, 3]);
    const g = tf.grad((a: tf.Tensor) =>
      tf.sum(tf.square(tf.engine().runKernel('MedimgTestPassThrough', { x: tf.square(a) }) as tf.Tensor)),
    )(x);
    // d/dx x^4 = 4x^3
    expect([...g.dataSync()]).toEqual([4, -32, 108]);
    tf.dispose([x, g]);
  });

  it('a SimpleCNN trains to the same weights with and without it (fit, several steps)', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    installEarlyGradientRelease(); // wraps the gradients registered for wasm as well
    const train = async (early: boolean) => {
      setEarlyGradientRelease(early);
      const before = tf.memory().numTensors;
      try {
        const model = simpleCnn({ inputShape: [24, 24, 1], numClasses: 3, seed: 5 });
        const optimizer = tf.train.adam(1e-2);
        model.compile({ optimizer, loss: 'categoricalCrossentropy' });
        const xs = tf.randomNormal([12, 24, 24, 1], 0, 1, 'float32', 7);
        const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], 'int32'), 3);
        await model.fit(xs, ys, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0 });
        const weights = model.getWeights().map((w) => [...w.dataSync()]);
        tf.dispose([xs, ys]);
        model.dispose();
        optimizer.dispose();
        return { weights, left: tf.memory().numTensors - before };
      } finally {
        setEarlyGradientRelease(true);
      }
    };
    const off = await train(false);
    const on = await train(true);
    // Early release leaves no more tensors behind than training without it.
    expect(on.left).toBe(off.left);
    expect(on.weights).toEqual(off.weights);
  });
});
