import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  arraySource,
  type Batch,
  batches,
  Compose,
  classWeights,
  findLeaks,
  Letterbox,
  OneOf,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  Resize,
  setupBackend,
  stratifiedKFold,
  stratifiedSplit,
  syntheticDataset,
  type Transform,
  withoutLeaks,
} from '../../src/index.js';

describe('synthetic phantoms', () => {
  it('are seeded, balanced, in range, and differ between seeds and classes', () => {
    const a = syntheticDataset({ kind: 'brain-mri', perClass: 3, size: 32, seed: 1 });
    const b = syntheticDataset({ kind: 'brain-mri', perClass: 3, size: 32, seed: 1 });
    const c = syntheticDataset({ kind: 'brain-mri', perClass: 3, size: 32, seed: 2 });
    expect(a.classes).toEqual(['glioma', 'meningioma', 'notumor', 'pituitary']);
    expect(a.samples.map((s) => s.label)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    expect(a.samples.map((s) => Array.from(s.pixels))).toEqual(b.samples.map((s) => Array.from(s.pixels)));
    expect(Array.from(a.samples[0]!.pixels)).not.toEqual(Array.from(c.samples[0]!.pixels));
    for (const s of a.samples) {
      expect(s.pixels.length).toBe(32 * 32);
      expect(Math.min(...s.pixels)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...s.pixels)).toBeLessThanOrEqual(255);
    }
    const us = syntheticDataset({ kind: 'breast-ultrasound', perClass: 2, size: 24, seed: 3 });
    expect(us.classes).toEqual(['benign', 'malignant', 'normal']);
    expect(() => syntheticDataset({ kind: 'ct' as 'brain-mri', perClass: 1, seed: 1 })).toThrow(
      /kind must be/,
    );
  });

  it('lesion classes carry their structure: pituitary is bright at the midline base, notumor is not', () => {
    const d = syntheticDataset({ kind: 'brain-mri', perClass: 30, size: 48, seed: 5 });
    const base = (p: Float32Array) => {
      let m = 0;
      for (let y = 30; y < 42; y++) for (let x = 19; x < 29; x++) m = Math.max(m, p[y * 48 + x]!);
      return m;
    };
    const mean = (label: number) => {
      const xs = d.samples.filter((s) => s.label === label).map((s) => base(s.pixels));
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    expect(mean(3) - mean(2)).toBeGreaterThan(20);
  });
});

describe('splits, class weights and leaks', () => {
  const samples = Array.from({ length: 100 }, (_, i) => ({
    label: i < 70 ? 0 : 1,
    path: `f${i}`,
    hash: `h${i % 90}`,
  }));

  it('stratifies per class, is seeded, and keeps duplicates on one side', () => {
    const { train, validation } = stratifiedSplit(samples, { validation: 0.2, seed: 1 });
    expect(train.length + validation.length).toBe(100);
    const count = (xs: typeof samples, l: number) => xs.filter((s) => s.label === l).length;
    expect(Math.abs(count(validation, 0) - 14)).toBeLessThanOrEqual(1);
    expect(Math.abs(count(validation, 1) - 6)).toBeLessThanOrEqual(1);
    expect(findLeaks(train, validation)).toEqual([]);
    const again = stratifiedSplit(samples, { validation: 0.2, seed: 1 });
    expect(again.validation.map((s) => s.path)).toEqual(validation.map((s) => s.path));
    const other = stratifiedSplit(samples, { validation: 0.2, seed: 2 });
    expect(other.validation.map((s) => s.path)).not.toEqual(validation.map((s) => s.path));
    const loose = stratifiedSplit(samples, { validation: 0.5, seed: 3, keepDuplicatesTogether: false });
    expect(findLeaks(loose.train, loose.validation).length).toBeGreaterThan(0);
    expect(() => stratifiedSplit(samples, { validation: 1.5, seed: 1 })).toThrow(
      /validation must be a fraction in \(0, 1\)/,
    );
  });

  it('stratifiedKFold: each sample validates once, classes spread evenly, duplicates in one fold, seeded', () => {
    // BUSI-like counts: 35 / 17 / 11, with two duplicate pairs (one across classes, as in BUSI).
    const samples = [35, 17, 11].flatMap((n, label) =>
      Array.from({ length: n }, (_, i) => ({ label, path: `${label}/${i}`, hash: `${label}-${i}` })),
    );
    samples[3]!.hash = 'dup';
    samples[36]!.hash = 'dup'; // label 1
    samples[5]!.hash = 'pair';
    samples[6]!.hash = 'pair';
    const folds = stratifiedKFold(samples, { folds: 5, seed: 3 });
    expect(folds).toHaveLength(5);
    const seen = folds.flatMap((f) => f.validation.map((s) => s.path)).sort();
    expect(seen).toEqual(samples.map((s) => s.path).sort());
    for (const f of folds) {
      expect(f.train.length + f.validation.length).toBe(samples.length);
      expect(findLeaks(f.train, f.validation)).toEqual([]);
      // Per class, fold sizes differ by at most one unit (the duplicate pair counts 2).
      for (const [label, n] of [35, 17, 11].entries()) {
        const c = f.validation.filter((s) => s.label === label).length;
        expect(Math.abs(c - n / 5)).toBeLessThanOrEqual(2);
      }
    }
    const again = stratifiedKFold(samples, { folds: 5, seed: 3 });
    expect(again.map((f) => f.validation.map((s) => s.path))).toEqual(
      folds.map((f) => f.validation.map((s) => s.path)),
    );
    const other = stratifiedKFold(samples, { folds: 5, seed: 4 });
    expect(other.map((f) => f.validation.map((s) => s.path))).not.toEqual(
      folds.map((f) => f.validation.map((s) => s.path)),
    );
    expect(() => stratifiedKFold(samples, { folds: 1, seed: 1 })).toThrow(
      /folds must be an integer >= 2, got 1/,
    );
    expect(() => stratifiedKFold(samples.slice(0, 3), { folds: 5, seed: 1 })).toThrow(
      /3 samples cannot fill 5 folds/,
    );
  });

  it('withoutLeaks keeps a test set held out: test files whose content is in training are dropped and reported', () => {
    const training = [
      { label: 0, hash: 'a', path: 'Training/glioma/1.jpg' },
      { label: 1, hash: 'b', path: 'Training/meningioma/2.jpg' },
    ];
    const test = [
      { label: 0, hash: 'a', path: 'Testing/glioma/9.jpg' },
      { label: 2, hash: 'c', path: 'Testing/notumor/3.jpg' },
      { label: 1, hash: 'b', path: 'Testing/meningioma/4.jpg' },
      { label: 1, hash: 'd', path: 'Testing/meningioma/5.jpg' },
    ];
    const { kept, dropped } = withoutLeaks(test, training);
    expect(kept.map((s) => s.path)).toEqual(['Testing/notumor/3.jpg', 'Testing/meningioma/5.jpg']);
    expect(dropped.map((d) => [d.sample.path, d.matches.map((m) => m.path)])).toEqual([
      ['Testing/glioma/9.jpg', ['Training/glioma/1.jpg']],
      ['Testing/meningioma/4.jpg', ['Training/meningioma/2.jpg']],
    ]);
    expect(() => withoutLeaks([{ label: 0, path: 'x.png' }], training)).toThrow(/x.png has no hash/);
  });

  it('classWeights are scikit-learn balanced weights (BUSI counts)', () => {
    const busi = [...Array(350).fill(0), ...Array(168).fill(1), ...Array(106).fill(2)].map((label) => ({
      label,
    }));
    const w = classWeights(busi);
    expect(w[0]).toBeCloseTo(624 / (3 * 350), 12);
    expect(w[1]).toBeCloseTo(624 / (3 * 168), 12);
    expect(w[2]).toBeCloseTo(624 / (3 * 106), 12);
  });
});

describe('batches', () => {
  beforeAll(() => setupBackend('cpu'));
  const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 5, size: 16, seed: 1 });
  const source = arraySource(data.samples, { height: 16, width: 16, numClasses: 3 });

  it('yields one-hot batches through a transform, with a seeded order per epoch, and leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const seen: number[][] = [];
    for await (const b of batches(source, {
      batchSize: 4,
      shuffle: true,
      seed: 3,
      transform: new Resize({ height: 8, width: 8 }),
    })) {
      expect(b.xs.shape.slice(1)).toEqual([8, 8, 1]);
      expect(b.ys.shape).toEqual([b.xs.shape[0], 3]);
      expect((b.ys.arraySync() as number[][]).map((row) => row.indexOf(1))).toEqual(b.labels);
      seen.push(b.indices);
      tf.dispose([b.xs, b.ys]);
    }
    expect(seen.map((g) => g.length)).toEqual([4, 4, 4, 3]);
    expect(seen.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(tf.memory().numTensors).toBe(before);
    const order = async (epoch: number) => {
      const out: number[] = [];
      for await (const b of batches(source, { batchSize: 15, shuffle: true, seed: 3, epoch })) {
        out.push(...b.indices);
        tf.dispose([b.xs, b.ys]);
      }
      return out;
    };
    expect(await order(0)).toEqual(seen.flat());
    expect(await order(1)).not.toEqual(seen.flat());
  });

  it('augments the same way whatever order the files finish loading in (decoding on a thread pool)', async () => {
    // Later samples load first, as a slow decode of an early file makes them.
    const slowFirst = {
      ...source,
      load: (i: number) =>
        new Promise<tf.Tensor3D>((resolve) => setTimeout(() => resolve(source.load(i)), 5 * (15 - i))),
    };
    const flips = async (s: typeof source) => {
      const out: number[][] = [];
      for await (const b of batches(s, {
        batchSize: 3,
        prefetch: 4,
        transform: new RandomHorizontalFlip({ seed: 7 }),
      })) {
        // Which images came out mirrored: compare each with its untransformed self.
        const loaded = await Promise.all(b.indices.map((i) => source.load(i)));
        const raw = tf.stack(loaded);
        tf.dispose(loaded);
        out.push(
          b.indices.map((_, k) =>
            Number(
              tf.tidy(() => tf.any(tf.notEqual(tf.slice(raw, k, 1), tf.slice(b.xs, k, 1))).dataSync()[0]),
            ),
          ),
        );
        tf.dispose([raw, b.xs, b.ys]);
      }
      return out;
    };
    const before = tf.memory().numTensors;
    const inOrder = await flips(source);
    expect(await flips(slowFirst)).toEqual(inOrder);
    // The flips really are random: some images mirrored, some not.
    expect(new Set(inOrder.flat())).toEqual(new Set([0, 1]));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees prefetched batches when the consumer stops early', async () => {
    const before = tf.memory().numTensors;
    for await (const b of batches(source, {
      batchSize: 2,
      prefetch: 3,
      transform: new RandomHorizontalFlip({ seed: 1 }),
    })) {
      tf.dispose([b.xs, b.ys]);
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names the sample whose size differs from the batch', async () => {
    const mixed = arraySource(
      [
        { pixels: new Float32Array(16), label: 0 },
        { pixels: new Float32Array(16), label: 1 },
      ],
      { height: 4, width: 4, numClasses: 2 },
    );
    const odd = {
      ...mixed,
      load: async (i: number) => (i === 1 ? tf.zeros([5, 4, 1]) : tf.zeros([4, 4, 1])) as tf.Tensor3D,
    };
    await expect(batches(odd, { batchSize: 2 }).next()).rejects.toThrow(
      /images in a batch differ in size \(\[4,4,1\] vs \[5,4,1\] for sample 1\): add a Letterbox or Resize transform/,
    );
    const ok = batches(odd, { batchSize: 2, transform: new Letterbox({ height: 4, width: 4 }) });
    const b = (await ok.next()).value!;
    expect(b.xs.shape).toEqual([2, 4, 4, 1]);
    tf.dispose([b.xs, b.ys]);
  });

  describe('skip', () => {
    const flips = () => new Compose([new RandomHorizontalFlip(), new Rescale({ scale: 2 })], { seed: 5 });
    /** One shuffled epoch in batches of 4, with the loads counted, the images kept by position. */
    const epoch = async (options: {
      skip?: (index: number, variant: string) => boolean;
      transform?: Transform;
      src?: typeof source;
    }) => {
      const transform = options.transform ?? flips();
      let loads = 0;
      const src = options.src ?? source;
      const counted = {
        ...src,
        load: (i: number) => {
          loads++;
          return src.load(i);
        },
      };
      const out: { batch: Omit<Batch, 'xs' | 'ys'>; xs: number[][]; ys: number[][] }[] = [];
      for await (const b of batches(counted, {
        batchSize: 4,
        shuffle: true,
        seed: 3,
        transform,
        ...(options.skip ? { skip: options.skip } : {}),
      })) {
        const { xs, ys, ...rest } = b;
        out.push({
          batch: rest,
          xs: tf.tidy(() => tf.reshape(xs, [xs.shape[0], -1]).arraySync() as number[][]),
          ys: ys.arraySync() as number[][],
        });
        tf.dispose([xs, ys]);
      }
      return { out, loads, state: transform.getState() };
    };

    it('leaves out the images it is asked to, draws their choices anyway, and leaks nothing', async () => {
      const before = tf.memory().numTensors;
      const all = await epoch({});
      const asked: [number, string][] = [];
      const some = await epoch({
        skip: (index, variant) => {
          asked.push([index, variant]);
          return index % 3 === 0;
        },
      });
      expect(tf.memory().numTensors).toBe(before);
      // Asked once per image, with the variant the image got without skipping.
      expect(asked).toEqual(all.out.flatMap((o) => o.batch.indices.map((i, k) => [i, o.batch.variants![k]])));
      expect(new Set(asked.map(([, v]) => v))).toEqual(new Set(['flipped|', '|']));
      // Five of the 15 images are left out: not loaded, not in xs; the rest are as without skip.
      expect(some.loads).toBe(10);
      expect(all.loads).toBe(15);
      some.out.forEach((o, j) => {
        const full = all.out[j]!;
        expect(o.batch.indices).toEqual(full.batch.indices);
        expect(o.batch.variants).toEqual(full.batch.variants);
        expect(o.ys).toEqual(full.ys);
        const kept = o.batch.indices.flatMap((i, k) => (i % 3 === 0 ? [] : [k]));
        expect(o.batch.loaded ?? o.batch.indices.map((_, k) => k)).toEqual(kept);
        expect(o.xs.length).toBe(kept.length);
        kept.forEach((k, r) => {
          expect(o.xs[r]).toEqual(full.xs[k]);
        });
      });
      // The generators end where they end without skipping.
      expect(some.state).toEqual(all.state);
      // A batch can be left out whole: xs is empty, with the images' size.
      for await (const b of batches(source, { batchSize: 4, transform: flips(), skip: () => true })) {
        expect(b.xs.shape).toEqual([0, 16, 16, 1]);
        expect(b.loaded).toEqual([]);
        expect(b.ys.shape).toEqual([b.indices.length, 3]);
        tf.dispose([b.xs, b.ys]);
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it('is not asked where a choice has no variant or the source does not know the sizes', async () => {
      const rotation = new Compose([new RandomRotation({ degrees: 10 }), new Rescale({ scale: 2 })]);
      let asked = 0;
      const skip = () => {
        asked++;
        return true;
      };
      const continuous = await epoch({ transform: rotation, skip });
      expect(asked).toBe(0);
      expect(continuous.loads).toBe(15);
      // Where some images have a variant and some not, only those with one are asked about.
      const mixed = new OneOf([new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 })], { seed: 4 });
      const variants: string[] = [];
      const some = await epoch({
        transform: mixed,
        skip: (_, variant) => {
          variants.push(variant);
          return true;
        },
      });
      expect(variants.length).toBeGreaterThan(3);
      expect(variants.length).toBeLessThan(15);
      expect(variants.every((v) => v.startsWith('0('))).toBe(true);
      expect(some.loads).toBe(15 - variants.length);
      const { size: _, ...unsized } = source;
      const noSizes = await epoch({ src: unsized, skip });
      expect(asked).toBe(0);
      expect(noSizes.loads).toBe(15);
    });

    it('names the sample whose decoded size differs from the size its source gave', async () => {
      const lying = {
        ...source,
        size: (i: number) => (i === 2 ? [16, 8, 1] : [16, 16, 1]) as [number, number, number],
      };
      await expect(
        batches(lying, { batchSize: 4, transform: flips(), skip: () => false }).next(),
      ).rejects.toThrow(/sample 2 decoded to \[16,16,1\], but its source gave its size as \[16,8,1\]/);
    });
  });
});
