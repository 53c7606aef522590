import { readFileSync } from 'node:fs';
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

const reference = JSON.parse(
  readFileSync(new URL('../fixtures/batchnorm.json', import.meta.url), 'utf8'),
) as {
  momentum: number;
  epsilon: number;
  initial: { gamma: number[]; beta: number[]; movingMean: number[]; movingVariance: number[] };
  steps: { shape: number[]; x: number[]; y: number[]; movingMean: number[]; movingVariance: number[] }[];
};

describe.each(['cpu', 'wasm'] as const)('fused training-mode BatchNormalization (%s)', (backend) => {
  it('matches PyTorch 1.13: outputs and moving statistics (unbiased variance) over batches of different sizes', async () => {
    await useBackend(backend);
    const layer = tfl.layers.batchNormalization({
      momentum: reference.momentum,
      epsilon: reference.epsilon,
    });
    const m = tfl.sequential({ layers: [tfl.layers.inputLayer({ inputShape: [null, null, 4] }), layer] });
    installKerasBatchNorm(m);
    const init = reference.initial;
    layer.setWeights(
      [init.gamma, init.beta, init.movingMean, init.movingVariance].map((v) => tf.tensor1d(v)),
    );
    const before = tf.memory().numTensors;
    for (const step of reference.steps) {
      const x = tf.tensor(step.x, step.shape);
      const y = m.apply(x, { training: true }) as tf.Tensor;
      const out = y.dataSync();
      for (let i = 0; i < out.length; i++) expect(Math.abs(out[i]! - step.y[i]!)).toBeLessThan(1e-5);
      const [, , mean, variance] = layer.getWeights();
      for (let c = 0; c < 4; c++) {
        expect(mean!.dataSync()[c]).toBeCloseTo(step.movingMean[c]!, 5);
        expect(variance!.dataSync()[c]).toBeCloseTo(step.movingVariance[c]!, 5);
      }
      tf.dispose([x, y]);
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('equals tfjs-layers: output, gradients for x, gamma and beta, and moving statistics', async () => {
    await useBackend(backend);
    if (backend === 'wasm') (await import('../../src/backend/wasm/index.js')).registerWasmTrainingKernels();
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
    // Moving means after the same updates (two training calls each: value and dx). The moving
    // variance differs on purpose: it takes the unbiased batch variance, as Keras on TensorFlow
    // and PyTorch do (checked against PyTorch below), where tfjs-layers takes the biased one.
    close(b.stats[0]!, a.stats[0]!, 1e-5);
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
