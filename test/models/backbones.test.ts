import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  assignWeightsByName,
  blockNames,
  countParams,
  DENSENET_PREPROCESSING,
  densenet121,
  efficientNetB0,
  finalizeModel,
  KerasNormalization,
  loadKerasModel,
  loadKerasWeights,
  type NamedWeight,
  setupBackend,
  unfreeze,
  weightKey,
} from '../../src/node.js';
import stems from '../fixtures/keras/backbone_stems.json' with { type: 'json' };
import { relativeError } from '../helpers.js';

const config = (m: tfl.LayersModel, name: string) => m.getLayer(name).getConfig() as Record<string, unknown>;
const outShape = (m: tfl.LayersModel, name: string) => m.getLayer(name).outputShape;
const trainableNames = (m: tfl.LayersModel) => m.trainableWeights.map((w) => w.originalName);

/**
 * Random weights for every variable of `model`, keyed by Keras's names as a `.h5` file has them
 * (`layer/weight`), with plausible BatchNorm statistics and kernels scaled by 1/sqrt(fan-in).
 */
function kerasLayoutWeights(model: tfl.LayersModel, seed: number): Map<string, NamedWeight> {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
  const out = new Map<string, NamedWeight>();
  for (const v of model.weights) {
    const key = weightKey(v);
    const shape = v.shape as number[];
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    const fanIn = shape.length > 1 ? shape.slice(0, -1).reduce((p, d) => p * d, 1) : 1;
    const depthwise = key.endsWith('depthwise_kernel') ? (shape[0] as number) * (shape[1] as number) : 0;
    for (let i = 0; i < data.length; i++) {
      const u = uniform();
      if (key === 'normalization/mean') data[i] = [0.485, 0.456, 0.406][i]!;
      else if (key === 'normalization/variance') data[i] = [0.229, 0.224, 0.225][i]! ** 2;
      else if (key === 'normalization/count') data[i] = 1_281_167;
      else if (/(moving_)?variance$/.test(key)) data[i] = 1 + 0.5 * u;
      else if (key.endsWith('gamma')) data[i] = 1 + 0.1 * u;
      else if (/kernel$/.test(key)) data[i] = u * Math.sqrt(3 / (depthwise || fanIn));
      else data[i] = 0.1 * u; // beta, bias, moving_mean
    }
    out.set(key, { shape, data });
  }
  return out;
}

/** Inference-mode output on `backend`, leak-checked. */
async function predictOn(
  backend: 'cpu' | 'wasm',
  model: tfl.LayersModel,
  x: tf.Tensor,
): Promise<Float32Array> {
  await setupBackend(backend);
  // A first prediction folds BatchNormalization into the convolutions (weights kept with the model).
  tf.dispose(model.predict(x));
  const before = tf.memory().numTensors;
  const y = model.predict(x) as tf.Tensor;
  const values = y.dataSync() as Float32Array;
  y.dispose();
  expect(tf.memory().numTensors).toBe(before);
  return values;
}

/** Loss and the gradient of every trainable weight (in `trainableWeights` order) on `backend`, leak-checked. */
async function gradientsOn(
  backend: 'cpu' | 'wasm',
  model: tfl.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
): Promise<{ loss: number; grads: Float32Array[] }> {
  await setupBackend(backend);
  const before = tf.memory().numTensors;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    vars,
  );
  const loss = value.dataSync()[0] as number;
  const out = vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  expect(tf.memory().numTensors).toBe(before);
  return { loss, grads: out };
}

/**
 * One training step on wasm against cpu: same loss, every weight's gradient within 1e-4
 * relative. BatchNorm runs in inference mode (`batchNorm: 'frozen'`, Keras's fine-tuning
 * setting): with batch statistics over the 1x1 or 2x2 maps a small input leaves at the last
 * stage, the normalised values depend on float32 rounding far more than on the kernels.
 */
async function expectTrainingStepParity(model: tfl.LayersModel, size: number): Promise<void> {
  unfreeze(model, { all: true, batchNorm: 'frozen' });
  const x = tf.randomUniform([2, size, size, 3], 0, 255, 'float32', 11);
  const y = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
  const cpu = await gradientsOn('cpu', model, x, y);
  await gradientsOn('wasm', model, x, y); // warm-up: first-use allocations on wasm
  const wasm = await gradientsOn('wasm', model, x, y);
  expect(Math.abs(wasm.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5);
  expect(wasm.grads).toHaveLength(model.trainableWeights.length);
  const names = trainableNames(model);
  cpu.grads.forEach((g, i) => {
    expect(relativeError(wasm.grads[i]!, g), names[i]).toBeLessThan(1e-4);
  });
  tf.dispose([x, y]);
}

/** A `fit` on wasm with BatchNorm in training mode: finite loss, weights and moving statistics move. */
async function expectFitOnWasm(model: tfl.LayersModel, size: number, probe: string, bn: string) {
  await setupBackend('wasm');
  const x = tf.randomUniform([4, size, size, 3], 0, 255, 'float32', 12);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3);
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const kernel = Array.from(model.getLayer(probe).getWeights()[0]!.dataSync());
  const movingMean = Array.from(model.getLayer(bn).getWeights()[2]!.dataSync());
  const history = await model.fit(x, y, { epochs: 1, batchSize: 2, verbose: 0 });
  expect(Number.isFinite(history.history.loss![0] as number)).toBe(true);
  expect(Array.from(model.getLayer(probe).getWeights()[0]!.dataSync())).not.toEqual(kernel);
  expect(Array.from(model.getLayer(bn).getWeights()[2]!.dataSync())).not.toEqual(movingMean);
  tf.dispose([x, y]);
}

describe('DenseNet121, as Keras builds it', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it("Keras's published parameter counts: 7,037,504 without top (83,648 non-trainable), 8,062,504 with; 427 layers", () => {
    const m = densenet121();
    expect(countParams(m)).toEqual({ total: 7_037_504, trainable: 6_953_856, nonTrainable: 83_648 });
    expect(m.layers).toHaveLength(427);
    expect(m.outputs[0]!.shape).toEqual([null, 7, 7, 1024]);
    const top = densenet121({ includeTop: true });
    expect(countParams(top)).toEqual({ total: 8_062_504, trainable: 7_978_856, nonTrainable: 83_648 });
    // As Keras: 606 weight tensors, 364 of them trainable.
    expect(top.weights).toHaveLength(606);
    expect(top.trainableWeights).toHaveLength(364);
    expect(top.outputs[0]!.shape).toEqual([null, 1000]);
    m.dispose();
    top.dispose();
  });

  it("Keras's layer names, shapes and settings at 224, and output shapes at 64", () => {
    const m = densenet121({ pooling: 'avg' });
    const names = m.layers.map((l) => l.name);
    expect(names.slice(0, 12)).toEqual([
      'input_1',
      'zero_padding2d',
      'conv1/conv',
      'conv1/bn',
      'conv1/relu',
      'zero_padding2d_1',
      'pool1',
      'conv2_block1_0_bn',
      'conv2_block1_0_relu',
      'conv2_block1_1_conv',
      'conv2_block1_1_bn',
      'conv2_block1_1_relu',
    ]);
    expect(names.slice(-4)).toEqual(['conv5_block16_concat', 'bn', 'relu', 'avg_pool']);
    expect(names.filter((n) => /^pool2_/.test(n))).toEqual([
      'pool2_bn',
      'pool2_relu',
      'pool2_conv',
      'pool2_pool',
    ]);
    expect(config(m, 'zero_padding2d').padding).toEqual([
      [3, 3],
      [3, 3],
    ]);
    expect(config(m, 'zero_padding2d_1').padding).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(config(m, 'conv1/conv')).toMatchObject({ kernelSize: [7, 7], strides: [2, 2], useBias: false });
    expect(config(m, 'pool1')).toMatchObject({ poolSize: [3, 3], strides: [2, 2] });
    expect(m.getLayer('pool3_pool').getClassName()).toBe('AveragePooling2D');
    expect(config(m, 'pool3_pool')).toMatchObject({ poolSize: [2, 2], strides: [2, 2], padding: 'valid' });
    expect(config(m, 'conv4_block7_1_conv')).toMatchObject({
      filters: 128,
      kernelSize: [1, 1],
      useBias: false,
    });
    expect(config(m, 'conv4_block7_2_conv')).toMatchObject({
      filters: 32,
      kernelSize: [3, 3],
      padding: 'same',
    });
    for (const bn of ['conv1/bn', 'conv3_block2_0_bn', 'pool4_bn', 'bn'])
      expect(config(m, bn)).toMatchObject({ epsilon: 1.001e-5, momentum: 0.99 });
    expect(outShape(m, 'pool1')).toEqual([null, 56, 56, 64]);
    expect(outShape(m, 'conv2_block6_concat')).toEqual([null, 56, 56, 256]);
    expect(outShape(m, 'pool2_pool')).toEqual([null, 28, 28, 128]);
    expect(outShape(m, 'conv3_block12_concat')).toEqual([null, 28, 28, 512]);
    expect(outShape(m, 'pool3_conv')).toEqual([null, 28, 28, 256]);
    expect(outShape(m, 'conv4_block24_concat')).toEqual([null, 14, 14, 1024]);
    expect(outShape(m, 'pool4_pool')).toEqual([null, 7, 7, 512]);
    expect(outShape(m, 'conv5_block16_concat')).toEqual([null, 7, 7, 1024]);
    expect(m.outputs[0]!.shape).toEqual([null, 1024]);
    expect(m.name).toBe('densenet121');
    const small = densenet121({ inputShape: [64, 64, 3] });
    expect(small.outputs[0]!.shape).toEqual([null, 2, 2, 1024]);
    const max = densenet121({ inputShape: [96, 80, 3], pooling: 'max' });
    expect(outShape(max, 'relu')).toEqual([null, 3, 2, 1024]);
    expect(max.layers.at(-1)!.name).toBe('max_pool');
    expect(DENSENET_PREPROCESSING).toEqual({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    [m, small, max].forEach((x) => x.dispose());
  });

  it('unfreeze({ lastBlocks: 1 }) trains the last dense layer conv5_block16 and the final BatchNorm', () => {
    const m = densenet121({ inputShape: [32, 32, 3] });
    const blocks = blockNames(m);
    expect(blocks).toHaveLength(58);
    expect([blocks[0], blocks[5], blocks[6], blocks.at(-1)]).toEqual([
      'conv2_block1',
      'conv2_block6',
      'conv3_block1',
      'conv5_block16',
    ]);
    unfreeze(m, { lastBlocks: 1 });
    expect(trainableNames(m)).toEqual([
      'conv5_block16_0_bn/gamma',
      'conv5_block16_0_bn/beta',
      'conv5_block16_1_conv/kernel',
      'conv5_block16_1_bn/gamma',
      'conv5_block16_1_bn/beta',
      'conv5_block16_2_conv/kernel',
      'bn/gamma',
      'bn/beta',
    ]);
    // 16 blocks are the whole conv5 stage; a 17th reaches back over the pool4 transition.
    unfreeze(m, { lastBlocks: 16 });
    expect(trainableNames(m)[0]).toBe('conv5_block1_0_bn/gamma');
    expect(trainableNames(m)).not.toContain('pool4_conv/kernel');
    unfreeze(m, { lastBlocks: 17 });
    expect(trainableNames(m)[0]).toBe('conv4_block24_0_bn/gamma');
    expect(trainableNames(m)).toContain('pool4_conv/kernel');
    m.dispose();
  });

  it('Keras-layout weights load by name; forward and a training step on wasm equal cpu', async () => {
    const m = densenet121({ inputShape: [32, 32, 3], includeTop: true, classes: 3, seed: 3 });
    const weights = kerasLayoutWeights(m, 5);
    const match = assignWeightsByName(m, weights);
    expect(match.loaded).toHaveLength(m.weights.length);
    expect(match.loaded).toContain('conv1/conv/kernel');
    expect(match.loaded).toContain('pool2_bn/moving_variance');
    expect([match.missing, match.unexpected, match.mismatched]).toEqual([[], [], []]);
    const kernel = m.getLayer('conv4_block3_2_conv').getWeights()[0]!;
    expect(Array.from(kernel.dataSync())).toEqual(
      Array.from(weights.get('conv4_block3_2_conv/kernel')!.data),
    );

    const x = tf.randomUniform([2, 32, 32, 3], -2, 2, 'float32', 7);
    const cpu = await predictOn('cpu', m, x);
    await predictOn('wasm', m, x);
    const wasm = await predictOn('wasm', m, x);
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-4);
    x.dispose();
    await expectTrainingStepParity(m, 32);
    m.dispose();
  }, 180_000);

  it('trains with model.fit on wasm (BatchNorm in training mode)', async () => {
    const m = densenet121({ inputShape: [64, 64, 3], includeTop: true, classes: 3, seed: 4 });
    await expectFitOnWasm(m, 64, 'conv1/conv', 'conv5_block16_1_bn');
    m.dispose();
  });
});

describe('EfficientNetB0, as Keras 2.4 builds it', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it("Keras's published parameter counts: 4,049,571 without top (4,007,548 trainable, 42,023 not), 237 layers", () => {
    const m = efficientNetB0();
    expect(countParams(m)).toEqual({ total: 4_049_571, trainable: 4_007_548, nonTrainable: 42_023 });
    expect(m.layers).toHaveLength(237);
    expect(m.outputs[0]!.shape).toEqual([null, 7, 7, 1280]);
    const top = efficientNetB0({ includeTop: true });
    // + avg_pool, top_dropout and predictions (1280 x 1000 + 1000).
    expect(countParams(top).total).toBe(4_049_571 + 1_281_000);
    expect(top.layers.slice(-3).map((l) => l.name)).toEqual(['avg_pool', 'top_dropout', 'predictions']);
    m.dispose();
    top.dispose();
  });

  it("Keras's layer names, padding, drop-connect and settings at 224, and output shapes at 64 and odd sizes", () => {
    const m = efficientNetB0({ pooling: 'avg' });
    const names = m.layers.map((l) => l.name);
    expect(names.slice(0, 12)).toEqual([
      'input_1',
      'rescaling',
      'normalization',
      'stem_conv_pad',
      'stem_conv',
      'stem_bn',
      'stem_activation',
      'block1a_dwconv',
      'block1a_bn',
      'block1a_activation',
      'block1a_se_squeeze',
      'block1a_se_reshape',
    ]);
    expect(names.filter((n) => n.startsWith('block2b_'))).toEqual([
      'block2b_expand_conv',
      'block2b_expand_bn',
      'block2b_expand_activation',
      'block2b_dwconv',
      'block2b_bn',
      'block2b_activation',
      'block2b_se_squeeze',
      'block2b_se_reshape',
      'block2b_se_reduce',
      'block2b_se_expand',
      'block2b_se_excite',
      'block2b_project_conv',
      'block2b_project_bn',
      'block2b_drop',
      'block2b_add',
    ]);
    expect(names.slice(-4)).toEqual(['top_conv', 'top_bn', 'top_activation', 'avg_pool']);
    expect(m.getLayer('normalization').getClassName()).toBe('Normalization');
    expect(config(m, 'rescaling')).toMatchObject({ scale: 1 / 255, offset: 0 });
    // correct_pad before the stride-2 convolutions: (0, 1) for 3x3 on even maps, (1, 2) for 5x5.
    expect(config(m, 'stem_conv_pad').padding).toEqual([
      [0, 1],
      [0, 1],
    ]);
    expect(config(m, 'block3a_dwconv_pad').padding).toEqual([
      [1, 2],
      [1, 2],
    ]);
    expect(names.filter((n) => n.endsWith('_dwconv_pad'))).toEqual([
      'block2a_dwconv_pad',
      'block3a_dwconv_pad',
      'block4a_dwconv_pad',
      'block6a_dwconv_pad',
    ]);
    expect(config(m, 'block3a_dwconv')).toMatchObject({
      kernelSize: [5, 5],
      strides: [2, 2],
      padding: 'valid',
    });
    expect(config(m, 'block5b_dwconv')).toMatchObject({
      kernelSize: [5, 5],
      strides: [1, 1],
      padding: 'same',
    });
    // Drop-connect: Dropout(rate = 0.2 * b / 16, noise_shape = (None, 1, 1, 1)) on identity blocks only.
    const drops = m.layers.filter((l) => l.getClassName() === 'Dropout');
    expect(drops.map((l) => l.name)).toEqual([
      'block2b_drop',
      'block3b_drop',
      'block4b_drop',
      'block4c_drop',
      'block5b_drop',
      'block5c_drop',
      'block6b_drop',
      'block6c_drop',
      'block6d_drop',
    ]);
    expect(config(m, 'block2b_drop')).toMatchObject({ rate: 0.025, noiseShape: [null, 1, 1, 1] });
    expect(config(m, 'block6d_drop').rate).toBeCloseTo(0.175, 12);
    for (const bn of ['stem_bn', 'block4b_expand_bn', 'block7a_project_bn', 'top_bn'])
      expect(config(m, bn)).toMatchObject({ epsilon: 1e-3, momentum: 0.99 });
    expect(config(m, 'stem_activation').activation).toBe('swish');
    expect(config(m, 'block6b_se_reduce')).toMatchObject({ filters: 48, activation: 'swish', useBias: true });
    expect(config(m, 'block6b_se_expand')).toMatchObject({ filters: 1152, activation: 'sigmoid' });
    expect(m.getLayer('block6b_se_excite').getClassName()).toBe('Multiply');
    for (const [layer, shape] of [
      ['stem_activation', [null, 112, 112, 32]],
      ['block1a_project_bn', [null, 112, 112, 16]],
      ['block2b_add', [null, 56, 56, 24]],
      ['block3b_add', [null, 28, 28, 40]],
      ['block4c_add', [null, 14, 14, 80]],
      ['block5c_add', [null, 14, 14, 112]],
      ['block6d_add', [null, 7, 7, 192]],
      ['block7a_project_bn', [null, 7, 7, 320]],
      ['block6a_se_reshape', [null, 1, 1, 672]],
      ['top_activation', [null, 7, 7, 1280]],
    ] as const)
      expect(outShape(m, layer), layer).toEqual(shape);
    expect(m.outputs[0]!.shape).toEqual([null, 1280]);
    expect(m.name).toBe('efficientnetb0');
    const small = efficientNetB0({ inputShape: [64, 64, 3] });
    expect(small.outputs[0]!.shape).toEqual([null, 2, 2, 1280]);
    // Odd sizes: correct_pad pads symmetrically.
    const odd = efficientNetB0({ inputShape: [97, 97, 3], pooling: 'max' });
    expect(config(odd, 'stem_conv_pad').padding).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(outShape(odd, 'top_activation')).toEqual([null, 4, 4, 1280]);
    expect(odd.layers.at(-1)!.name).toBe('max_pool');
    [m, small, odd].forEach((x) => x.dispose());
  });

  it("the Normalization layer has Keras's non-trainable mean, variance and count and computes (x - mean) / sqrt(variance)", () => {
    const m = efficientNetB0({ inputShape: [32, 32, 3] });
    const norm = m.getLayer('normalization') as KerasNormalization;
    expect(norm.weights.map((w) => [w.originalName, w.shape, w.trainable])).toEqual([
      ['normalization/mean', [3], false],
      ['normalization/variance', [3], false],
      ['normalization/count', [], false],
    ]);
    norm.setStatistics([1, 2, 3], [4, 0, 0.25], 10);
    const y = tf.tidy(() => norm.apply(tf.tensor4d([[[[3, 2, 2]]]])) as tf.Tensor);
    // Keras floors the standard deviation at backend.epsilon() = 1e-7.
    expect(Array.from(y.dataSync())).toEqual([1, 0, -2]);
    y.dispose();
    expect(() => new KerasNormalization({ axis: 1 }).apply(tfl.input({ shape: [4, 3] }))).toThrow(
      /only the last axis/,
    );
    // Keras's configs write the axis as a list.
    const fromKeras = new KerasNormalization({ axis: [-1], name: 'n' });
    expect((fromKeras.apply(tfl.input({ shape: [4, 4, 3] })) as tfl.SymbolicTensor).shape).toEqual([
      null,
      4,
      4,
      3,
    ]);
    expect(fromKeras.axis).toBe(-1);
    expect(() => new KerasNormalization({ axis: [1, 2] })).toThrow(/axis must be one integer/);
    m.dispose();
  });

  it('serializes (Normalization and noise-shaped Dropout included) and rebuilds from its config', async () => {
    const m = efficientNetB0({ inputShape: [32, 32, 3], pooling: 'avg', seed: 2 });
    const topology = m.toJSON(null, false) as tf.io.ModelJSON['modelTopology'];
    // Finalized as this library's loaders finalize (BatchNormalization folded alike).
    const again = finalizeModel(await tfl.models.modelFromJSON({ modelTopology: topology }));
    expect(again.layers.map((l) => l.name)).toEqual(m.layers.map((l) => l.name));
    expect(again.getLayer('normalization').getClassName()).toBe('Normalization');
    expect(config(again, 'block2b_drop').noiseShape).toEqual([null, 1, 1, 1]);
    again.setWeights(m.getWeights());
    const x = tf.randomUniform([1, 32, 32, 3], 0, 255, 'float32', 1);
    const [a, b] = [m.predict(x) as tf.Tensor, again.predict(x) as tf.Tensor];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    m.dispose();
    again.dispose();
  });

  it('unfreeze({ lastBlocks: 1 }) trains block7a, top_conv and top_bn', () => {
    const m = efficientNetB0({ inputShape: [32, 32, 3] });
    expect(blockNames(m)).toEqual([
      'block1a',
      'block2a',
      'block2b',
      'block3a',
      'block3b',
      'block4a',
      'block4b',
      'block4c',
      'block5a',
      'block5b',
      'block5c',
      'block6a',
      'block6b',
      'block6c',
      'block6d',
      'block7a',
    ]);
    unfreeze(m, { lastBlocks: 1 });
    expect(trainableNames(m)).toEqual([
      'block7a_expand_conv/kernel',
      'block7a_expand_bn/gamma',
      'block7a_expand_bn/beta',
      'block7a_dwconv/depthwise_kernel',
      'block7a_bn/gamma',
      'block7a_bn/beta',
      'block7a_se_reduce/kernel',
      'block7a_se_reduce/bias',
      'block7a_se_expand/kernel',
      'block7a_se_expand/bias',
      'block7a_project_conv/kernel',
      'block7a_project_bn/gamma',
      'block7a_project_bn/beta',
      'top_conv/kernel',
      'top_bn/gamma',
      'top_bn/beta',
    ]);
    unfreeze(m, { lastBlocks: 2 });
    expect(trainableNames(m)[0]).toBe('block6d_expand_conv/kernel');
    // Normalization's statistics never train, even with everything unfrozen.
    unfreeze(m, { all: true });
    expect(trainableNames(m).filter((n) => n.startsWith('normalization/'))).toEqual([]);
    m.dispose();
  });

  it('Keras-layout weights load by name; forward and a training step (drop-connect on) on wasm equal cpu', async () => {
    const m = efficientNetB0({ inputShape: [32, 32, 3], includeTop: true, classes: 3, seed: 3 });
    const weights = kerasLayoutWeights(m, 9);
    const match = assignWeightsByName(m, weights);
    expect(match.loaded).toHaveLength(m.weights.length);
    expect(match.loaded).toEqual(expect.arrayContaining(['normalization/count', 'block6a_se_expand/bias']));
    expect([match.missing, match.unexpected, match.mismatched]).toEqual([[], [], []]);

    const x = tf.randomUniform([2, 32, 32, 3], 0, 255, 'float32', 7);
    const cpu = await predictOn('cpu', m, x);
    await predictOn('wasm', m, x);
    const wasm = await predictOn('wasm', m, x);
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-4);
    x.dispose();
    await expectTrainingStepParity(m, 32);
    m.dispose();
  }, 120_000);

  it('trains with model.fit on wasm (BatchNorm in training mode, drop-connect on)', async () => {
    const m = efficientNetB0({ inputShape: [64, 64, 3], includeTop: true, classes: 3, seed: 4 });
    await expectFitOnWasm(m, 64, 'block5b_dwconv', 'block6d_expand_bn');
    m.dispose();
  });
});

describe('the quirks of the Keras ImageNet files load: int64 scalar count, slashes in layer names', () => {
  it('a save_weights file with EfficientNet-style normalization and DenseNet-style conv1/conv loads and predicts as NumPy', async () => {
    await setupBackend('wasm');
    const input = tfl.input({ shape: [5, 5, 3], name: 'input_1' });
    let x = tfl.layers.rescaling({ scale: 1 / 255, name: 'rescaling' }).apply(input) as tfl.SymbolicTensor;
    x = new KerasNormalization({ name: 'normalization' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers
      .conv2d({ filters: 4, kernelSize: 3, useBias: false, name: 'stem_conv' })
      .apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ epsilon: 1e-3, name: 'stem_bn' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers
      .conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'conv1/conv' })
      .apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ epsilon: 1.001e-5, name: 'conv1/bn' }).apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: x });
    const match = await loadKerasWeights(
      model,
      join(resolve(__dirname, '../fixtures/keras'), 'backbone_stems.h5'),
    );
    expect(match.loaded).toEqual(
      expect.arrayContaining(['normalization/count', 'conv1/conv/kernel', 'conv1/bn/moving_variance']),
    );
    expect(match.loaded).toHaveLength(13);
    expect(Array.from(model.getLayer('normalization').getWeights()[2]!.dataSync())).toEqual([1_281_167]);
    const xs = tf.tensor4d(stems.input);
    const y = model.predict(xs) as tf.Tensor;
    expect(relativeError(y.dataSync(), stems.output.flat(3) as number[])).toBeLessThan(1e-5);
    tf.dispose([xs, y]);
    model.dispose();
  });

  it("loadKerasModel rebuilds Keras's Rescaling + Normalization stem from a full-model file (config axis [-1])", async () => {
    await setupBackend('wasm');
    const model = await loadKerasModel(
      join(resolve(__dirname, '../fixtures/keras'), 'normalization_model.h5'),
    );
    expect(model.layers.map((l) => [l.name, l.getClassName()])).toEqual([
      ['input_1', 'InputLayer'],
      ['rescaling', 'Rescaling'],
      ['normalization', 'Normalization'],
    ]);
    const xs = tf.tensor4d(stems.input);
    const y = model.predict(xs) as tf.Tensor;
    expect(relativeError(y.dataSync(), stems.normalized.flat(3) as number[])).toBeLessThan(1e-6);
    tf.dispose([xs, y]);
    model.dispose();
  });
});
