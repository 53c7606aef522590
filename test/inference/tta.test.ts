/**
 * Test-time augmentation drawn from the flips a model was trained with: the views of `tta: 1, 2,
 * 4`, the flips found in a training transform and saved with the classifier by
 * `evaluateAndSave`, what a saved classifier then averages, and the errors when the model was
 * not trained with the flips asked for.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  arraySource,
  type ClassifierMeta,
  Compose,
  checkTta,
  describeTta,
  evaluate,
  evaluateAndSave,
  GaussianBlur,
  loadClassifier,
  OneOf,
  predictWithTta,
  RandomApply,
  RandomHorizontalFlip,
  RandomVerticalFlip,
  Rescale,
  saveClassifier,
  simpleCnn,
  syntheticDataset,
  trainingFlips,
  ttaViews,
  withTta,
} from '../../src/node.js';
import { expectNoLeak, useBackend } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-tta-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const size = 16;
const classNames = ['benign', 'malignant', 'normal'];
const pre = new Rescale({ scale: 1 / 255 });
const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 4, size, seed: 9 });
const source = () => arraySource(data.samples, { height: size, width: size, numClasses: 3 });
const decode = { channels: 1 as const, resize: { height: size, width: size, fit: 'fill' as const } };
/** The first images as decoded tensors (0-255) and as a preprocessed batch. */
const images = (n: number) =>
  data.samples.slice(0, n).map((s) => tf.tensor3d(Float32Array.from(s.pixels), [size, size, 1]));

let model: ReturnType<typeof simpleCnn>;
afterAll(() => model.dispose());
beforeAll(async () => {
  await useBackend('cpu');
  // Untrained: its outputs differ between an image and each of its flips.
  model = simpleCnn({ inputShape: [size, size, 1], numClasses: 3, filters: [4], dense: 8, seed: 3 });
});

/** The model's probabilities of `xs` mirrored along `axes` (1: vertical, 2: horizontal). */
function manual(xs: tf.Tensor4D, axes: number[]): number[][] {
  return tf.tidy(
    () => (model.predict(axes.length ? tf.reverse(xs, axes) : xs) as tf.Tensor).arraySync() as number[][],
  );
}

const mean = (rows: number[][][]) =>
  rows[0]!.map((r, i) => r.map((_, k) => rows.reduce((a, m) => a + m[i]![k]!, 0) / rows.length));

function expectClose(actual: number[][], expected: number[][]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((row, i) => row.forEach((p, k) => expect(p).toBeCloseTo(expected[i]![k]!, 6)));
}

/** Largest difference between two probability tables. */
const gap = (a: number[][], b: number[][]) =>
  Math.max(...a.flatMap((r, i) => r.map((p, k) => Math.abs(p - b[i]![k]!))));

describe('test-time augmentation views from the training flips', () => {
  it('tta 4 is the mean of the image, its horizontal and vertical flips and both; no tensor left behind', async () => {
    const xs = tf.tidy(() => tf.div(tf.stack(images(6)), 255)) as tf.Tensor4D;
    const expected = mean([manual(xs, []), manual(xs, [2]), manual(xs, [1]), manual(xs, [1, 2])]);
    const both = ['horizontal', 'vertical'] as const;
    expect(ttaViews(4, both)).toEqual([[], ['horizontal'], ['vertical'], ['horizontal', 'vertical']]);
    await expectNoLeak(() => {
      const p = predictWithTta(model, xs, 4, both);
      expectClose(p.arraySync() as number[][], expected);
      return p;
    });
    await expectNoLeak(() => {
      const p = withTta(model, 4, both).predict(xs) as tf.Tensor;
      expectClose(p.arraySync() as number[][], expected);
      return p;
    });
    // The four views differ here, so the mean is not any one of them.
    expect(gap(expected, manual(xs, []))).toBeGreaterThan(1e-5);
    // Without flips the old two views: the image and its horizontal flip.
    expect(predictWithTta(model, xs, 2).arraySync()).toEqual(
      tf.tidy(() =>
        tf
          .div(tf.add(model.predict(xs) as tf.Tensor, model.predict(tf.reverse(xs, 2)) as tf.Tensor), 2)
          .arraySync(),
      ),
    );
    // Two views with both flips: the image and the horizontal flip.
    expectClose(
      predictWithTta(model, xs, 2, both).arraySync() as number[][],
      mean([manual(xs, []), manual(xs, [2])]),
    );
    tf.dispose(xs);
  });

  it('trainingFlips finds the flips at any depth of Compose, RandomApply and OneOf; p 0 is no flip', () => {
    expect(trainingFlips(pre)).toEqual([]);
    expect(trainingFlips(null)).toEqual([]);
    expect(trainingFlips(new RandomHorizontalFlip())).toEqual(['horizontal']);
    expect(trainingFlips(new Compose([new RandomVerticalFlip(), pre]))).toEqual(['vertical']);
    const nested = new Compose([
      new RandomApply([
        new OneOf([new GaussianBlur({ kernelSize: 3, sigma: [0.1, 1] }), new RandomVerticalFlip()]),
      ]),
      new Compose([new RandomHorizontalFlip({ p: 0.3 })]),
      pre,
    ]);
    expect(trainingFlips(nested)).toEqual(['horizontal', 'vertical']);
    expect(trainingFlips(new Compose([new RandomVerticalFlip({ p: 0 }), pre]))).toEqual([]);
    expect(describeTta(2, ['vertical'])).toBe('each image and its vertical flip');
    expect(describeTta(4, ['horizontal', 'vertical'])).toBe(
      'each image, its horizontal and vertical flips and both',
    );
  });

  it('a classifier trained with a vertical flip saves it and averages the image and its vertical flip', async () => {
    const run = join(dir, 'vertical');
    const trainTransform = new Compose([new RandomVerticalFlip(), pre], { seed: 1 });
    const saved = await evaluateAndSave({
      dir: run,
      model,
      classNames,
      normalClass: 'normal',
      decode,
      preprocessing: pre,
      trainTransform,
      validation: source(),
      tta: 2,
      worst: 0,
      calibrate: false,
    });
    expect(saved.rules.flips).toEqual(['vertical']);
    const meta = JSON.parse(
      readFileSync(join(run, 'classifier', 'classifier.json'), 'utf8'),
    ) as ClassifierMeta;
    expect(meta.tta).toBe(2);
    expect(meta.flips).toEqual(['vertical']);
    const metrics = JSON.parse(readFileSync(join(run, 'evaluation', 'metrics.json'), 'utf8'));
    expect(metrics.tta).toBe(2);
    expect(metrics.ttaFlips).toEqual(['vertical']);
    expect(readFileSync(join(run, 'evaluation', 'report.html'), 'utf8')).toContain(
      'probabilities averaged over each image and its vertical flip (TTA)',
    );
    // The evaluation averaged the vertical flip, not the horizontal one.
    const xs = tf.tidy(() => tf.div(tf.stack(images(12)), 255)) as tf.Tensor4D;
    const vertical = mean([manual(xs, []), manual(xs, [1])]);
    const horizontal = mean([manual(xs, []), manual(xs, [2])]);
    expect(gap(vertical, horizontal)).toBeGreaterThan(1e-5);
    expectClose(saved.validation.probabilities!, vertical);

    const clf = await loadClassifier(join(run, 'classifier'));
    expect(clf.flips).toEqual(['vertical']);
    const decoded = images(12);
    await expectNoLeak(
      () => {
        const batch = clf.predictBatch(decoded);
        expect(batch[0]!.tta).toBe(2);
        expectClose(
          batch.map((p) => classNames.map((c) => p.probabilities[c]!)),
          vertical,
        );
        const one = clf.predictTensor(decoded[0]!);
        expectClose([classNames.map((c) => one.probabilities[c]!)], [vertical[0]!]);
      },
      { warmUp: true },
    );
    // Asking for 4 views of a model trained with the vertical flip only.
    expect(() => clf.predictBatch(decoded, { tta: 4 })).toThrow(
      'Error in predict: tta 4 needs both the horizontal and the vertical flip, but the available flips (those the model was trained with) are: vertical; tta can be 1 or 2',
    );
    clf.dispose();
    tf.dispose([xs, ...decoded]);
  });

  it('a classifier with both flips predicts with 4 views; one saved without flips keeps the horizontal flip', async () => {
    const both = join(dir, 'both');
    await saveClassifier(both, {
      model,
      classNames,
      decode,
      preprocessing: pre,
      flips: ['vertical', 'horizontal'],
      tta: 4,
    });
    const old = join(dir, 'no-flips');
    await saveClassifier(old, { model, classNames, decode, preprocessing: pre, tta: 2 });
    const decoded = images(5);
    const xs = tf.tidy(() => tf.div(tf.stack(decoded), 255)) as tf.Tensor4D;
    const clf = await loadClassifier(both);
    expect(clf.meta.flips).toEqual(['horizontal', 'vertical']);
    await expectNoLeak(
      () => {
        const four = clf.predictBatch(decoded);
        expect(four[0]!.tta).toBe(4);
        expectClose(
          four.map((p) => classNames.map((c) => p.probabilities[c]!)),
          mean([manual(xs, []), manual(xs, [2]), manual(xs, [1]), manual(xs, [1, 2])]),
        );
      },
      { warmUp: true },
    );
    clf.dispose();
    const legacy = await loadClassifier(old);
    expect(legacy.meta.flips).toBeUndefined();
    expectClose(
      legacy.predictBatch(decoded).map((p) => classNames.map((c) => p.probabilities[c]!)),
      mean([manual(xs, []), manual(xs, [2])]),
    );
    expect(() => legacy.predictTensor(decoded[0]!, { tta: 4 })).toThrow(
      /available flips .* are: horizontal; tta can be 1 or 2/,
    );
    legacy.dispose();
    tf.dispose([xs, ...decoded]);
  });

  it('too many views for the training flips: a clear error naming the available flips', async () => {
    expect(() => checkTta('predict', 2, [])).toThrow(
      'Error in predict: tta 2 needs a flip, but the available flips (those the model was trained with) are: none; tta can be 1',
    );
    expect(() => checkTta('predict', 3)).toThrow(
      /tta must be 1 \(no test-time augmentation\), 2 \(the image and a flip\) or 4 .*, got 3/,
    );
    expect(() => checkTta('predict', 2, ['sideways' as 'vertical'])).toThrow(
      /flips must be a list of 'horizontal' and 'vertical', got \["sideways"\]/,
    );
    const xs = tf.zeros([1, size, size, 1]) as tf.Tensor4D;
    await expectNoLeak(() => {
      expect(() => predictWithTta(model, xs, 4, ['horizontal'])).toThrow(
        /Error in predictWithTta: tta 4 needs both .* are: horizontal; tta can be 1 or 2/,
      );
    });
    xs.dispose();
    await expect(
      evaluate(model, source(), { classNames, transform: pre, tta: 4, flips: ['vertical'] }),
    ).rejects.toThrow(/Error in evaluate: tta 4 needs both .* are: vertical/);
    // A training transform without flips: no TTA view to add.
    await expect(
      evaluateAndSave({
        dir: join(dir, 'no-flip-run'),
        model,
        classNames,
        decode,
        preprocessing: pre,
        trainTransform: new Compose([new GaussianBlur({ kernelSize: 3, sigma: [0.1, 1] }), pre]),
        validation: source(),
        tta: 2,
      }),
    ).rejects.toThrow(/Error in evaluateAndSave: tta 2 needs a flip, but the available flips .* are: none/);
    // Saved rules that ask for more views than the saved flips give are refused.
    await expect(
      saveClassifier(join(dir, 'bad'), {
        model,
        classNames,
        decode,
        preprocessing: pre,
        flips: ['vertical'],
        tta: 4,
      }),
    ).rejects.toThrow(/Error in saveClassifier: tta 4 needs both/);
  });
});
