import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bootstrapConfidence,
  classificationReport,
  confusionMatrix,
  formatFixed,
  MetricAccumulator,
  missedFindings,
  rocAuc,
  rocCurve,
} from '../../src/index.js';
import fixtures from '../fixtures/metrics.json' with { type: 'json' };
import { expectNoLeak, useBackend } from '../helpers.js';

type Case = (typeof fixtures.cases)[number] & {
  probabilities?: number[][];
  rocAuc?: { macro: number; weighted: number; none: number[] };
  rocCurveClass0?: { fpr: number[]; tpr: number[]; thresholds: (number | null)[] };
};
const cases = fixtures.cases as Case[];

describe('metrics match scikit-learn 1.2', () => {
  beforeAll(() => useBackend('cpu'));

  for (const c of cases) {
    it(`${c.name}: confusion matrix, per-class, macro/weighted, accuracy and the text table`, () => {
      const opts = {
        numClasses: c.numClasses,
        zeroDivision: c.zeroDivision as 0 | 1,
        ...(c.classNames ? { classNames: c.classNames } : {}),
      };
      expect(confusionMatrix(c.yTrue, c.yPred, { numClasses: c.numClasses })).toEqual(c.confusionMatrix);
      const r = classificationReport(c.yTrue, c.yPred, opts);
      expect(r.accuracy).toBeCloseTo(c.accuracy, 12);
      r.perClass.forEach((k, i) => {
        expect(k.precision).toBeCloseTo(c.precision[i]!, 12);
        expect(k.recall).toBeCloseTo(c.recall[i]!, 12);
        expect(k.sensitivity).toBe(k.recall);
        expect(k.f1).toBeCloseTo(c.f1[i]!, 12);
        expect(k.support).toBe(c.support[i]);
      });
      for (const avg of ['macro', 'weighted'] as const) {
        expect(r[avg].precision).toBeCloseTo(c[avg].precision, 12);
        expect(r[avg].recall).toBeCloseTo(c[avg].recall, 12);
        expect(r[avg].f1).toBeCloseTo(c[avg].f1, 12);
      }
      expect(r.toString()).toBe(c.text);
    });
  }

  for (const c of cases.filter((x) => x.rocAuc)) {
    it(`${c.name}: one-vs-rest ROC-AUC (macro, weighted, per class; tied scores) and the ROC curve`, () => {
      const probs = c.probabilities!;
      expect(rocAuc(c.yTrue, probs, { average: 'macro' })).toBeCloseTo(c.rocAuc!.macro, 12);
      expect(rocAuc(c.yTrue, probs, { average: 'weighted' })).toBeCloseTo(c.rocAuc!.weighted, 12);
      rocAuc(c.yTrue, probs, { average: 'none' }).forEach((v, k) => {
        expect(v).toBeCloseTo(c.rocAuc!.none[k]!, 12);
      });
      const curve = rocCurve(
        c.yTrue.map((y) => y === 0),
        probs.map((r) => r[0]!),
      );
      expect(curve.fpr.length).toBe(c.rocCurveClass0!.fpr.length);
      curve.fpr.forEach((v, i) => expect(v).toBeCloseTo(c.rocCurveClass0!.fpr[i]!, 12));
      curve.tpr.forEach((v, i) => expect(v).toBeCloseTo(c.rocCurveClass0!.tpr[i]!, 12));
      curve.thresholds
        .slice(1)
        .forEach((v, i) => expect(v).toBeCloseTo(c.rocCurveClass0!.thresholds[i + 1]!, 12));
    });
  }
});

describe('metrics: inputs, clinical views and errors', () => {
  beforeAll(() => useBackend('cpu'));
  const mri = cases[0]!;

  it('accepts typed arrays, label tensors and probability tensors (argmax), without leaking', async () => {
    const expected = classificationReport(mri.yTrue, mri.yPred, { numClasses: 4 }).accuracy;
    const yt = tf.tensor1d(mri.yTrue, 'int32');
    const probs = tf.tensor2d(mri.probabilities!);
    await expectNoLeak(() => {
      expect(classificationReport(Int32Array.from(mri.yTrue), probs, { numClasses: 4 }).accuracy).toBe(
        expected,
      );
      expect(classificationReport(yt, mri.probabilities!, { numClasses: 4 }).accuracy).toBe(expected);
      expect(rocAuc(yt, probs)).toBeCloseTo(mri.rocAuc!.macro, 6);
    });
    tf.dispose([yt, probs]);
  });

  it('specificity is TN / (TN + FP) per class (worked example)', () => {
    // true:  0 0 0 1 1 2 ; pred: 0 1 0 1 2 2
    const r = classificationReport([0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 2, 2], { numClasses: 3 });
    expect(r.perClass.map((c) => c.specificity)).toEqual([3 / 3, 3 / 4, 4 / 5]);
    expect(r.toMarkdown()).toContain('| 0 | 1.000 | 0.667 | 1.000 | 0.800 | 3 |');
  });

  it('missedFindings counts abnormal cases called normal, per class, with indices', () => {
    const names = ['glioma', 'meningioma', 'notumor', 'pituitary'];
    const yTrue = [0, 1, 2, 3, 0, 1, 3, 2, 2];
    const yPred = [2, 1, 2, 2, 0, 2, 3, 0, 2];
    const m = missedFindings(yTrue, yPred, { normalClass: 2, classNames: names });
    expect(m).toEqual({
      count: 3,
      abnormal: 6,
      rate: 0.5,
      indices: [0, 3, 5],
      perClass: [
        { trueClass: 0, className: 'glioma', count: 1, of: 2 },
        { trueClass: 1, className: 'meningioma', count: 1, of: 2 },
        { trueClass: 3, className: 'pituitary', count: 1, of: 2 },
      ],
    });
    // A normal case called a tumour (index 7) is a false alarm, not a missed finding.
    expect(missedFindings([2, 2], [0, 2], { normalClass: 2 }).count).toBe(0);
  });

  it('MetricAccumulator over batches equals the metrics of the whole set; reset clears', () => {
    const acc = new MetricAccumulator({ numClasses: 4, classNames: mri.classNames!, normalClass: 2 });
    for (let i = 0; i < mri.yTrue.length; i += 32) {
      const yt = tf.tensor1d(mri.yTrue.slice(i, i + 32), 'int32');
      const p = tf.tensor2d(mri.probabilities!.slice(i, i + 32));
      acc.update(yt, p);
      tf.dispose([yt, p]);
    }
    const out = acc.aggregate();
    expect(acc.count).toBe(120);
    expect(out.report.accuracy).toBeCloseTo(mri.accuracy, 12);
    expect(out.report.toString()).toBe(mri.text);
    expect(out.rocAuc!.macro).toBeCloseTo(mri.rocAuc!.macro, 12);
    expect(out.missedFindings!.count).toBe(mri.yTrue.filter((y, i) => y !== 2 && mri.yPred[i] === 2).length);
    acc.reset();
    expect(acc.count).toBe(0);
  });

  it('bootstrap intervals: seeded, contain the estimate, and have the binomial width', () => {
    const n = 400;
    const yTrue = Array.from({ length: n }, (_, i) => i % 2);
    const yPred = yTrue.map((y, i) => (i % 5 === 0 ? 1 - y : y)); // accuracy 0.8
    const a = bootstrapConfidence(yTrue, yPred, { seed: 3, iterations: 2000 });
    const b = bootstrapConfidence(yTrue, yPred, { seed: 3, iterations: 2000 });
    expect(a).toEqual(b);
    expect(a.accuracy.estimate).toBe(0.8);
    expect(a.accuracy.lower).toBeLessThan(0.8);
    expect(a.accuracy.upper).toBeGreaterThan(0.8);
    const halfWidth = (a.accuracy.upper - a.accuracy.lower) / 2;
    const binomial = 1.96 * Math.sqrt((0.8 * 0.2) / n); // 0.0392
    expect(halfWidth / binomial).toBeGreaterThan(0.85);
    expect(halfWidth / binomial).toBeLessThan(1.15);
    expect(a.recall).toHaveLength(2);
    const other = bootstrapConfidence(yTrue, yPred, { seed: 4, iterations: 2000 });
    expect(other.accuracy.lower).not.toBe(a.accuracy.lower);
  });

  it('formatFixed rounds like Python (ties to even on exact binary values)', () => {
    expect(formatFixed(0.125, 2)).toBe('0.12');
    expect(formatFixed(0.375, 2)).toBe('0.38');
    expect(formatFixed(0.845, 2)).toBe('0.84'); // 0.845 is below the tie in binary
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(1, 2)).toBe('1.00');
  });

  it('bad input fails with clear errors', () => {
    expect(() => classificationReport([0, 1], [0], { numClasses: 2 })).toThrow(
      'Error in classificationReport: yTrue has 2 samples but the predictions have 1',
    );
    expect(() => confusionMatrix([0, 3], [0, 1], { numClasses: 3 })).toThrow(
      'Error in confusionMatrix: yTrue[1] = 3 is outside [0, 3)',
    );
    expect(() => classificationReport([], [], {})).toThrow(/empty input/);
    expect(() =>
      rocAuc(
        [0, 1],
        [
          [0.5, Number.NaN],
          [0.2, 0.8],
        ],
      ),
    ).toThrow('Error in rocAuc: probabilities[0][1] is NaN (NaN or infinite)');
    expect(() =>
      rocAuc(
        [0, 0, 1],
        [
          [0.5, 0.5, 0],
          [0.2, 0.8, 0],
          [0.1, 0.9, 0],
        ],
      ),
    ).toThrow(/ROC-AUC is undefined for class 2: it has no samples/);
    expect(() => missedFindings([0, 1], [0, 1], { normalClass: 5, numClasses: 2 })).toThrow(
      /normalClass 5 is outside/,
    );
    expect(() => confusionMatrix([0.5], [0], { numClasses: 2 })).toThrow(
      /yTrue\[0\] = 0.5 is not an integer/,
    );
  });

  it('one macro ROC-AUC: with a class absent from yTrue, rocAuc throws by default; absentClasses skip averages the present ones, as the accumulator does', () => {
    // Class 2 never occurs in yTrue.
    const yTrue = [0, 1, 0, 1, 0, 1];
    const probs = [
      [0.7, 0.2, 0.1],
      [0.2, 0.7, 0.1],
      [0.4, 0.5, 0.1],
      [0.3, 0.3, 0.4],
      [0.8, 0.1, 0.1],
      [0.5, 0.4, 0.1],
    ];
    expect(() => rocAuc(yTrue, probs)).toThrow(/ROC-AUC is undefined for class 2/);
    const perClass = rocAuc(yTrue, probs, { average: 'none' });
    expect(Number.isNaN(perClass[2]!)).toBe(true);
    const macro = rocAuc(yTrue, probs, { average: 'macro', absentClasses: 'skip' });
    expect(macro).toBeCloseTo((perClass[0]! + perClass[1]!) / 2, 12);
    expect(rocAuc(yTrue, probs, { average: 'weighted', absentClasses: 'skip' })).toBeCloseTo(
      (perClass[0]! * 3 + perClass[1]! * 3) / 6,
      12,
    );
    const acc = new MetricAccumulator({ numClasses: 3 });
    acc.update(yTrue, probs);
    expect(acc.aggregate().rocAuc!.macro).toBe(macro);
  });
});
