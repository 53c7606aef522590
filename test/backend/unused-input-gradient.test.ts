import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  installSkipUnusedInputGradients,
  setSkipUnusedInputGradients,
  skippedInputGradients,
} from '../../src/backend/patches/unused-input-gradient.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { useBackend } from '../helpers.js';

/** MobileNetV2's stem and first block in miniature: pad, strided conv, BN, ReLU6, depthwise, 1x1. */
function stemModel(): tfl.LayersModel {
  const layers: tfl.layers.Layer[] = [
    tfl.layers.zeroPadding2d({
      inputShape: [9, 9, 3],
      padding: [
        [0, 1],
        [0, 1],
      ],
    }),
    tfl.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, useBias: false }),
    tfl.layers.batchNormalization(),
    tfl.layers.reLU({ maxValue: 6 }),
    tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }),
    tfl.layers.conv2d({ filters: 5, kernelSize: 1, activation: 'relu' }),
    tfl.layers.globalAveragePooling2d({}),
    tfl.layers.dense({ units: 3 }),
  ];
  const m = tfl.sequential({ layers });
  // Deterministic weights, so that the two runs compared below see the same network.
  m.setWeights(m.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.5, 'float32', 100 + i)));
  return m;
}

/** The kernels one gradient computation ran, and the gradients it returned (values). */
async function gradientsOf(on: boolean, f: () => { value: tf.Scalar; grads: tf.NamedTensorMap }) {
  setSkipUnusedInputGradients(on);
  try {
    const before = tf.memory().numTensors;
    let values: number[][] = [];
    const info = await tf.profile(() => {
      const { value, grads } = f();
      values = [[...value.dataSync()], ...Object.values(grads).map((g) => [...g.dataSync()])];
      tf.dispose([value, ...Object.values(grads)]);
    });
    expect(tf.memory().numTensors).toBe(before);
    return { values, kernels: info.kernels.map((k) => `${k.name} ${JSON.stringify(k.outputShapes)}`) };
  } finally {
    setSkipUnusedInputGradients(true);
  }
}

describe('the unused input gradient of a first convolution is skipped', () => {
  beforeAll(() => installSkipUnusedInputGradients());

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`on ${backend}: same gradients, without the image's gradient (a layers stem, a fused depthwise)`, async () => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const x = tf.randomUniform([2, 9, 9, 3], -1, 1, 'float32', 7);
      const y = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
      const model = stemModel();
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const w = tf.variable(tf.randomNormal([3, 3, 3, 1], 0, 1, 'float32', 9), true, `dw_filter_${backend}`);
      const bias = tf.variable(tf.randomNormal([3], 0, 1, 'float32', 10), true, `dw_bias_${backend}`);
      const cases = [
        {
          // tfjs-layers' Conv2D (fused conv2d) after ZeroPadding2D, as MobileNetV2's stem.
          kernel: 'Conv2DBackpropInput',
          step: () =>
            tf.variableGrads(
              () =>
                tf.losses.softmaxCrossEntropy(
                  y,
                  model.apply(x, { training: true }) as tf.Tensor,
                ) as tf.Scalar,
              vars,
            ),
        },
        {
          // tf.fused.depthwiseConv2d, linear, straight on a padded image (tfjs-layers'
          // DepthwiseConv2D is not fused, and a fused op with an activation is unfused while
          // gradients are recorded: tfjs already skips those input gradients).
          kernel: 'DepthwiseConv2dNativeBackpropInput',
          step: () =>
            tf.variableGrads(
              () =>
                tf.sum(
                  tf.square(
                    tf.fused.depthwiseConv2d({
                      x: tf.pad(x, [
                        [0, 0],
                        [0, 1],
                        [0, 1],
                        [0, 0],
                      ]) as tf.Tensor4D,
                      filter: w as unknown as tf.Tensor4D,
                      strides: 1,
                      pad: 'valid',
                      bias,
                    }),
                  ),
                ) as tf.Scalar,
              [w, bias],
            ),
        },
      ];
      for (const { kernel, step } of cases) {
        const count = skippedInputGradients();
        const on = await gradientsOf(true, step);
        expect(skippedInputGradients() - count, kernel).toBe(1);
        const off = await gradientsOf(false, step);
        expect(on.values).toEqual(off.values);
        // The padded image is [2, 10, 10, 3]: its gradient ran only with the patch off.
        const imageGrad = `${kernel} [[2,10,10,3]]`;
        expect(off.kernels).toContain(imageGrad);
        expect(on.kernels).not.toContain(imageGrad);
        // The value and every variable's gradient, none of them all zeros.
        expect(on.values.length).toBeGreaterThan(2);
        for (const v of on.values) expect(v.some((u) => u !== 0)).toBe(true);
      }
      tf.dispose([x, y, w, bias]);
      model.dispose();
    });
  }

  it('still computes the input gradient when it is asked for (saliency) or a variable feeds the input', async () => {
    await useBackend('cpu');
    const model = stemModel();
    const x = tf.randomUniform([1, 9, 9, 3], 0, 1, 'float32', 8);
    const saliency = (on: boolean) => {
      setSkipUnusedInputGradients(on);
      try {
        return tf.tidy(() => [
          ...tf
            .grad((image: tf.Tensor) => tf.sum(model.apply(image) as tf.Tensor))(x)
            .dataSync(),
        ]);
      } finally {
        setSkipUnusedInputGradients(true);
      }
    };
    const withPatch = saliency(true);
    expect(withPatch).toEqual(saliency(false));
    expect(withPatch.some((v) => v !== 0)).toBe(true);
    // A learned input scale in front of the stem: its gradient flows through the image gradient.
    const scale = tf.variable(tf.scalar(1.5), true, 'input_scale');
    const scaled = (on: boolean) => {
      setSkipUnusedInputGradients(on);
      try {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(model.apply(tf.mul(x, scale), { training: true }) as tf.Tensor) as tf.Scalar,
          [scale],
        );
        const g = grads.input_scale!.dataSync()[0]!;
        tf.dispose([value, ...Object.values(grads)]);
        return g;
      } finally {
        setSkipUnusedInputGradients(true);
      }
    };
    const g = scaled(true);
    expect(g).toBe(scaled(false));
    expect(g).not.toBe(0);
    tf.dispose([x, scale]);
    model.dispose();
  });
  it('leaves higher-order gradients alone: a nested gradient in the same recording turns skipping off', async () => {
    await useBackend('cpu');
    const model = stemModel();
    const x = tf.randomUniform([1, 9, 9, 3], 0, 1, 'float32', 11);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const count = skippedInputGradients();
    const { value, grads } = tf.variableGrads(() => {
      // A gradient taken inside the recorded function (as a gradient penalty would).
      const inner = tf.grad((a: tf.Tensor) => tf.sum(tf.square(a)))(tf.scalar(2));
      return tf.add(tf.sum(model.apply(x, { training: true }) as tf.Tensor), tf.mul(inner, 0)) as tf.Scalar;
    }, vars);
    expect(skippedInputGradients()).toBe(count);
    expect(Object.keys(grads).length).toBe(vars.length);
    tf.dispose([value, x, ...Object.values(grads)]);
    model.dispose();
  });
});
