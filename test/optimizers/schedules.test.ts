import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  cosineDecay,
  getLearningRate,
  learningRateScheduler,
  ReduceOnPlateau,
  reduceLearningRateOnPlateau,
  setLearningRate,
  stepDecay,
} from '../../src/index.js';
import { useBackend } from '../helpers.js';

describe('learning-rate schedules', () => {
  beforeAll(() => useBackend('cpu'));

  it('stepDecay equals PyTorch StepLR', () => {
    const s = stepDecay({ initial: 0.1, stepSize: 3, gamma: 0.5 });
    expect([0, 1, 2, 3, 5, 6, 9].map(s)).toEqual([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]);
  });

  it('cosineDecay: linear warm-up, then cosine to the floor (worked values)', () => {
    const s = cosineDecay({ initial: 1, epochs: 12, warmupEpochs: 2, minLearningRate: 0.1 });
    expect(s(0)).toBeCloseTo(1 / 3, 12);
    expect(s(1)).toBeCloseTo(2 / 3, 12);
    expect(s(2)).toBeCloseTo(1, 12);
    expect(s(7)).toBeCloseTo(0.55, 12); // halfway: floor + (1 - floor) / 2
    expect(s(12)).toBeCloseTo(0.1, 12);
    expect(() => cosineDecay({ initial: 1, epochs: 2, warmupEpochs: 2 })).toThrow(
      /warmupEpochs \(2\) must be smaller/,
    );
  });

  it('ReduceOnPlateau waits `patience` epochs without improvement, then multiplies by `factor`', () => {
    const p = new ReduceOnPlateau({ patience: 2, factor: 0.5 });
    const losses = [1.0, 0.9, 0.95, 0.92, 0.91, 0.89, 0.9, 0.9, 0.9];
    let lr = 0.1;
    const lrs = losses.map((l) => {
      lr = p.step(l, lr);
      return lr;
    });
    expect(lrs).toEqual([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025]);
    const max = new ReduceOnPlateau({ patience: 0, factor: 0.1, mode: 'max' });
    expect(max.step(0.8, 1)).toBe(1);
    expect(max.step(0.7, 1)).toBeCloseTo(0.1, 12);
  });

  it('setLearningRate changes the next step of Adam, SGD, Momentum and AdaBelief', () => {
    const optimizers: tf.Optimizer[] = [
      tf.train.adam(0.1),
      tf.train.sgd(0.1),
      tf.train.momentum(0.1, 0.9),
      adaBelief({ learningRate: 0.1, rectify: false }),
    ];
    for (const opt of optimizers) {
      const name = opt.getClassName();
      const run = (lr: number) => {
        const w = tf.variable(tf.scalar(1));
        const o = opt.getClassName() === 'SGD' ? tf.train.sgd(0.1) : opt;
        setLearningRate(o, lr);
        expect(getLearningRate(o), name).toBe(lr);
        o.minimize(() => tf.square(w) as tf.Scalar, false, [w]);
        const moved = 1 - w.dataSync()[0]!;
        w.dispose();
        return moved;
      };
      const big = run(0.1);
      const small = run(0.001);
      expect(small, name).toBeGreaterThan(0);
      expect(small, name).toBeLessThan(big / 5);
    }
  });

  it('works as tfjs-layers fit callbacks: the scheduler sets the rate per epoch, plateau reduces it', async () => {
    const model = tfl.sequential({ layers: [tfl.layers.dense({ inputShape: [2], units: 1 })] });
    const opt = adaBelief({ learningRate: 1 });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const xs = tf.tensor2d([
      [0, 1],
      [1, 0],
      [1, 1],
      [0, 0],
    ]);
    const ys = tf.tensor2d([[1], [2], [3], [0]]);
    const seen: number[] = [];
    await model.fit(xs, ys, {
      epochs: 4,
      verbose: 0,
      callbacks: [
        learningRateScheduler(opt, stepDecay({ initial: 0.1, stepSize: 2, gamma: 0.1 })),
        { onEpochEnd: async () => void seen.push(getLearningRate(opt)) },
      ],
    });
    expect(seen.map((v) => Number(v.toPrecision(6)))).toEqual([0.1, 0.1, 0.01, 0.01]);

    const plateau = reduceLearningRateOnPlateau(opt, {
      monitor: 'loss',
      patience: 0,
      factor: 0.5,
      mode: 'max',
    });
    setLearningRate(opt, 0.2);
    await model.fit(xs, ys, { epochs: 3, verbose: 0, callbacks: [plateau] });
    // With mode 'max' a falling loss never "improves" after the first epoch: halved twice.
    expect(getLearningRate(opt)).toBeCloseTo(0.05, 12);
    tf.dispose([xs, ys]);
    model.dispose();
  });
});
