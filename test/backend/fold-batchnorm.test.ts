import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, describe, expect, it } from 'vitest';
import {
  installBatchNormFolding,
  planFolds,
  setBatchNormFolding,
  setTrainingActivationFusion,
} from '../../src/backend/patches/fold-batchnorm.js';
import { installPatches } from '../../src/backend/patches/index.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { finalizeModel } from '../../src/models/finalize.js';
import { mobilenetV2 } from '../../src/models/mobilenet-v2.js';
import { resnet50v2 } from '../../src/models/resnet50v2.js';
import { freeze } from '../../src/models/trainability.js';
import { useBackend } from '../helpers.js';

/** Deterministic values in [lo, hi). */
function values(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / 2 ** 24) * (hi - lo);
  }
  return out;
}

/**
 * pad -> depthwise 3x3/2 -> BN -> ReLU6 -> conv 1x1 -> BN -> conv 3x3 (bias) -> BN -> ReLU ->
 * pooling -> dense: the three chains MobileNetV2 and ResNet50V2 have, with BatchNormalization
 * statistics far from the identity so that a fold that got them wrong would show. (The wasm
 * depthwise filter gradient takes a channel multiplier of 1 only.)
 */
function chainModel(depthMultiplier = 2): tfl.LayersModel {
  const input = tfl.input({ shape: [9, 9, 3] });
  let x = tfl.layers
    .zeroPadding2d({
      padding: [
        [0, 1],
        [0, 1],
      ],
      name: 'pad',
    })
    .apply(input);
  x = tfl.layers
    .depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier, useBias: false, name: 'dw' })
    .apply(x);
  x = tfl.layers.batchNormalization({ epsilon: 1e-3, name: 'dw_bn' }).apply(x);
  x = tfl.layers.reLU({ maxValue: 6, name: 'dw_relu' }).apply(x);
  x = tfl.layers.conv2d({ filters: 5, kernelSize: 1, useBias: false, name: 'project' }).apply(x);
  x = tfl.layers.batchNormalization({ name: 'project_bn' }).apply(x);
  x = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(x);
  x = tfl.layers.batchNormalization({ name: 'conv_bn' }).apply(x);
  x = tfl.layers.activation({ activation: 'relu', name: 'conv_relu' }).apply(x);
  x = tfl.layers.globalAveragePooling2d({}).apply(x);
  const out = tfl.layers.dense({ units: 3, name: 'head' }).apply(x) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: out });
  let seed = 1;
  for (const layer of model.layers) {
    layer.setWeights(
      layer.getWeights().map((w, i) => {
        const isVariance = layer.getClassName() === 'BatchNormalization' && i === 3;
        const v = values(w.size, seed++, isVariance ? 0.2 : -1, isVariance ? 2 : 1);
        return tf.tensor(v, w.shape);
      }),
    );
  }
  return finalizeModel(model);
}

const input = () => tf.tensor4d(values(2 * 9 * 9 * 3, 99, -3, 3), [2, 9, 9, 3]);

async function kernels(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(() => {
    tf.dispose(f());
  });
  return info.kernels.map((k) => k.name);
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number);
}

afterEach(() => {
  setBatchNormFolding(true);
  setTrainingActivationFusion(true);
});

describe.each(['cpu', 'wasm'] as const)('BatchNormalization folded into the convolution (%s)', (backend) => {
  it('plans the three chains: padding, BatchNormalization and ReLU/ReLU6 folded where each link has one consumer', async () => {
    await useBackend(backend);
    const model = chainModel();
    const plan = planFolds(model as unknown as tfl.layers.Layer);
    const summary = [...plan].map(([conv, f]) => [
      conv.name,
      f.bn.name,
      f.act?.layer.name ?? null,
      f.act?.fn ?? null,
      f.pad ? f.pad.pads : null,
    ]);
    expect(summary).toEqual([
      [
        'dw',
        'dw_bn',
        'dw_relu',
        'relu6',
        [
          [0, 0],
          [0, 1],
          [0, 1],
          [0, 0],
        ],
      ],
      ['project', 'project_bn', null, null, null],
      ['conv', 'conv_bn', 'conv_relu', 'relu', null],
    ]);
    model.dispose();
  });

  it('predicts the same values as the unfolded layers with no BatchNorm, pad or activation kernels, leak-free', async () => {
    await useBackend(backend);
    installPatches({ wasm: backend === 'wasm' });
    const model = chainModel();
    const x = input();
    setBatchNormFolding(false);
    const plain = model.predict(x) as tf.Tensor;
    const plainKernels = await kernels(() => model.predict(x) as tf.Tensor);
    setBatchNormFolding(true);
    const folded = model.predict(x) as tf.Tensor;
    expect(maxDiff(folded, plain)).toBeLessThan(1e-5);
    expect(tf.tidy(() => tf.max(tf.abs(plain)).dataSync()[0] as number)).toBeGreaterThan(0.1);
    expect(
      plainKernels.filter((k) => ['FusedBatchNorm', 'PadV2', 'ClipByValue', 'Relu'].includes(k)).sort(),
    ).toEqual(['ClipByValue', 'FusedBatchNorm', 'FusedBatchNorm', 'FusedBatchNorm', 'PadV2', 'Relu']);
    const foldedKernels = await kernels(() => model.predict(x) as tf.Tensor);
    expect(
      foldedKernels.filter((k) => ['FusedBatchNorm', 'PadV2', 'ClipByValue', 'Relu'].includes(k)),
    ).toEqual([]);
    expect(foldedKernels.filter((k) => k.startsWith('Fused'))).toEqual([
      'FusedDepthwiseConv2D',
      'FusedConv2D',
      'FusedConv2D',
    ]);
    // The folded weights are kept between calls (one filter and bias per fold), freed with the model.
    const before = tf.memory().numTensors;
    tf.dispose(model.predict(x));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([plain, folded, x]);
    const kept = tf.memory().numTensors;
    model.dispose();
    expect(kept - tf.memory().numTensors).toBe(model.weights.length + 2 * 3);
  });

  it('folds again when a variable changes (setWeights, training, loading)', async () => {
    await useBackend(backend);
    const model = chainModel();
    const x = input();
    tf.dispose(model.predict(x));
    const bn = model.getLayer('conv_bn');
    bn.setWeights(bn.getWeights().map((w, i) => tf.mul(w, i === 3 ? 3 : 0.5)));
    const conv = model.getLayer('dw');
    conv.setWeights(conv.getWeights().map((w) => tf.neg(w)));
    const folded = model.predict(x) as tf.Tensor;
    setBatchNormFolding(false);
    const plain = model.predict(x) as tf.Tensor;
    expect(maxDiff(folded, plain)).toBeLessThan(1e-5);
    tf.dispose([folded, plain, x]);
    model.dispose();
  });

  it('gradients: frozen chains run off the tape and fused; trainable convolutions and the input get exact gradients', async () => {
    await useBackend(backend);
    installPatches({ wasm: backend === 'wasm' });
    if (backend === 'wasm') registerWasmTrainingKernels();
    const model = chainModel(backend === 'wasm' ? 1 : 2);
    const x = input();
    const y = tf.tensor2d([1, 0, 0, 0, 0, 1], [2, 3]);
    const loss = () =>
      tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
    const grads = (vars: tf.Variable[]) => {
      const { value, grads: g } = tf.variableGrads(loss, vars);
      const out = vars.map((v) => g[v.name] as tf.Tensor);
      return { value, out };
    };
    // Everything but the head frozen: the chains need no gradient.
    for (const l of model.layers) l.trainable = l.name === 'head';
    const headVars = model.getLayer('head').weights.map((w) => w.read() as tf.Variable);
    setBatchNormFolding(false);
    const a = grads(headVars);
    setBatchNormFolding(true);
    const b = grads(headVars);
    expect(Math.abs((a.value.dataSync()[0] as number) - (b.value.dataSync()[0] as number))).toBeLessThan(
      1e-5,
    );
    for (let i = 0; i < headVars.length; i++)
      expect(maxDiff(b.out[i] as tf.Tensor, a.out[i] as tf.Tensor)).toBeLessThan(1e-5);
    // Off the tape: the ReLU6 is fused too, so no clip runs and none is differentiated.
    const frozenKernels = await kernels(() => tf.variableGrads(loss, headVars).grads);
    expect(frozenKernels.filter((k) => ['FusedBatchNorm', 'ClipByValue', 'PadV2'].includes(k))).toEqual([]);
    tf.dispose([a.value, b.value, ...a.out, ...b.out]);

    // Trainable convolutions under frozen (inference-mode) BatchNormalization: gradients through the fold.
    for (const l of model.layers) l.trainable = l.getClassName() !== 'BatchNormalization';
    const convVars = ['dw', 'project', 'conv'].flatMap((n) =>
      model.getLayer(n).weights.map((w) => w.read() as tf.Variable),
    );
    setBatchNormFolding(false);
    const c = grads(convVars);
    setBatchNormFolding(true);
    const d = grads(convVars);
    for (let i = 0; i < convVars.length; i++) {
      const scale = tf.tidy(() => tf.max(tf.abs(c.out[i] as tf.Tensor)).dataSync()[0] as number);
      expect(scale).toBeGreaterThan(0);
      expect(maxDiff(d.out[i] as tf.Tensor, c.out[i] as tf.Tensor)).toBeLessThan(1e-5 * Math.max(1, scale));
    }
    tf.dispose([c.value, d.value, ...c.out, ...d.out]);

    // A saliency map: the gradient with respect to the image, through every fold.
    const saliency = () => tf.grad((img: tf.Tensor) => tf.sum(model.apply(img) as tf.Tensor))(x);
    setBatchNormFolding(false);
    const e = saliency();
    setBatchNormFolding(true);
    const f = saliency();
    expect(maxDiff(f, e)).toBeLessThan(1e-5);
    expect(tf.tidy(() => tf.max(tf.abs(e)).dataSync()[0] as number)).toBeGreaterThan(1e-3);
    const before = tf.memory().numTensors;
    const again = tf.variableGrads(loss, convVars);
    tf.dispose([saliency(), again.value, again.grads]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([e, f, x, y]);
    model.dispose();
  });

  it('does not fold BatchNormalization that trains, nor for a sub-model that outputs the convolution itself', async () => {
    await useBackend(backend);
    const model = chainModel();
    const x = input();
    // Training mode with trainable BatchNormalization: batch statistics, nothing folded.
    const trainKernels = await kernels(() => model.apply(x, { training: true }) as tf.Tensor);
    expect(trainKernels.filter((k) => k === 'PadV2')).toEqual(['PadV2']);
    setBatchNormFolding(false);
    const plainTrain = model.apply(x, { training: true }) as tf.Tensor;
    setBatchNormFolding(true);
    const foldTrain = model.apply(x, { training: true }) as tf.Tensor;
    expect(maxDiff(foldTrain, plainTrain)).toBe(0);
    // Features taken at the convolution: the convolution's own output, not its folded chain.
    const features = tfl.model({
      inputs: model.inputs,
      outputs: model.getLayer('project').output as tfl.SymbolicTensor,
    });
    const got = features.predict(x) as tf.Tensor;
    const expected = tf.tidy(() => {
      const padded = tf.pad(x, [
        [0, 0],
        [0, 1],
        [0, 1],
        [0, 0],
      ]);
      const dw = model.getLayer('dw').getWeights()[0] as tf.Tensor4D;
      const bn = model.getLayer('dw_bn').getWeights() as tf.Tensor1D[];
      const [gamma, beta, mean, variance] = bn as [tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
      const h = tf.clipByValue(
        tf.batchNorm(
          tf.depthwiseConv2d(padded as tf.Tensor4D, dw, 2, 'valid'),
          mean,
          variance,
          beta,
          gamma,
          1e-3,
        ),
        0,
        6,
      );
      return tf.conv2d(
        h as tf.Tensor4D,
        model.getLayer('project').getWeights()[0] as tf.Tensor4D,
        1,
        'valid',
      );
    });
    expect(maxDiff(got, expected)).toBeLessThan(1e-5);
    tf.dispose([plainTrain, foldTrain, got, expected, x]);
    model.dispose();
  });
});

describe('BatchNormalization training with batch statistics, with the ReLU/ReLU6 after it (wasm)', () => {
  it('applies the activation in its own kernel: the same outputs and gradients, no activation kernels, leak-free', async () => {
    await useBackend('wasm');
    installPatches({ wasm: true });
    registerWasmTrainingKernels();
    const model = chainModel(1);
    const x = input();
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const run = () => {
      let out: tf.Tensor = tf.scalar(0);
      const { value, grads } = tf.variableGrads(() => {
        out.dispose();
        out = tf.keep(model.apply(x, { training: true }) as tf.Tensor);
        return tf.sum(tf.square(out)) as tf.Scalar;
      }, vars);
      return { out, value, grads: vars.map((v) => grads[v.name] as tf.Tensor) };
    };
    const runLoss = () =>
      tf.variableGrads(
        () => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
        vars,
      );
    const activationKernels = ['ClipByValue', 'Relu', 'MedimgClipByValueGrad'];
    const seen = async () =>
      (await kernels(() => runLoss())).filter((k) => activationKernels.includes(k)).sort();
    setTrainingActivationFusion(false);
    // Unfused: the ReLU6 and ReLU layers and their gradients run as kernels of their own.
    expect(await seen()).toEqual(['ClipByValue', 'MedimgClipByValueGrad', 'MedimgClipByValueGrad', 'Relu']);
    const plain = tf.tidy(() => run());
    setTrainingActivationFusion(true);
    expect(await seen()).toEqual([]);
    const warm = run();
    tf.dispose([warm.out, warm.value, ...warm.grads]);
    const before = tf.memory().numTensors;
    const fused = run();
    expect(maxDiff(fused.out, plain.out)).toBe(0);
    fused.grads.forEach((g, i) => {
      const scale = tf.tidy(() => tf.max(tf.abs(plain.grads[i] as tf.Tensor)).dataSync()[0] as number);
      expect(scale, vars[i]?.name).toBeGreaterThan(0);
      expect(maxDiff(g, plain.grads[i] as tf.Tensor) / scale, vars[i]?.name).toBeLessThan(1e-5);
    });
    tf.dispose([fused.out, fused.value, ...fused.grads]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([plain.out, plain.value, ...plain.grads, x]);
    model.dispose();
  });
});

describe('BatchNormalization folding in the builders (wasm)', () => {
  it('MobileNetV2 predicts with no BatchNorm, pad or clip kernels and the unfolded values', async () => {
    await useBackend('wasm');
    const model = mobilenetV2({ alpha: 0.35, inputShape: [48, 48, 3] });
    // Moving statistics away from their initial values, so that the fold has something to fold.
    for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
      const [g, b, m, v] = layer.getWeights() as tf.Tensor[];
      layer.setWeights([
        g as tf.Tensor,
        b as tf.Tensor,
        tf.fill((m as tf.Tensor).shape, 0.05),
        tf.fill((v as tf.Tensor).shape, 1.5),
      ]);
    }
    expect(planFolds(model as unknown as tfl.layers.Layer).size).toBe(52);
    const x = tf.tensor4d(values(2 * 48 * 48 * 3, 5, -1, 1), [2, 48, 48, 3]);
    setBatchNormFolding(false);
    const plain = model.predict(x) as tf.Tensor;
    setBatchNormFolding(true);
    const folded = model.predict(x) as tf.Tensor;
    const scale = tf.tidy(() => tf.max(tf.abs(plain)).dataSync()[0] as number);
    expect(maxDiff(folded, plain)).toBeLessThan(1e-4 * scale);
    const names = await kernels(() => model.predict(x) as tf.Tensor);
    expect(names.filter((k) => ['FusedBatchNorm', 'PadV2', 'ClipByValue'].includes(k))).toEqual([]);
    tf.dispose([plain, folded, x]);
    model.dispose();
  });

  it('ResNet50V2 folds its conv -> BN -> ReLU chains (32, two per block), and a frozen backbone inside a model', async () => {
    await useBackend('wasm');
    const backbone = resnet50v2({ inputShape: [32, 32, 3] });
    expect(planFolds(backbone as unknown as tfl.layers.Layer).size).toBe(32);
    const input = tfl.input({ shape: [32, 32, 3] });
    const features = backbone.apply(input) as tfl.SymbolicTensor;
    const outer = tfl.model({
      inputs: input,
      outputs: tfl.layers.dense({ units: 2 }).apply(features) as tfl.SymbolicTensor,
    });
    freeze(backbone);
    installBatchNormFolding(outer);
    const x = tf.tensor4d(values(32 * 32 * 3, 8, -1, 1), [1, 32, 32, 3]);
    const names = await kernels(() => outer.predict(x) as tf.Tensor);
    // Only the pre-activation BatchNormalization layers (17, and post_bn) remain.
    expect(names.filter((k) => k === 'FusedBatchNorm').length).toBe(17);
    tf.dispose(x);
    outer.dispose();
  });
});
