import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { installKerasBatchNorm } from '../../src/index.js';
import { useBackend } from '../helpers.js';

function bnModel(fused: boolean) {
  const m = tfl.sequential({
    layers: [
      tfl.layers.batchNormalization({
        inputShape: [5, 6, 4],
        momentum: 0.9,
        epsilon: 1e-3,
        betaInitializer: 'randomNormal',
        gammaInitializer: 'randomNormal',
      }),
    ],
  });
  if (fused) installKerasBatchNorm(m);
  return m;
}

describe.each(['cpu', 'wasm'] as const)('fused training-mode BatchNormalization (%s)', (backend) => {
  it('equals tfjs-layers: output, gradients for x, gamma and beta, and moving statistics', async () => {
    await useBackend(backend);
    if (backend === 'wasm') (await import('../../src/backend/wasm-kernels.js')).registerWasmTrainingKernels();
    const plain = bnModel(false);
    const fused = bnModel(true);
    fused.setWeights(plain.getWeights());
    const x = tf.randomNormal([3, 5, 6, 4], 2, 3, 'float32', 7);
    const probe = tf.randomNormal([3, 5, 6, 4], 0, 1, 'float32', 8);
    const run = (m: tfl.LayersModel) => {
      const [gamma, beta] = m.trainableWeights.map((w) => w.read());
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(m.apply(x, { training: true }) as tf.Tensor, probe)) as tf.Scalar,
        [gamma as tf.Variable, beta as tf.Variable],
      );
      const dx = tf.grad((a: tf.Tensor) =>
        tf.sum(tf.mul(m.apply(a, { training: true }) as tf.Tensor, probe)),
      )(x);
      return {
        y: value.dataSync()[0]!,
        dgamma: grads[(gamma as tf.Variable).name]!.dataSync(),
        dbeta: grads[(beta as tf.Variable).name]!.dataSync(),
        dx: dx.dataSync(),
        stats: m
          .getWeights()
          .slice(2)
          .map((w) => Array.from(w.dataSync())),
      };
    };
    const a = run(plain);
    const b = run(fused);
    const close = (p: ArrayLike<number>, q: ArrayLike<number>, tol: number) => {
      for (let i = 0; i < p.length; i++)
        expect(Math.abs(p[i]! - q[i]!)).toBeLessThan(tol * (1 + Math.abs(p[i]!)));
    };
    expect(b.y).toBeCloseTo(a.y, 3);
    close(b.dgamma, a.dgamma, 1e-4);
    close(b.dbeta, a.dbeta, 1e-4);
    close(b.dx, a.dx, 1e-4);
    // Moving statistics after the same updates (two training calls each: value and dx).
    b.stats.forEach((s, i) => close(s, a.stats[i]!, 1e-5));
    tf.dispose([x, probe]);
    plain.dispose();
    fused.dispose();
  });

  it('leaks no tensors: repeated forward + gradient calls keep the count flat (moving stats rewritten in place)', async () => {
    await useBackend(backend);
    const m = bnModel(true);
    const x = tf.randomNormal([2, 5, 6, 4], 0, 1, 'float32', 9);
    const call = () =>
      tf.dispose(tf.grad((a: tf.Tensor) => tf.sum(m.apply(a, { training: true }) as tf.Tensor))(x));
    call();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) call();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    m.dispose();
  });
});
