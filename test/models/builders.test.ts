import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  countParams,
  makeDivisible,
  mobilenetV2,
  resnet50v2,
  setupBackend,
  simpleCnn,
} from '../../src/index.js';

const conv = (m: tfl.LayersModel, name: string) => m.getLayer(name).getConfig() as Record<string, unknown>;

describe('model builders match the published Keras figures', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('ResNet50V2: 23,564,800 parameters without top (45,440 non-trainable), 25,613,800 with, 190 layers', () => {
    const m = resnet50v2();
    expect(countParams(m)).toEqual({ total: 23_564_800, trainable: 23_519_360, nonTrainable: 45_440 });
    expect(m.layers).toHaveLength(190);
    expect(m.outputs[0]!.shape).toEqual([null, 7, 7, 2048]);
    const top = resnet50v2({ includeTop: true });
    expect(countParams(top).total).toBe(25_613_800);
    expect(top.getLayer('predictions').outputShape).toEqual([null, 1000]);
    m.dispose();
    top.dispose();
  });

  it("ResNet50V2: Keras's layer names, biases only where Keras has them, BN epsilon, strides in the last block", () => {
    const m = resnet50v2({ pooling: 'avg' });
    const names = m.layers.map((l) => l.name);
    expect(names.slice(0, 8)).toEqual([
      'input_1',
      'conv1_pad',
      'conv1_conv',
      'pool1_pad',
      'pool1_pool',
      'conv2_block1_preact_bn',
      'conv2_block1_preact_relu',
      'conv2_block1_1_conv',
    ]);
    expect(names.slice(-4)).toEqual(['conv5_block3_out', 'post_bn', 'post_relu', 'avg_pool']);
    for (const n of ['conv2_block1_0_conv', 'conv2_block3_2_pad', 'conv4_block6_3_conv', 'max_pooling2d_2']) {
      expect(names).toContain(n);
    }
    expect(conv(m, 'conv1_conv').useBias).toBe(true);
    expect(conv(m, 'conv3_block1_0_conv').useBias).toBe(true);
    expect(conv(m, 'conv3_block1_1_conv').useBias).toBe(false);
    expect(conv(m, 'conv3_block1_2_conv').useBias).toBe(false);
    expect(conv(m, 'conv3_block1_3_conv').useBias).toBe(true);
    expect(conv(m, 'post_bn').epsilon).toBe(1.001e-5);
    expect(conv(m, 'conv2_block3_2_conv').strides).toEqual([2, 2]);
    expect(conv(m, 'conv4_block6_2_conv').strides).toEqual([2, 2]);
    expect(conv(m, 'conv5_block3_2_conv').strides).toEqual([1, 1]);
    expect(m.getLayer('conv2_block3_out').outputShape).toEqual([null, 28, 28, 256]);
    expect(m.outputs[0]!.shape).toEqual([null, 2048]);
    m.dispose();
  });

  it('MobileNetV2 0.35: 410,208 parameters in 155 layers, as the Keras 2.4 files in shared/models', () => {
    const m = mobilenetV2({ alpha: 0.35 });
    expect(countParams(m)).toEqual({ total: 410_208, trainable: 396_128, nonTrainable: 14_080 });
    expect(m.layers).toHaveLength(155);
    expect(m.layers.slice(0, 4).map((l) => l.name)).toEqual(['input_1', 'Conv1_pad', 'Conv1', 'bn_Conv1']);
    expect(m.layers.at(-1)!.name).toBe('out_relu');
    expect(m.getLayer('block_1_pad').getConfig().padding).toEqual([
      [0, 1],
      [0, 1],
    ]);
    expect(m.outputs[0]!.shape).toEqual([null, 7, 7, 1280]);
    const full = mobilenetV2({ includeTop: true });
    expect(countParams(full).total).toBe(3_538_984);
    expect([makeDivisible(32 * 0.35), makeDivisible(16 * 0.35), makeDivisible(1280 * 1.4)]).toEqual([
      16, 8, 1792,
    ]);
    m.dispose();
    full.dispose();
  });

  it('simpleCnn: known parameter count and a working forward pass', () => {
    const m = simpleCnn({ inputShape: [64, 64, 1], numClasses: 3, filters: [8, 16], dense: 16 });
    // conv 72 + bn 32 + conv 1152 + bn 64 + dense (16*16*16)*16+16 = 65552 + predictions 51
    expect(countParams(m)).toEqual({ total: 66_923, trainable: 66_875, nonTrainable: 48 });
    const avg = simpleCnn({
      inputShape: [64, 64, 1],
      numClasses: 3,
      filters: [8, 16],
      dense: 16,
      pooling: 'avg',
    });
    // ... with global average pooling the dense layer has 16*16+16 = 272
    expect(countParams(avg).total).toBe(1643);
    avg.dispose();
    const x = tf.zeros([2, 64, 64, 1]);
    const y = m.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([2, 3]);
    expect(Array.from(tf.tidy(() => tf.sum(y, 1)).dataSync()).map((v) => Number(v.toFixed(5)))).toEqual([
      1, 1,
    ]);
    tf.dispose([x, y]);
    m.dispose();
  });

  it('the same seed builds the same weights; another seed others', () => {
    const a = simpleCnn({ inputShape: [16, 16, 1], numClasses: 2, filters: [4], seed: 1 });
    const b = simpleCnn({ inputShape: [16, 16, 1], numClasses: 2, filters: [4], seed: 1 });
    const c = simpleCnn({ inputShape: [16, 16, 1], numClasses: 2, filters: [4], seed: 2 });
    const w = (m: tfl.LayersModel) => Array.from(m.getLayer('block1_conv').getWeights()[0]!.dataSync());
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
    [a, b, c].forEach((m) => m.dispose());
  });

  it('ResNet50V2 forward at 224 runs on wasm without leaking tensors', () => {
    const m = resnet50v2({ pooling: 'avg' });
    const x = tf.randomUniform([1, 224, 224, 3], -1, 1, 'float32', 3);
    // A first prediction folds BatchNormalization into the convolutions (weights kept with the model).
    tf.dispose(m.predict(x));
    const before = tf.memory().numTensors;
    const y = m.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([1, 2048]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    m.dispose();
  });

  it('bad options are refused clearly', () => {
    expect(() => simpleCnn({ inputShape: [8, 8, 1], numClasses: 1 })).toThrow(
      /numClasses must be an integer >= 2/,
    );
    expect(() => simpleCnn({ inputShape: [4, 4, 1], numClasses: 2 })).toThrow(
      /too small for 3 pooling steps/,
    );
    expect(() => mobilenetV2({ alpha: 0.6 })).toThrow(/alpha must be one of/);
    expect(() => resnet50v2({ inputShape: [16, 16, 3] })).toThrow(/at least 32x32/);
  });
});
