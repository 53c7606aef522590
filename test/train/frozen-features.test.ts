import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { finalizeModel } from '../../src/models/finalize.js';
import {
  arraySource,
  Compose,
  DeterministicTransform,
  GaussianBlur,
  mobilenetV2,
  OneOf,
  progressCallback,
  RandomApply,
  RandomHorizontalFlip,
  RandomRotation,
  RandomVerticalFlip,
  Rescale,
  setupBackend,
  Transform,
  train,
  transferModel,
  unfreeze,
} from '../../src/node.js';
import { FrozenFeatureCache, frozenSplit } from '../../src/train/frozen-features.js';
import { expectNoLeak, testImage } from '../helpers.js';

const size = 32;

/** MobileNetV2-0.35 at 32 x 32 with a new head; `from`: the first layer to train. */
function backboneModel(from?: string, seed = 1) {
  const backbone = mobilenetV2({ alpha: 0.35, inputShape: [size, size, 3] });
  const model = transferModel({ backbone, numClasses: 3, seed, dropout: 0.2 });
  if (from) unfreeze(model, { from });
  return model;
}

/** 18 images, 3 classes: a pixel pattern per image, brighter by class. */
function images(n = 18, seed = 7) {
  return Array.from({ length: n }, (_, i) => {
    const img = testImage(size, size, 3, seed + i);
    const pixels = img.dataSync().map((v) => Math.min(255, v * 0.6 + 40 * (i % 3)));
    img.dispose();
    return { pixels: Float32Array.from(pixels), label: i % 3 };
  });
}
const source = (s: ReturnType<typeof images>) =>
  arraySource(s, { height: size, width: size, channels: 3, numClasses: 3 });
const weightsOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Float32Array.from(w.dataSync()));
/** How many weights differ between two runs (a count, not a diff of 400,000 numbers). */
const differing = (a: Float32Array[], b: Float32Array[]) => {
  expect(a.map((w) => w.length)).toEqual(b.map((w) => w.length));
  return a.reduce((n, w, i) => n + w.filter((v, j) => !Object.is(v, (b[i] as Float32Array)[j])).length, 0);
};

describe('Transform.variant', () => {
  beforeAll(() => setupBackend('cpu'));
  const one = () => tf.zeros([4, 4, 1]) as tf.Tensor3D;
  const run = (t: Transform) => {
    tf.dispose(t.apply(one()));
    return t.variant();
  };
  it('keys discrete choices and refuses continuous ones', () => {
    expect(run(new Rescale({ scale: 2 }))).toBe('');
    expect(run(new RandomHorizontalFlip({ p: 1 }))).toBe('flipped');
    expect(run(new RandomHorizontalFlip({ p: 0 }))).toBe('');
    expect(
      run(
        new Compose([
          new RandomHorizontalFlip({ p: 1 }),
          new RandomVerticalFlip({ p: 0 }),
          new Rescale({ scale: 2 }),
        ]),
      ),
    ).toBe('flipped||');
    expect(run(new Compose([new RandomHorizontalFlip({ p: 0 }), new RandomVerticalFlip({ p: 1 })]))).toBe(
      '|flipped',
    );
    expect(run(new RandomApply([new Rescale({ scale: 2 })], { p: 1 }))).toBe('()');
    expect(run(new RandomApply([new Rescale({ scale: 2 })], { p: 0 }))).toBe('-');
    expect(
      run(new OneOf([new Rescale({ scale: 2 }), new RandomHorizontalFlip({ p: 1 })], { weights: [0, 1] })),
    ).toBe('1(flipped)');
    // Continuous parameters, and anything inside them, have no key.
    expect(run(new RandomRotation({ degrees: 10 }))).toBeNull();
    expect(run(new GaussianBlur({ kernelSize: 3, sigma: [0.1, 2] }))).toBeNull();
    expect(run(new Compose([new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 })]))).toBeNull();
    expect(run(new RandomApply([new RandomRotation({ degrees: 10 })], { p: 1 }))).toBeNull();
  });

  it('has no key for a batch, a transform that does not say, or before any apply', () => {
    const flip = new RandomHorizontalFlip({ p: 1 });
    expect(flip.variant()).toBeNull();
    tf.dispose(flip.apply(tf.zeros([2, 4, 4, 1]) as tf.Tensor4D));
    expect(flip.variant()).toBeNull();
    class Mine extends Transform {
      readonly name = 'Mine';
      apply<T extends tf.Tensor3D | tf.Tensor4D>(image: T): T {
        return tf.add(image, Math.random()) as T;
      }
      getConfig() {
        return {};
      }
    }
    expect(run(new Mine())).toBeNull();
    class Doubling extends DeterministicTransform {
      readonly name = 'Doubling';
      apply<T extends tf.Tensor3D | tf.Tensor4D>(image: T): T {
        return tf.mul(image, 2) as T;
      }
      getConfig() {
        return {};
      }
    }
    expect(run(new Doubling())).toBe('');
  });
});

describe('frozenSplit', () => {
  it('cuts where the frozen layers end, inside a nested backbone or after it', async () => {
    await setupBackend('cpu');
    const partly = backboneModel('block_13_expand');
    expect(frozenSplit(partly)?.name).toBe('block_12_add');
    expect(frozenSplit(partly)?.shape).toEqual([2, 2, 32]);
    // A frozen backbone: the pooling after it has no weights, so the cut is the pooled features.
    const frozen = backboneModel();
    expect(frozenSplit(frozen)?.name).toBe('head_pool');
    expect(frozenSplit(frozen)?.shape).toEqual([1280]);
    // Everything trains: nothing before the first trained layer.
    const all = backboneModel();
    unfreeze(all, { all: true });
    expect(frozenSplit(all)).toBeNull();
    tf.dispose([partly, frozen, all].flatMap((m) => m.getWeights()));
  });

  it('finds no cut where a connection crosses the frozen part, and stops at random layers', () => {
    const input = tfl.input({ shape: [8, 8, 2] });
    const a = tfl.layers
      .conv2d({ filters: 2, kernelSize: 1, trainable: false })
      .apply(input) as tfl.SymbolicTensor;
    const c = tfl.layers
      .conv2d({ filters: 2, kernelSize: 1, trainable: false })
      .apply(a) as tfl.SymbolicTensor;
    const d = tfl.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(c) as tfl.SymbolicTensor;
    const sum = tfl.layers.add().apply([a, d]) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 2 }).apply(tfl.layers.flatten().apply(sum)) as tfl.SymbolicTensor;
    expect(frozenSplit(tfl.model({ inputs: input, outputs: out }))).toBeNull();
    // Dropout draws in training: the frozen part ends before it.
    const x = tfl.input({ shape: [8, 8, 2] });
    const y = tfl.layers
      .conv2d({ filters: 2, kernelSize: 1, trainable: false, name: 'frozen_conv' })
      .apply(x);
    const z = tfl.layers.dropout({ rate: 0.5 }).apply(y) as tfl.SymbolicTensor;
    const w = tfl.layers.dense({ units: 2 }).apply(tfl.layers.flatten().apply(z)) as tfl.SymbolicTensor;
    expect(frozenSplit(tfl.model({ inputs: x, outputs: w }))?.name).toBe('frozen_conv');
    // A frozen BatchNormalization computes batch statistics while training in plain tfjs-layers:
    // the frozen part ends before it, unless the model has the Keras semantics (finalizeModel).
    const build = () => {
      const i = tfl.input({ shape: [8, 8, 2] });
      const conv = tfl.layers.conv2d({ filters: 2, kernelSize: 1, trainable: false, name: 'conv' }).apply(i);
      const bn = tfl.layers.batchNormalization({ trainable: false, name: 'bn' }).apply(conv);
      const out = tfl.layers
        .dense({ units: 2 })
        .apply(tfl.layers.flatten({ name: 'flat' }).apply(bn)) as tfl.SymbolicTensor;
      return tfl.model({ inputs: i, outputs: out });
    };
    expect(frozenSplit(build())?.name).toBe('conv');
    expect(frozenSplit(finalizeModel(build()))?.name).toBe('flat');
  });

  it('computes what the whole model computes, to the bit, with its gradients, and leaks nothing (wasm)', async () => {
    await setupBackend('wasm');
    const model = backboneModel('block_13_expand');
    const split = frozenSplit(model);
    if (!split) throw new Error('no split');
    const x = tf.randomUniform([4, size, size, 3], -1, 1, 'float32', 3);
    const cut = split.prefix(x);
    const same = (a: tf.Tensor, b: tf.Tensor) =>
      expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    tf.tidy(() => {
      same(split.suffix(cut, false), model.predict(x) as tf.Tensor);
      same(split.suffix(cut, true), model.apply(x, { training: true }) as tf.Tensor);
    });
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const loss = (f: () => tf.Tensor) => () => tf.sum(tf.square(f())) as tf.Scalar;
    const whole = tf.variableGrads(
      loss(() => model.apply(x, { training: true }) as tf.Tensor),
      vars,
    );
    const cutOnly = tf.variableGrads(
      loss(() => split.suffix(cut, true)),
      vars,
    );
    expect(Object.keys(cutOnly.grads)).toHaveLength(vars.length);
    for (const v of vars) same(cutOnly.grads[v.name] as tf.Tensor, whole.grads[v.name] as tf.Tensor);
    tf.dispose([whole.value, cutOnly.value, ...Object.values(whole.grads), ...Object.values(cutOnly.grads)]);
    await expectNoLeak(() => split.suffix(cut, false));
    await expectNoLeak(() => split.prefix(x));
    await expectNoLeak(() => {
      const g = tf.variableGrads(
        loss(() => split.suffix(cut, true)),
        vars,
      );
      return [g.value, ...Object.values(g.grads)];
    });
    tf.dispose([x, cut]);
  });

  it('caches per image and variant, up to maxBytes', async () => {
    await setupBackend('cpu');
    const model = backboneModel('block_13_expand');
    const split = frozenSplit(model);
    if (!split) throw new Error('no split');
    const xs = tf.randomUniform([3, size, size, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
    const batch = (variants: (string | null)[]) => ({
      xs,
      ys: tf.zeros([3, 3]) as tf.Tensor2D,
      labels: [0, 1, 2],
      indices: [4, 5, 6],
      variants,
    });
    const perImage = 2 * 2 * 32 * 4;
    const cache = new FrozenFeatureCache(split, 2 * perImage);
    const first = cache.features(batch(['', 'flipped', '']));
    expect(cache.summary()).toEqual({ cut: split.name, hits: 0, misses: 3, bytes: 2 * perImage });
    const again = cache.features(batch(['', 'flipped', '']));
    // Two fitted under maxBytes, the third is computed again; the values are the same.
    expect(cache.summary()).toMatchObject({ hits: 2, misses: 4 });
    expect(Array.from(again?.dataSync() ?? [])).toEqual(Array.from(first?.dataSync() ?? []));
    // An image without a variant is computed, not kept; the others come from the cache as before.
    const unkeyed = cache.features(batch(['', null, '']));
    expect(Array.from(unkeyed?.dataSync() ?? [])).toEqual(Array.from(first?.dataSync() ?? []));
    expect(cache.summary()).toMatchObject({ hits: 3, misses: 6, bytes: 2 * perImage });
    // No image with a variant: nothing to reuse, the whole model runs, nothing counted.
    expect(cache.features(batch([null, null, null]))).toBeNull();
    expect(cache.summary()).toMatchObject({ hits: 3, misses: 6 });
    expect(cache.has(4, '')).toBe(true);
    expect(cache.has(4, 'flipped')).toBe(false);
    // A batch that left out its kept images (`loaded`: xs holds positions 1 and 2) gives the same.
    const rest = tf.gather(xs, [1, 2]) as tf.Tensor4D;
    const partial = cache.features({ ...batch(['', 'flipped', '']), xs: rest, loaded: [1, 2] });
    expect(Array.from(partial?.dataSync() ?? [])).toEqual(Array.from(first?.dataSync() ?? []));
    // Leaving out an image that is not kept is refused by name.
    expect(() => cache.features({ ...batch(['', 'new', '']), xs: rest, loaded: [0, 2] })).toThrow(
      /sample 5 was left out of its batch, but its frozen features are not kept/,
    );
    tf.dispose([first, again, unkeyed, partial, rest].filter((t): t is tf.Tensor => t !== null));
    await expectNoLeak(() => {
      const b = batch(['', 'other', '']);
      b.ys.dispose();
      return cache.features(b);
    });
    xs.dispose();
  });
});

describe('train with frozen features', () => {
  const run = async (
    options: {
      frozenFeatures?: boolean | { maxBytes: number };
      transform?: Transform;
      epochs?: number;
      optimizer?: () => tf.Optimizer;
      write?: (line: string) => void;
    },
    onEpoch?: (model: tfl.LayersModel, epoch: number) => void,
  ) => {
    const model = backboneModel('block_16_expand', 2);
    const data = images();
    let loads = 0;
    const counted = (s: ReturnType<typeof source>) => ({
      ...s,
      load: (i: number) => {
        loads++;
        return s.load(i);
      },
    });
    const result = await train({
      model,
      train: counted(source(data.slice(0, 12))),
      validation: counted(source(data.slice(12))),
      optimizer: options.optimizer?.() ?? tf.train.adam(1e-3),
      epochs: options.epochs ?? 3,
      batchSize: 4,
      seed: 3,
      transform:
        options.transform ??
        new Compose([new RandomHorizontalFlip(), new Rescale({ scale: 1 / 127.5, offset: -1 })], { seed: 2 }),
      validationTransform: new Rescale({ scale: 1 / 127.5, offset: -1 }),
      ...(options.frozenFeatures !== undefined ? { frozenFeatures: options.frozenFeatures } : {}),
      callbacks: [
        ...(onEpoch ? [{ onEpochBegin: (e: number) => onEpoch(model, e) }] : []),
        ...(options.write ? [progressCallback({ write: options.write })] : []),
      ],
    });
    const weights = weightsOf(model);
    tf.dispose(model.getWeights());
    return { result, weights, loads };
  };

  it('trains to the same weights and history as the whole model, on wasm and cpu', async () => {
    for (const backend of ['wasm', 'cpu'] as const) {
      await setupBackend(backend);
      const off = await run({ frozenFeatures: false });
      const on = await run({});
      expect(on.result.history).toEqual(off.result.history);
      expect(differing(on.weights, off.weights)).toBe(0);
      expect(off.result.frozenFeatures).toBeUndefined();
      const stats = on.result.frozenFeatures;
      expect(stats?.train.cut).toBe('block_15_add');
      // 12 images x 3 epochs; flips at p = 0.5 come back the same from the second epoch on.
      expect((stats?.train.hits ?? 0) + (stats?.train.misses ?? 0)).toBe(36);
      expect(stats?.train.hits).toBeGreaterThan(6);
      expect(stats?.train.misses).toBeGreaterThanOrEqual(12);
      // 6 validation images: computed in the first epoch, cached for the other two.
      expect(stats?.validation).toMatchObject({ hits: 12, misses: 6 });
      // Images whose features were kept were neither loaded nor transformed.
      expect(off.loads).toBe(36 + 18);
      expect(on.loads).toBe((stats?.train.misses ?? 0) + 6);
    }
  });

  it('runs the whole model where the augmentation is continuous or nothing fits', async () => {
    await setupBackend('wasm');
    const rotation = () =>
      new Compose([new RandomRotation({ degrees: 10 }), new Rescale({ scale: 1 / 127.5, offset: -1 })]);
    const lines: string[] = [];
    const continuous = await run({ transform: rotation(), epochs: 2, write: (l) => lines.push(l) });
    // Batches of rotated images only run the whole model: nothing computed apart, nothing kept.
    expect(continuous.result.frozenFeatures?.train).toMatchObject({ hits: 0, misses: 0, bytes: 0 });
    expect(continuous.result.frozenFeatures?.validation).toMatchObject({ hits: 6, misses: 6 });
    // The progress callback says what the cache saved: validation's 6 images, in epoch 2.
    expect(lines.at(-1)).toBe(
      'frozen layers (through block_15_add) reused for 6 of 12 images (0.0 MiB kept)',
    );
    // A OneOf of a flip and a rotation: flipped images are kept and skipped, rotated ones run
    // apart in the same batch; the weights are still the whole model's.
    const mixed = () =>
      new Compose(
        [
          new OneOf([new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 })]),
          new Rescale({ scale: 1 / 127.5, offset: -1 }),
        ],
        { seed: 3 },
      );
    const some = await run({ transform: mixed(), epochs: 3 });
    const stats = some.result.frozenFeatures?.train;
    expect((stats?.hits ?? 0) + (stats?.misses ?? 0)).toBe(36);
    expect(stats?.hits).toBeGreaterThan(0);
    expect(some.loads).toBe((stats?.misses ?? 0) + 6);
    const someOff = await run({ transform: mixed(), epochs: 3, frozenFeatures: false });
    expect(differing(some.weights, someOff.weights)).toBe(0);
    expect(some.result.history).toEqual(someOff.result.history);
    const whole = await run({ transform: rotation(), epochs: 2, frozenFeatures: false });
    expect(differing(continuous.weights, whole.weights)).toBe(0);
    const none = await run({ frozenFeatures: { maxBytes: 0 }, epochs: 2 });
    expect(none.result.frozenFeatures?.train).toMatchObject({ hits: 0, misses: 24, bytes: 0 });
    expect(differing(none.weights, (await run({ frozenFeatures: false, epochs: 2 })).weights)).toBe(0);
  });

  it('plans again when a callback changes which layers train', async () => {
    await setupBackend('wasm');
    const more = (model: tfl.LayersModel, epoch: number) => {
      if (epoch === 1) unfreeze(model, { from: 'block_15_expand' });
    };
    // Plain SGD: Adam's moments are kept per position in the list of trained weights, which changes.
    const sgd = () => tf.train.sgd(0.05);
    const on = await run({ optimizer: sgd }, more);
    const off = await run({ frozenFeatures: false, optimizer: sgd }, more);
    expect(differing(on.weights, off.weights)).toBe(0);
    expect(on.result.history).toEqual(off.result.history);
    expect(on.result.frozenFeatures?.train.cut).toBe('block_14_add');
  });

  it('refuses a bad frozenFeatures option', async () => {
    const bad = 'yes' as unknown as boolean;
    await expect(run({ frozenFeatures: bad })).rejects.toThrow(
      /frozenFeatures must be true, false or \{ maxBytes \}, got "yes"/,
    );
  });

  it('refuses a bad maxBytes', async () => {
    await expect(run({ frozenFeatures: { maxBytes: -1 } })).rejects.toThrow(
      /frozenFeatures.maxBytes must be a number >= 0/,
    );
  });
});
