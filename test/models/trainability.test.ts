import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  arraySource,
  blockNames,
  DEFAULT_FINE_TUNE_BN_MOMENTUM,
  flattenLayers,
  installKerasBatchNorm,
  mobilenetV2,
  recalibrateBatchNorm,
  setupBackend,
  transferModel,
  unfreeze,
} from '../../src/index.js';

const values = (m: tfl.LayersModel, layer: string, i: number) =>
  Array.from(m.getLayer(layer).getWeights()[i]!.dataSync());
const findLayer = (m: tfl.LayersModel, name: string) =>
  (m.getLayer('mobilenetv2_0.35_32') as tfl.LayersModel).getLayer(name);
const weightOf = (m: tfl.LayersModel, layer: string, i: number) =>
  Array.from(findLayer(m, layer).getWeights()[i]!.dataSync());

describe('freezing, unfreezing and BatchNormalization semantics', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('a frozen backbone keeps its weights and BN moving statistics through fit; the head trains', async () => {
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 });
    const model = transferModel({ backbone, numClasses: 3, seed: 2 });
    expect(model.trainableWeights.map((w) => w.originalName)).toEqual([
      'head_predictions/kernel',
      'head_predictions/bias',
    ]);
    model.compile({ optimizer: adaBelief({ learningRate: 0.01 }), loss: 'categoricalCrossentropy' });
    const xs = tf.randomUniform([8, 32, 32, 3], -1, 1, 'float32', 3);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
    const meanBefore = weightOf(model, 'block_16_project_BN', 2); // moving_mean
    const kernelBefore = weightOf(model, 'Conv1', 0);
    // The untrained backbone's features are tiny; the head bias gets the full gradient (p - y).
    const headBefore = values(model, 'head_predictions', 1);
    await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
    expect(weightOf(model, 'block_16_project_BN', 2)).toEqual(meanBefore);
    expect(weightOf(model, 'Conv1', 0)).toEqual(kernelBefore);
    expect(values(model, 'head_predictions', 1)).not.toEqual(headBefore);

    // Unfreezing the last block: training is refused until compiled again with a fresh optimizer.
    expect(blockNames(model).slice(-2)).toEqual(['block_15', 'block_16']);
    unfreeze(model, { lastBlocks: 1 });
    await expect(model.fit(xs, ys, { epochs: 1, verbose: 0 })).rejects.toThrow(
      /Error in fit: which layers train changed .* call model.compile again with a fresh optimizer/,
    );
    expect(() => model.compile({ optimizer: model.optimizer, loss: 'categoricalCrossentropy' })).toThrow(
      /pass a fresh optimizer/,
    );
    model.compile({ optimizer: adaBelief({ learningRate: 0.01 }), loss: 'categoricalCrossentropy' });
    const trainable = model.trainableWeights.map((w) => w.originalName);
    expect(trainable).toContain('block_16_expand/kernel');
    expect(trainable).toContain('Conv_1/kernel');
    expect(trainable).not.toContain('block_15_project/kernel');
    const b15 = weightOf(model, 'block_15_project', 0);
    const b16 = weightOf(model, 'block_16_project', 0);
    const b16Mean = weightOf(model, 'block_16_project_BN', 2);
    const b15Mean = weightOf(model, 'block_15_project_BN', 2);
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    expect(weightOf(model, 'block_15_project', 0)).toEqual(b15);
    expect(weightOf(model, 'block_15_project_BN', 2)).toEqual(b15Mean);
    expect(weightOf(model, 'block_16_project', 0)).not.toEqual(b16);
    expect(weightOf(model, 'block_16_project_BN', 2)).not.toEqual(b16Mean); // trainable BN updates its statistics
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('unfreeze by layer name, and clear errors for unknown names and block counts', () => {
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3] });
    const model = transferModel({ backbone, numClasses: 2 });
    unfreeze(model, { from: 'Conv_1' });
    expect(model.trainableWeights.map((w) => w.originalName)).toEqual([
      'Conv_1/kernel',
      'Conv_1_bn/gamma',
      'Conv_1_bn/beta',
      'head_predictions/kernel',
      'head_predictions/bias',
    ]);
    expect(() => unfreeze(model, { from: 'conv5_block1_preact_bn' })).toThrow(
      /no layer named 'conv5_block1_preact_bn'/,
    );
    expect(() => unfreeze(model, { lastBlocks: 40 })).toThrow(/lastBlocks must be 1..17, got 40/);
    model.dispose();
  });
});

describe('fine-tuning BatchNormalization policy', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });
  const bnLayers = (m: tfl.LayersModel, prefix: string) =>
    flattenLayers(m).filter((l) => l.getClassName() === 'BatchNormalization' && l.name.startsWith(prefix));
  const momentum = (l: tfl.layers.Layer) => (l as unknown as { momentum: number }).momentum;

  it('default: unfrozen BatchNorms train with momentum 0.9; frozen ones keep Keras 0.999 and stay in inference mode', () => {
    const model = transferModel({
      backbone: mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3] }),
      numClasses: 2,
    });
    unfreeze(model, { lastBlocks: 1 });
    for (const l of bnLayers(model, 'block_16_')) {
      expect(l.trainable).toBe(true);
      expect(momentum(l)).toBe(DEFAULT_FINE_TUNE_BN_MOMENTUM);
    }
    expect(DEFAULT_FINE_TUNE_BN_MOMENTUM).toBe(0.9);
    for (const l of bnLayers(model, 'block_15_')) {
      expect(l.trainable).toBe(false);
      expect(momentum(l)).toBe(0.999);
    }
    model.dispose();
  });

  it("'train' keeps the built momentum; { momentum } sets it; 'frozen' keeps BatchNorm fixed while the convolutions train", async () => {
    const build = () =>
      transferModel({
        backbone: mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 }),
        numClasses: 3,
        seed: 2,
      });
    const a = build();
    unfreeze(a, { lastBlocks: 1, batchNorm: 'train' });
    expect(bnLayers(a, 'block_16_').map(momentum)).toEqual([0.999, 0.999, 0.999]);
    const b = build();
    unfreeze(b, { lastBlocks: 1, batchNorm: { momentum: 0.5 } });
    expect(bnLayers(b, 'block_16_').map(momentum)).toEqual([0.5, 0.5, 0.5]);

    const c = build();
    const xs = tf.randomUniform([8, 32, 32, 3], -1, 1, 'float32', 3);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
    // Random weights with Keras's initial statistics (mean 0, variance 1) saturate every ReLU6 in
    // inference mode; statistics measured on the data stand in for pretrained ones.
    const pixels = await xs.data();
    const source = arraySource(
      [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({
        label: i % 3,
        pixels: (pixels as Float32Array).slice(i * 3072, (i + 1) * 3072),
      })),
      { height: 32, width: 32, channels: 3, numClasses: 3 },
    );
    await recalibrateBatchNorm(c, source, { layers: 'all' });
    unfreeze(c, { lastBlocks: 1, batchNorm: 'frozen' });
    const names = c.trainableWeights.map((w) => w.originalName);
    expect(names).toContain('block_16_expand/kernel');
    expect(names).not.toContain('block_16_expand_BN/gamma');
    c.compile({ optimizer: adaBelief({ learningRate: 0.01 }), loss: 'categoricalCrossentropy' });
    const kernel = weightOf(c, 'block_16_expand', 0);
    const stats = [0, 1, 2, 3].map((i) => weightOf(c, 'block_16_expand_BN', i));
    await c.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    expect(weightOf(c, 'block_16_expand', 0)).not.toEqual(kernel);
    expect([0, 1, 2, 3].map((i) => weightOf(c, 'block_16_expand_BN', i))).toEqual(stats);
    tf.dispose([xs, ys]);
    for (const m of [a, b, c]) m.dispose();
  });

  it('bad policies get clear errors', () => {
    const model = transferModel({
      backbone: mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3] }),
      numClasses: 2,
    });
    expect(() => unfreeze(model, { lastBlocks: 1, batchNorm: { momentum: 1 } })).toThrow(
      /batchNorm.momentum must be in \[0, 1\), got 1/,
    );
    expect(() => unfreeze(model, { lastBlocks: 1, batchNorm: 'thaw' as 'train' })).toThrow(
      /batchNorm must be 'frozen', 'train' or \{ momentum \}, got "thaw"/,
    );
    model.dispose();
  });
});

describe('recalibrateBatchNorm', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  /** BatchNorm on the input, then a conv, another BatchNorm and a softmax head. */
  function toy() {
    const input = tfl.input({ shape: [4, 4, 3] });
    let x = tfl.layers.batchNormalization({ name: 'bn_in' }).apply(input) as tfl.SymbolicTensor;
    x = tfl.layers
      .conv2d({
        filters: 5,
        kernelSize: 3,
        padding: 'same',
        name: 'conv',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      })
      .apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ name: 'bn_mid' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.dense({ units: 2, activation: 'softmax', name: 'out' }).apply(x) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: x });
    installKerasBatchNorm(m);
    return m;
  }
  // 23 images: batches of 8, 8 and 7, values with per-channel offsets and scales.
  const images = Array.from({ length: 23 }, (_, i) => ({
    label: i % 2,
    pixels: Float32Array.from({ length: 48 }, (_, k) => {
      const c = k % 3;
      return 10 * c + (c + 1) * Math.sin(i * 7.3 + k * 1.7) * 5;
    }),
  }));
  const source = arraySource(images, { height: 4, width: 4, channels: 3, numClasses: 2 });

  it('recovers the exact dataset statistics (mean, unbiased variance) of a BatchNorm on the input, whatever the batch size', async () => {
    const m = toy();
    let mean = [0, 0, 0];
    const values: number[][] = [[], [], []];
    for (const s of images) s.pixels.forEach((v, k) => values[k % 3]!.push(v));
    mean = values.map((v) => v.reduce((a, b) => a + b, 0) / v.length);
    const variance = values.map((v, c) => v.reduce((a, b) => a + (b - mean[c]!) ** 2, 0) / (v.length - 1));
    const weightsBefore = m.getLayer('conv').getWeights()[0]!.dataSync().slice();
    const before = tf.memory().numTensors;
    for (const batchSize of [8, 5]) {
      const r = await recalibrateBatchNorm(m, source, { batchSize });
      expect(r).toEqual({ layers: ['bn_in', 'bn_mid'], images: 23 });
      const [, , mm, mv] = m.getLayer('bn_in').getWeights();
      for (let c = 0; c < 3; c++) {
        expect(mm!.dataSync()[c]).toBeCloseTo(mean[c]!, 4);
        expect(mv!.dataSync()[c]! / variance[c]!).toBeCloseTo(1, 5);
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(m.getLayer('conv').getWeights()[0]!.dataSync()).toEqual(weightsBefore);
    m.dispose();
  });

  it('the next layer sees inputs normalised with batch statistics, as in training (torch update_bn semantics)', async () => {
    const m = toy();
    await recalibrateBatchNorm(m, source, { batchSize: 23 });
    // One batch holding everything: bn_mid's statistics are those of conv(batch-normalised input).
    const xs = tf.stack(images.map((s) => tf.tensor3d(s.pixels, [4, 4, 3])));
    const bnIn = m.getLayer('bn_in') as unknown as { gamma: tfl.LayerVariable; beta: tfl.LayerVariable };
    const expected = tf.tidy(() => {
      const { mean, variance } = tf.moments(xs, [0, 1, 2]);
      const normed = tf.batchNorm(xs, mean, variance, bnIn.beta.read(), bnIn.gamma.read(), 1e-3);
      const conv = m.getLayer('conv').apply(normed) as tf.Tensor;
      const mom = tf.moments(conv, [0, 1, 2]);
      const n = conv.size / 5;
      return [mom.mean.dataSync(), tf.mul(mom.variance, n / (n - 1)).dataSync()];
    });
    const [, , mm, mv] = m.getLayer('bn_mid').getWeights();
    for (let c = 0; c < 5; c++) {
      expect(mm!.dataSync()[c]).toBeCloseTo(expected[0]![c]!, 4);
      expect(mv!.dataSync()[c]! / expected[1]![c]!).toBeCloseTo(1, 4);
    }
    tf.dispose(xs);
    m.dispose();
  });

  it("chooses layers: trainable only by default, 'all', or names; clear errors", async () => {
    const m = toy();
    m.getLayer('bn_in').trainable = false;
    const statsOf = (name: string) =>
      m
        .getLayer(name)
        .getWeights()
        .slice(2)
        .map((w) => Array.from(w.dataSync()));
    const frozen = statsOf('bn_in');
    expect((await recalibrateBatchNorm(m, source)).layers).toEqual(['bn_mid']);
    expect(statsOf('bn_in')).toEqual(frozen);
    expect((await recalibrateBatchNorm(m, source, { layers: 'all' })).layers).toEqual(['bn_in', 'bn_mid']);
    expect((await recalibrateBatchNorm(m, source, { layers: ['bn_in'], maxBatches: 1 })).images).toBe(23);
    expect(
      (await recalibrateBatchNorm(m, source, { layers: ['bn_in'], maxBatches: 1, batchSize: 4 })).images,
    ).toBe(4);
    await expect(recalibrateBatchNorm(m, source, { layers: ['conv'] })).rejects.toThrow(
      /Error in recalibrateBatchNorm: no BatchNormalization layer named 'conv'/,
    );
    await expect(recalibrateBatchNorm(m, source, { maxBatches: 0 })).rejects.toThrow(
      /maxBatches must be a positive integer/,
    );
    m.dispose();
  });
});
