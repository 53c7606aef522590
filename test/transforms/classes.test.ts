import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ColorJitter,
  Compose,
  CropToForeground,
  erasingAttempt,
  GaussianBlur,
  Grayscale,
  Letterbox,
  Normalize,
  OneOf,
  RandomApply,
  RandomErasing,
  RandomHorizontalFlip,
  RandomRotation,
  RandomVerticalFlip,
  Rescale,
  Resize,
  registeredTransforms,
  type Transform,
  transformFromJSON,
  Window,
} from '../../src/index.js';
import fixtures from '../fixtures/transforms.json' with { type: 'json' };
import { maxAbsDiff, testImage, useBackend } from '../helpers.js';

/** One instance of every transform the library exports, random ones with p = 1 where it matters. */
function everyTransform(): Transform[] {
  return [
    new Letterbox({ height: 10, width: 12, fill: 3 }),
    new Resize({ height: 7, width: 5 }),
    new CropToForeground({ threshold: 0, margin: 1 }),
    new Grayscale({ outputChannels: 3 }),
    new Normalize({ mean: [10, 20, 30], std: [2, 3, 4] }),
    new Rescale({ scale: 1 / 255 }),
    new Window({ center: 100, width: 120 }),
    new Window({ center: 90, width: 60, voiFunction: 'SIGMOID' }),
    new GaussianBlur({ kernelSize: 3, sigma: [0.5, 2], seed: 3 }),
    new GaussianBlur({ kernelSize: [3, 5], sigma: 1.1 }),
    new RandomErasing({ p: 1, seed: 4 }),
    new RandomErasing({ p: 1, value: 'random', scale: [0.1, 0.3], seed: 5 }),
    new RandomErasing({ p: 1, value: [1, 2, 3], seed: 6 }),
    new RandomHorizontalFlip({ seed: 7 }),
    new RandomVerticalFlip({ p: 0.7, seed: 8 }),
    new RandomRotation({ degrees: 25, fill: 9, seed: 9 }),
    new ColorJitter({ brightness: 0.4, contrast: [0.5, 1.5], seed: 10 }),
    new Compose([new GaussianBlur({ kernelSize: 3 }), new RandomErasing({ p: 1 })], { seed: 11 }),
    new RandomApply([new RandomHorizontalFlip({ p: 1 }), new Rescale({ scale: 2 })], { p: 0.5, seed: 12 }),
    new OneOf([new RandomRotation({ degrees: 10 }), new GaussianBlur({ kernelSize: 3 })], {
      weights: [1, 2],
      seed: 13,
    }),
  ];
}

describe.each(['cpu', 'wasm'] as const)('transform conformance (%s backend)', (backend) => {
  beforeAll(() => useBackend(backend));

  it('covers every transform of the serialization registry (a new transform must join this suite)', () => {
    const covered = new Set(everyTransform().map((t) => t.name));
    expect(registeredTransforms().filter((name) => !covered.has(name))).toEqual([]);
  });

  for (const make of everyTransform().map((_, i) => () => everyTransform()[i]!)) {
    const label = make().name + JSON.stringify(make().getConfig()).slice(0, 60);
    it(`${label}: input untouched, dtype kept, rank 3 == rank 4 per image, JSON round-trip, seeded, no leaks`, () => {
      const x = testImage(9, 11, 3, 17);
      const original = x.arraySync();
      const before = tf.memory().numTensors;

      // Same seed, same output; rank and dtype kept; input untouched; one tensor out.
      const a = make().apply(x);
      const b = make().apply(x);
      expect(tf.memory().numTensors).toBe(before + 2);
      expect(a.rank).toBe(3);
      expect(a.dtype).toBe('float32');
      expect(maxAbsDiff(x, original)).toBe(0);
      expect(maxAbsDiff(a, b.arraySync())).toBe(0);

      // JSON round-trip: same config and same output for the same (recorded) seed.
      const t = make();
      const json = JSON.parse(JSON.stringify(t));
      const copy = transformFromJSON(json);
      expect(copy.toJSON()).toEqual(json);
      const c = copy.apply(x);
      expect(maxAbsDiff(c, a.arraySync())).toBe(0);

      // A batch draws parameters per image, in order: image i equals the i-th single call.
      const single = make();
      const outs = [0, 1, 2].map(() => single.apply(x));
      const batch = tf.stack([x, x, x]) as tf.Tensor4D;
      const yb = make().apply(batch);
      expect(yb.rank).toBe(4);
      const parts = tf.unstack(yb);
      parts.forEach((p, i) => {
        expect(maxAbsDiff(p, outs[i]!.arraySync())).toBeLessThan(1e-4);
      });

      tf.dispose([a, b, c, ...outs, batch, yb, ...parts]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });

    it(`${label}: drawing ahead of the pixels, then applying, gives what apply gives`, () => {
      const x = testImage(9, 11, 3, 17);
      const size = { height: 9, width: 11, channels: 3 };
      const direct = make();
      const ahead = make();
      const declared = ahead.outputSize(size);
      const before = tf.memory().numTensors;
      // Four images drawn before any is applied, as batches does.
      const drawn = [0, 1, 2, 3].map(() => ahead.draw(size));
      if (declared === null) {
        // Nothing drawn: the generators are untouched.
        expect(drawn).toEqual([null, null, null, null]);
        expect(ahead.getState()).toEqual(direct.getState());
        expect(make().name).toBe('CropToForeground');
      } else {
        const outs = [0, 1, 2, 3].map(() => {
          const y = direct.apply(x);
          return { y, variant: direct.variant() };
        });
        drawn.forEach((d, i) => {
          const y = d!.apply(x);
          expect(d!.size).toEqual(declared);
          expect(y.shape).toEqual([declared.height, declared.width, declared.channels]);
          expect(maxAbsDiff(y, outs[i]!.y.arraySync())).toBe(0);
          expect(d!.variant).toBe(outs[i]!.variant);
          y.dispose();
        });
        expect(ahead.getState()).toEqual(direct.getState());
        tf.dispose(outs.map((o) => o.y));
      }
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });
  }
});

describe('random transforms', () => {
  beforeAll(() => useBackend('cpu'));

  it("RandomErasing's rectangle formula equals torchvision's get_params (incl. round-half-even and misfits)", () => {
    for (const c of fixtures.erasingAttempt) {
      const got = erasingAttempt(
        c.imageHeight,
        c.imageWidth,
        c.scale as [number, number],
        c.ratio as [number, number],
        c.uArea,
        c.uRatio,
      );
      expect(got).toEqual(c.size);
    }
  });

  it('RandomErasing samples areas within scale and ratios within ratio, and leaves the image alone if nothing fits', () => {
    const t = new RandomErasing({ p: 1, scale: [0.05, 0.2], ratio: [0.5, 2], seed: 1 });
    for (let i = 0; i < 200; i++) {
      const params = t.sampleParams({ height: 64, width: 64, channels: 1 });
      expect(params).not.toBeNull();
      const { top, left, height, width } = params!;
      expect(top + height).toBeLessThanOrEqual(64);
      expect(left + width).toBeLessThanOrEqual(64);
      const area = (height * width) / (64 * 64);
      expect(area).toBeGreaterThan(0.03); // rounding of h and w widens the range a little
      expect(area).toBeLessThan(0.23);
    }
    const never = new RandomErasing({ p: 1, scale: [0.99, 1], ratio: [1, 1], seed: 2 });
    expect(never.sampleParams({ height: 8, width: 8, channels: 1 })).toBeNull();
    const off = new RandomErasing({ p: 0, seed: 3 });
    expect(off.sampleParams({ height: 8, width: 8, channels: 1 })).toBeNull();
  });

  it('GaussianBlur samples sigma uniformly in its range and replays fixed parameters', () => {
    const t = new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2], seed: 5 });
    const sigmas = Array.from({ length: 500 }, () => t.sampleParams({ height: 8, width: 8, channels: 1 }));
    expect(Math.min(...sigmas)).toBeGreaterThanOrEqual(0.1);
    expect(Math.max(...sigmas)).toBeLessThan(2);
    const mean = sigmas.reduce((a, b) => a + b, 0) / sigmas.length;
    expect(mean).toBeGreaterThan(0.95);
    expect(mean).toBeLessThan(1.15);
  });

  it('different seeds give different augmentations; Compose gives siblings distinct seeds', () => {
    const x = testImage(16, 16, 1);
    const a = new RandomErasing({ p: 1, seed: 1 }).apply(x);
    const b = new RandomErasing({ p: 1, seed: 2 }).apply(x);
    expect(maxAbsDiff(a, b.arraySync())).toBeGreaterThan(0);
    const c = new Compose([new RandomErasing({ p: 1 }), new RandomErasing({ p: 1 })], { seed: 7 });
    const [s0, s1] = c.getConfig().transforms.map((t) => t.config.seed);
    expect(s0).not.toBe(s1);
    tf.dispose([x, a, b]);
  });

  it('RandomHorizontalFlip with p = 0.5 flips about half the time', () => {
    const t = new RandomHorizontalFlip({ seed: 3 });
    const flips = Array.from({ length: 1000 }, () => t.sampleParams()).filter(Boolean).length;
    expect(flips).toBeGreaterThan(450);
    expect(flips).toBeLessThan(550);
  });

  it('getState/setState replays a pipeline exactly (checkpoint resume)', () => {
    const x = testImage(12, 12, 3);
    const pipe = new Compose([new RandomErasing({ p: 0.7 }), new RandomRotation({ degrees: 30 })], {
      seed: 4,
    });
    tf.dispose(pipe.apply(x));
    const state = pipe.getState();
    const first = pipe.apply(x);
    pipe.setState(state);
    const again = pipe.apply(x);
    expect(maxAbsDiff(again, first.arraySync())).toBe(0);
    tf.dispose([x, first, again]);
  });

  it('bad arguments name the transform and the argument', () => {
    expect(() => new RandomErasing({ p: 1.5 })).toThrow(
      'Error in RandomErasing: p must be a probability in [0, 1], got 1.5',
    );
    expect(() => new RandomErasing({ scale: [0.5, 0.1] })).toThrow(
      /Error in RandomErasing: scale must be \[min, max\]/,
    );
    expect(() => new GaussianBlur({ kernelSize: 4 })).toThrow(
      /Error in GaussianBlur: kernelSize must be odd/,
    );
    expect(() => new GaussianBlur({ kernelSize: 3, sigma: -1 })).toThrow(
      /Error in GaussianBlur: sigma must be > 0/,
    );
    expect(() => new Normalize({ mean: [0], std: [0] })).toThrow(
      /Error in Normalize: std must not contain 0/,
    );
    expect(() => new OneOf([])).toThrow(/Error in OneOf: needs at least one transform/);
    expect(() => transformFromJSON({ name: 'Sharpen', config: {} })).toThrow(
      /unknown transform 'Sharpen'; known: Letterbox/,
    );
    const pipe = new Compose([
      new Letterbox({ height: 8, width: 8 }),
      new Normalize({ mean: [1, 2], std: [1, 1] }),
    ]);
    const x = testImage(4, 4, 3);
    expect(() => pipe.apply(x)).toThrow(
      /Error in Compose: step 1 \(Normalize\) failed: Error in normalize: mean has 2 values but the image has 3 channel/,
    );
    x.dispose();
  });
});
