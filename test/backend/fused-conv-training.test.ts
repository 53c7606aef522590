import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  installFusedConvTraining,
  setFusedConvTraining,
} from '../../src/backend/patches/fused-conv-training.js';
import {
  installSkipUnusedInputGradients,
  skippedInputGradients,
} from '../../src/backend/patches/unused-input-gradient.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { useBackend } from '../helpers.js';

/**
 * A user's CNN as the issue describes it, in miniature: 3x3 conv + ReLU (bias) blocks with
 * max-pooling, one without a bias and one with a strided 'valid' convolution, a dense head.
 */
function userCnn(): tfl.Sequential {
  const m = tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        inputShape: [12, 12, 1],
        filters: 32,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', useBias: false }),
      tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu' }),
      tfl.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'linear' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  m.setWeights(m.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.3, 'float32', 40 + i)));
  m.compile({ optimizer: tf.train.adam(1e-2), loss: 'categoricalCrossentropy' });
  return m;
}

/** Three `trainOnBatch` steps: the losses, the weights after them, and the kernels of the last step. */
async function trainSteps(on: boolean) {
  setFusedConvTraining(on);
  try {
    const model = userCnn();
    const x = tf.randomUniform([4, 12, 12, 1], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
    const losses = [(await model.trainOnBatch(x, y)) as number, (await model.trainOnBatch(x, y)) as number];
    const tensors = tf.memory().numTensors;
    const skipped = skippedInputGradients();
    let loss = 0;
    const info = await tf.profile(async () => {
      loss = (await model.trainOnBatch(x, y)) as number;
    });
    // No tensor left behind by the patched step (the optimizer's state exists from the first steps).
    expect(tf.memory().numTensors).toBe(tensors);
    losses.push(loss);
    const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
    tf.dispose([x, y]);
    model.dispose();
    return {
      losses,
      weights,
      kernels: info.kernels.map((k) => k.name),
      skipped: skippedInputGradients() - skipped,
    };
  } finally {
    setFusedConvTraining(true);
  }
}

describe('a Conv2D layer with a ReLU trains as one fused convolution on wasm (patches/fused-conv-training.ts)', () => {
  beforeAll(() => {
    installSkipUnusedInputGradients();
    installFusedConvTraining();
  });

  it("gives tfjs-layers' losses and weights to float32 rounding, with FusedConv2D instead of Conv2D + Add + Relu, leak-free", async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const fused = await trainSteps(true);
    const plain = await trainSteps(false);
    // The same steps to float32 rounding: XNNPACK's fused convolution and the heap loops sum from
    // the bias, where Conv2D + Add adds it last (the Winograd layers add it last either way).
    fused.losses.forEach((l, i) => expect(Math.abs(l - plain.losses[i]!)).toBeLessThan(1e-5 * Math.abs(l)));
    const worst = Math.max(
      ...fused.weights.flatMap((w, i) => w.map((v, j) => Math.abs(v - plain.weights[i]![j]!))),
    );
    expect(worst).toBeLessThan(1e-5);
    // The loss went down: the steps trained.
    expect(fused.losses[2]!).toBeLessThan(fused.losses[0]!);
    const count = (kernels: string[], name: string) => kernels.filter((k) => k === name).length;
    // tfjs-layers: three ReLU convolutions as Conv2D (+ Add where they have a bias) + Relu; the
    // linear 1x1 with its bias already runs fused.
    expect(count(plain.kernels, 'Relu')).toBe(3);
    expect(count(plain.kernels, 'Conv2D')).toBe(3);
    expect(count(plain.kernels, 'FusedConv2D')).toBe(1);
    expect(count(fused.kernels, 'Relu')).toBe(0);
    expect(count(fused.kernels, 'Conv2D')).toBe(0);
    expect(count(fused.kernels, 'FusedConv2D')).toBe(4);
    // Each gradient computed once: every layer's filter gradient, and input gradients for all
    // but the first layer, whose input (the images) no weight depends on.
    expect(count(fused.kernels, 'Conv2DBackpropFilter')).toBe(4);
    expect(count(fused.kernels, 'Conv2DBackpropInput')).toBe(count(plain.kernels, 'Conv2DBackpropInput'));
    expect(fused.skipped).toBe(1);
    expect(plain.skipped).toBe(0);
  });

  it('leaves inference, other backends and other activations to tfjs-layers', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const model = userCnn();
    const x = tf.randomUniform([2, 12, 12, 1], 0, 1, 'float32', 6);
    // Inference (no gradient recorded): tfjs fuses by itself, the patch is not needed.
    const fused = model.predict(x) as tf.Tensor;
    setFusedConvTraining(false);
    const plain = model.predict(x) as tf.Tensor;
    setFusedConvTraining(true);
    expect(Array.from(fused.dataSync())).toEqual(Array.from(plain.dataSync()));
    tf.dispose([fused, plain]);
    // On cpu the patched layer runs tfjs-layers' own path (Conv2D, Add, Relu).
    await useBackend('cpu');
    const onCpu = userCnn();
    const xc = tf.randomUniform([2, 12, 12, 1], 0, 1, 'float32', 7);
    const y = tf.oneHot(tf.tensor1d([0, 1], 'int32'), 3);
    const info = await tf.profile(async () => {
      await onCpu.trainOnBatch(xc, y);
    });
    expect(info.kernels.filter((k) => k.name === 'Relu').length).toBe(3);
    tf.dispose([xc, y, x]);
    onCpu.dispose();
    model.dispose();
  });
});
