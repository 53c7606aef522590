import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  abnormalRoc,
  abnormalScores,
  applyOperatingPoint,
  applyTemperature,
  bootstrapConfidence,
  type CaseRecord,
  caseRecords,
  coverageAccuracy,
  expectedCalibrationError,
  fitTemperature,
  mostConfused,
  operatingPointConfidence,
  predictionsCsv,
  predictWithThreshold,
  referCases,
  referralScores,
  referralThreshold,
  reliabilityBins,
  thresholdForSensitivity,
  thresholdsForSensitivity,
  topLosses,
} from '../../src/index.js';
import fixtures from '../fixtures/review.json' with { type: 'json' };
import { expectNoLeak, useBackend } from '../helpers.js';

interface Point {
  threshold: number;
  sensitivity: number;
  specificity: number | null;
}
interface Bin {
  lower: number;
  upper: number;
  count: number;
  accuracy: number | null;
  confidence: number | null;
}
interface Curve {
  by: 'maxProbability' | 'entropy';
  thresholds: number[];
  coverage: number[];
  accuracy: number[];
  kept: number[];
}
interface Case {
  name: string;
  classNames: string[];
  normalClass: number;
  yTrue: number[];
  probabilities: number[][];
  abnormalRoc: { fpr: number[]; tpr: number[]; thresholds: (number | null)[]; auc: number };
  thresholdForSensitivity: (Point & { target: number })[];
  operatingPoints: {
    threshold: number;
    sensitivity: number;
    specificity: number;
    missed: number;
    missedIndices: number[];
    falseAlarms: number;
    falseAlarmIndices: number[];
    yPred: number[];
  }[];
  perClassThresholds: { target: number; points: Point[] };
  calibration: { bins: number; ece: number; reliability: Bin[] }[];
  temperature: {
    temperature: number;
    nllBefore: number;
    nllAfter: number;
    gradient: number;
    calibrated: number[][];
  };
  coverage: { maxProbability: Curve; entropy: Curve };
  referral: { targetAccuracy: number; threshold: number | null; coverage: number; accuracy?: number }[];
  losses: number[];
  topLosses: number[];
  mostConfused: [string, string, number][];
  mostConfused3: [string, string, number][];
}
const cases = fixtures.cases as unknown as Case[];
const nan = (v: number | null) => v ?? Number.NaN;

describe('review metrics match NumPy, scikit-learn 1.2 and PyTorch 1.13', () => {
  for (const c of cases) {
    const { yTrue, probabilities: probs, normalClass } = c;

    it(`${c.name}: ROC of P(not normal) equals sklearn roc_curve(drop_intermediate=False), exactly`, () => {
      const roc = abnormalRoc(yTrue, probs, normalClass);
      expect(roc.fpr).toEqual(c.abnormalRoc.fpr);
      expect(roc.tpr).toEqual(c.abnormalRoc.tpr);
      expect(roc.thresholds[0]).toBe(Number.POSITIVE_INFINITY);
      expect(roc.thresholds.slice(1)).toEqual(c.abnormalRoc.thresholds.slice(1));
      expect(roc.auc).toBeCloseTo(c.abnormalRoc.auc, 12);
      expect(abnormalScores(probs, normalClass)).toEqual(probs.map((r) => 1 - r[normalClass]!));
    });

    it(`${c.name}: thresholdForSensitivity equals the brute-force NumPy threshold, exactly`, () => {
      for (const ref of c.thresholdForSensitivity) {
        const point = thresholdForSensitivity(yTrue, probs, { normalClass, target: ref.target });
        expect(point).toEqual({
          threshold: ref.threshold,
          sensitivity: ref.sensitivity,
          specificity: nan(ref.specificity),
        });
        expect(point.sensitivity).toBeGreaterThanOrEqual(ref.target);
      }
      const perClass = thresholdsForSensitivity(yTrue, probs, { target: c.perClassThresholds.target });
      expect(perClass).toEqual(
        c.perClassThresholds.points.map((p) => ({ ...p, specificity: nan(p.specificity) })),
      );
    });

    it(`${c.name}: a frozen threshold gives NumPy's sensitivity, missed findings and predictions`, () => {
      for (const ref of c.operatingPoints) {
        const r = applyOperatingPoint(yTrue, probs, { normalClass, threshold: ref.threshold });
        expect(r.sensitivity).toBe(ref.sensitivity);
        expect(r.specificity).toBe(ref.specificity);
        expect(r.missed).toBe(ref.missed);
        expect(r.missedIndices).toEqual(ref.missedIndices);
        expect(r.falseAlarms).toBe(ref.falseAlarms);
        expect(r.falseAlarmIndices).toEqual(ref.falseAlarmIndices);
        expect(r.truePositives + r.missed).toBe(r.abnormal);
        expect(r.trueNegatives + r.falseAlarms).toBe(r.normal);
        expect(predictWithThreshold(probs, { normalClass, threshold: ref.threshold })).toEqual(ref.yPred);
      }
    });

    it(`${c.name}: ECE and reliability bins equal the NumPy reference (bins (lo, hi])`, () => {
      for (const ref of c.calibration) {
        expect(expectedCalibrationError(yTrue, probs, { bins: ref.bins })).toBeCloseTo(ref.ece, 12);
        const bins = reliabilityBins(yTrue, probs, { bins: ref.bins });
        expect(bins).toHaveLength(ref.bins);
        bins.forEach((b, i) => {
          const r = ref.reliability[i]!;
          expect([b.lower, b.upper, b.count]).toEqual([r.lower, r.upper, r.count]);
          expect(b.accuracy).toEqual(nan(r.accuracy));
          if (r.confidence === null) expect(b.confidence).toBeNaN();
          else expect(b.confidence).toBeCloseTo(r.confidence, 12);
        });
      }
      expect(expectedCalibrationError(yTrue, probs)).toBe(
        expectedCalibrationError(yTrue, probs, { bins: 15 }),
      );
    });

    it(`${c.name}: fitted temperature equals PyTorch LBFGS on log T`, () => {
      const ref = c.temperature;
      const fit = fitTemperature(yTrue, probs);
      expect(Math.abs(fit.temperature - ref.temperature)).toBeLessThan(1e-6);
      expect(fit.converged).toBe(true);
      expect(fit.atBound).toBe(false);
      expect(fit.nllBefore).toBeCloseTo(ref.nllBefore, 12);
      expect(fit.nllAfter).toBeCloseTo(ref.nllAfter, 12);
      expect(fit.nllAfter).toBeLessThan(fit.nllBefore);
      const calibrated = applyTemperature(probs, fit.temperature);
      calibrated
        .slice(0, 5)
        .forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(ref.calibrated[i]![j]!, 7)));
      // Same argmax, better calibrated.
      expect(calibrated.map((r) => r.indexOf(Math.max(...r)))).toEqual(
        probs.map((r) => r.indexOf(Math.max(...r))),
      );
      expect(expectedCalibrationError(yTrue, calibrated)).toBeLessThan(
        expectedCalibrationError(yTrue, probs),
      );
    });

    it(`${c.name}: coverage-accuracy curves and referral thresholds equal NumPy`, () => {
      for (const by of ['maxProbability', 'entropy'] as const) {
        const curve = coverageAccuracy(yTrue, probs, { by });
        const ref = c.coverage[by];
        expect(curve.by).toBe(by);
        expect(curve.kept).toEqual(ref.kept);
        expect(curve.coverage).toEqual(ref.coverage);
        expect(curve.accuracy).toEqual(ref.accuracy);
        expect(curve.thresholds).toHaveLength(ref.thresholds.length);
        curve.thresholds.forEach((t, i) => expect(t).toBeCloseTo(ref.thresholds[i]!, 14));
      }
      for (const ref of c.referral) {
        const r = referralThreshold(yTrue, probs, { targetAccuracy: ref.targetAccuracy });
        expect(r.threshold).toBe(ref.threshold);
        expect(r.coverage).toBe(ref.coverage);
        expect(r.accuracy).toBe(ref.accuracy);
        expect(r.kept + r.referred).toBe(yTrue.length);
        expect(referCases(probs, { threshold: r.threshold })).toHaveLength(r.referred);
      }
    });

    it(`${c.name}: per-case losses, top losses (ties by index) and most confused pairs`, () => {
      const records = caseRecords(yTrue, probs);
      records.forEach((r, i) => expect(r.loss).toBeCloseTo(c.losses[i]!, 12));
      expect(topLosses(records, 10).map((r) => r.index)).toEqual(c.topLosses);
      expect(mostConfused(yTrue, probs, { classNames: c.classNames })).toEqual(c.mostConfused);
      expect(mostConfused(yTrue, probs, { classNames: c.classNames, minCount: 3 })).toEqual(c.mostConfused3);
    });
  }
});

// Scores are exact binary fractions: 1 - p is exact and every number below can be checked by hand.
// normal = 2; scores 1 - p[2] = .875 (A), .75 (A), .5 (N), .5 (A), .125 (N), .25 (A).
const Y = [0, 1, 2, 0, 2, 1];
const P = [
  [0.75, 0.125, 0.125],
  [0.25, 0.5, 0.25],
  [0.25, 0.25, 0.5],
  [0.25, 0.25, 0.5],
  [0.125, 0, 0.875],
  [0, 0.25, 0.75],
];

describe('operating points: worked example', () => {
  beforeAll(() => useBackend('cpu'));

  it('abnormalScores and the ROC of abnormal vs normal', () => {
    expect(abnormalScores(P, 2)).toEqual([0.875, 0.75, 0.5, 0.5, 0.125, 0.25]);
    expect(abnormalRoc(Y, P, 2)).toEqual({
      fpr: [0, 0, 0, 0.5, 0.5, 1],
      tpr: [0, 0.25, 0.5, 0.75, 1, 1],
      thresholds: [Number.POSITIVE_INFINITY, 0.875, 0.75, 0.5, 0.25, 0.125],
      auc: 6.5 / 8, // the tie at 0.5 counts half
    });
  });

  it('thresholdForSensitivity: the largest threshold reaching the target; tied scores go together', () => {
    const at = (target: number) => thresholdForSensitivity(Y, P, { normalClass: 2, target });
    expect(at(0.5)).toEqual({ threshold: 0.75, sensitivity: 0.5, specificity: 1 });
    // 0.6 needs 3 of 4 abnormal cases: t = 0.5, which also calls the normal case at 0.5 abnormal.
    expect(at(0.6)).toEqual({ threshold: 0.5, sensitivity: 0.75, specificity: 0.5 });
    expect(at(0.75)).toEqual({ threshold: 0.5, sensitivity: 0.75, specificity: 0.5 });
    expect(at(1)).toEqual({ threshold: 0.25, sensitivity: 1, specificity: 0.5 });
    expect(at(0.01)).toEqual({ threshold: 0.875, sensitivity: 0.25, specificity: 1 });
  });

  it('applyOperatingPoint and predictWithThreshold at a frozen threshold', () => {
    expect(applyOperatingPoint(Y, P, { normalClass: 2, threshold: 0.5 })).toEqual({
      threshold: 0.5,
      sensitivity: 0.75,
      specificity: 0.5,
      abnormal: 4,
      normal: 2,
      truePositives: 3,
      trueNegatives: 1,
      missed: 1,
      missedIndices: [5],
      falseAlarms: 1,
      falseAlarmIndices: [2],
      ppv: 0.75,
      npv: 0.5,
    });
    // Called abnormal -> argmax over classes 0 and 1 (a tie goes to 0); otherwise normal.
    expect(predictWithThreshold(P, { normalClass: 2, threshold: 0.5 })).toEqual([0, 1, 0, 0, 2, 2]);
    expect(predictWithThreshold(P, { normalClass: 2, threshold: 0 })).toEqual([0, 1, 0, 0, 0, 1]);
    expect(predictWithThreshold(P, { normalClass: 2, threshold: Number.POSITIVE_INFINITY })).toEqual(
      new Array(6).fill(2),
    );
    // Nothing called normal: no NPV; no normal cases: no specificity.
    const none = applyOperatingPoint([0, 1], P.slice(0, 2), { normalClass: 2, threshold: 0 });
    expect([none.sensitivity, none.specificity, none.npv]).toEqual([1, Number.NaN, Number.NaN]);
  });

  it('per-class one-vs-rest thresholds; a class without cases gets NaN', () => {
    expect(thresholdsForSensitivity(Y, P, { target: 1 })).toEqual([
      // class 0 (cases 0, 3): p0 = .75, .25 -> t = .25; p0 >= .25 also for cases 1, 2 (negatives).
      { threshold: 0.25, sensitivity: 1, specificity: 0.5 },
      // class 1 (cases 1, 5): p1 = .5, .25 -> t = .25; negatives at >= .25: cases 2, 3.
      { threshold: 0.25, sensitivity: 1, specificity: 0.5 },
      // class 2 (cases 2, 4): p2 = .5, .875 -> t = .5; negatives at >= .5: cases 3, 5.
      { threshold: 0.5, sensitivity: 1, specificity: 0.5 },
    ]);
    const absent = thresholdsForSensitivity([0, 0, 1], P.slice(0, 3), { target: 0.5 });
    expect(absent[2]).toEqual({ threshold: Number.NaN, sensitivity: Number.NaN, specificity: Number.NaN });
  });

  it('accepts probability and label tensors without leaking', async () => {
    const yt = tf.tensor1d(Y, 'int32');
    const pt = tf.tensor2d(P);
    await expectNoLeak(() => {
      expect(thresholdForSensitivity(yt, pt, { normalClass: 2, target: 0.75 }).threshold).toBe(0.5);
      expect(applyOperatingPoint(yt, pt, { normalClass: 2, threshold: 0.5 }).missedIndices).toEqual([5]);
      expect(predictWithThreshold(pt, { normalClass: 2, threshold: 0.5 })).toEqual([0, 1, 0, 0, 2, 2]);
      expect(expectedCalibrationError(yt, pt)).toBe(expectedCalibrationError(Y, P));
    });
    tf.dispose([yt, pt]);
  });

  it('bootstrap intervals at a frozen threshold: seeded, the bootstrapConfidence resamples', () => {
    const c = cases[0]!;
    const opts = { normalClass: c.normalClass, threshold: c.operatingPoints[0]!.threshold, seed: 7 };
    const a = operatingPointConfidence(c.yTrue, c.probabilities, opts);
    expect(operatingPointConfidence(c.yTrue, c.probabilities, opts)).toEqual(a);
    expect(operatingPointConfidence(c.yTrue, c.probabilities, { ...opts, seed: 8 })).not.toEqual(a);
    expect(a.sensitivity.estimate).toBe(c.operatingPoints[0]!.sensitivity);
    expect(a.specificity.estimate).toBe(c.operatingPoints[0]!.specificity);
    for (const iv of [a.sensitivity, a.specificity, a.missedRate]) {
      expect(iv.lower).toBeLessThan(iv.estimate);
      expect(iv.upper).toBeGreaterThan(iv.estimate);
    }
    expect(a.missedRate).toEqual({
      estimate: 1 - a.sensitivity.estimate,
      lower: 1 - a.sensitivity.upper,
      upper: 1 - a.sensitivity.lower,
    });
    // The same resamples as bootstrapConfidence on the binary labels abnormal / called abnormal.
    const scores = abnormalScores(c.probabilities, c.normalClass);
    const ci = bootstrapConfidence(
      c.yTrue.map((y) => (y === c.normalClass ? 0 : 1)),
      scores.map((s) => (s >= opts.threshold ? 1 : 0)),
      { seed: 7, numClasses: 2 },
    );
    expect([a.specificity, a.sensitivity]).toEqual(ci.recall);
    // Binomial width check: n_abnormal ~ 300 at sensitivity ~0.9.
    const n = c.yTrue.filter((y) => y !== c.normalClass).length;
    const s = a.sensitivity.estimate;
    const half = (a.sensitivity.upper - a.sensitivity.lower) / 2;
    expect(half / (1.96 * Math.sqrt((s * (1 - s)) / n))).toBeGreaterThan(0.8);
    expect(half / (1.96 * Math.sqrt((s * (1 - s)) / n))).toBeLessThan(1.2);
  });
});

describe('calibration: worked examples', () => {
  // Confidences .5, .75, .875, 1 on 4 bins (0, .25], (.25, .5], (.5, .75], (.75, 1]: a confidence on
  // an edge belongs to the bin below it.
  const y = [1, 0, 1, 1];
  const p = [
    [0.5, 0.5],
    [0.75, 0.25],
    [0.875, 0.125],
    [0, 1],
  ];

  it('reliability bins and ECE by hand', () => {
    expect(reliabilityBins(y, p, { bins: 4 })).toEqual([
      { lower: 0, upper: 0.25, count: 0, accuracy: Number.NaN, confidence: Number.NaN },
      { lower: 0.25, upper: 0.5, count: 1, accuracy: 0, confidence: 0.5 },
      { lower: 0.5, upper: 0.75, count: 1, accuracy: 1, confidence: 0.75 },
      { lower: 0.75, upper: 1, count: 2, accuracy: 0.5, confidence: 0.9375 },
    ]);
    // (|0 - .5| * 1 + |1 - .75| * 1 + |.5 - .9375| * 2) / 4
    expect(expectedCalibrationError(y, p, { bins: 4 })).toBe(0.40625);
    // A confidence of exactly 0 (a row of zeros) falls in the first bin.
    expect(reliabilityBins([0], [[0, 0]], { bins: 4 })[0]!.count).toBe(1);
    expect(
      expectedCalibrationError(
        [0, 1],
        [
          [1, 0],
          [0, 1],
        ],
      ),
    ).toBe(0);
  });

  it('temperature: the closed-form optimum, bounds, and logits input', () => {
    // Every case says 0.9 for class 0 but only 8 in 10 are class 0: the fit must give 0.8, i.e.
    // 9^(1/T) = 4, T = log2(3).
    const yy = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    const pp = yy.map(() => [0.9, 0.1]);
    const fit = fitTemperature(yy, pp);
    expect(fit.temperature).toBeCloseTo(Math.log2(3), 12);
    expect(fit.converged).toBe(true);
    expect(fit.iterations).toBeLessThanOrEqual(10);
    expect(applyTemperature(pp, fit.temperature)[0]![0]).toBeCloseTo(0.8, 12);
    expect(fit.nllAfter).toBeCloseTo(-(0.8 * Math.log(0.8) + 0.2 * Math.log(0.2)), 12);
    // Logits give the same fit as their softmax.
    const logits = [
      [2, -1, 0.5],
      [0.3, 0.2, 0.1],
      [-1, 3, 0],
      [1, 1, -2],
      [0, 0, 4],
    ];
    const yl = [0, 2, 1, 1, 2];
    const soft = applyTemperature(logits, 1, { input: 'logits' });
    expect(fitTemperature(yl, logits, { input: 'logits' }).temperature).toBeCloseTo(
      fitTemperature(yl, soft).temperature,
      9,
    );
    expect(applyTemperature(logits, 2, { input: 'logits' })).toEqual(
      applyTemperature(
        logits.map((r) => r.map((v) => v / 2)),
        1,
        { input: 'logits' },
      ),
    );
    // Logits scaled by c have the optimum at c * T, however far from 1 it is.
    const c = cases[0]!;
    const logP = c.probabilities.map((r) => r.map((v) => Math.log(Math.max(v, 1e-12))));
    for (const scale of [0.02, 0.3, 6, 30]) {
      const scaled = fitTemperature(
        c.yTrue,
        logP.map((r) => r.map((v) => v * scale)),
        { input: 'logits' },
      );
      expect(scaled.converged).toBe(true);
      expect(scaled.iterations).toBeLessThanOrEqual(15);
      expect(scaled.temperature / (scale * c.temperature.temperature)).toBeCloseTo(1, 8);
    }
    // All right and confident: the NLL keeps falling as T -> 0; the fit stops at minTemperature.
    const sharp = fitTemperature(
      [0, 1],
      [
        [0.9, 0.1],
        [0.1, 0.9],
      ],
    );
    expect(sharp).toMatchObject({ temperature: 0.01, atBound: true });
    expect(applyTemperature([[0.5, 0.5, 0]], 3)).toEqual([[0.5, 0.5, 0]]);
  });
});

describe('referral: worked example', () => {
  // max probabilities .9 (right), .9 (wrong), .8 (right), .6 (wrong), .6 (right)
  const y = [0, 1, 1, 1, 1];
  const p = [
    [0.9, 0.1],
    [0.9, 0.1],
    [0.2, 0.8],
    [0.6, 0.4],
    [0.4, 0.6],
  ];

  it('the coverage-accuracy curve keeps tied cases together', () => {
    expect(coverageAccuracy(y, p)).toEqual({
      by: 'maxProbability',
      thresholds: [0.9, 0.8, 0.6],
      coverage: [0.4, 0.6, 1],
      accuracy: [0.5, 2 / 3, 0.6],
      kept: [2, 3, 5],
    });
    const byEntropy = coverageAccuracy(y, p, { by: 'entropy' });
    expect(byEntropy.kept).toEqual([2, 3, 5]);
    expect(byEntropy.thresholds).toEqual(referralScores([p[0]!, p[2]!, p[3]!], 'entropy'));
    expect(
      referralScores(
        [
          [0.5, 0.5],
          [1, 0],
        ],
        'entropy',
      ),
    ).toEqual([Math.LN2, 0]);
  });

  it('referralThreshold takes the largest coverage reaching the target; none -> refer all', () => {
    expect(referralThreshold(y, p, { targetAccuracy: 0.6 })).toEqual({
      by: 'maxProbability',
      threshold: 0.6,
      coverage: 1,
      accuracy: 0.6,
      kept: 5,
      referred: 0,
    });
    expect(referralThreshold(y, p, { targetAccuracy: 0.65 })).toMatchObject({ threshold: 0.8, kept: 3 });
    expect(referralThreshold(y, p, { targetAccuracy: 0.7 })).toEqual({
      by: 'maxProbability',
      threshold: Number.POSITIVE_INFINITY,
      coverage: 0,
      accuracy: Number.NaN,
      kept: 0,
      referred: 5,
    });
    expect(referralThreshold(y, p, { targetAccuracy: 0.7, by: 'entropy' }).threshold).toBe(
      Number.NEGATIVE_INFINITY,
    );
    expect(referCases(p, { threshold: 0.8 })).toEqual([3, 4]);
    const e = referralScores(p, 'entropy');
    expect(referCases(p, { threshold: e[2]!, by: 'entropy' })).toEqual([3, 4]);
  });
});

describe('interpretation: worked examples', () => {
  it('topLosses: largest first, ties by index, input untouched', () => {
    const records: CaseRecord[] = [
      { index: 3, yTrue: 0, probabilities: [0.5, 0.5], loss: 1 },
      { index: 1, yTrue: 0, probabilities: [0.5, 0.5], loss: 2 },
      { index: 2, yTrue: 0, probabilities: [0.5, 0.5], loss: 1 },
      { index: 0, yTrue: 0, probabilities: [0.5, 0.5], loss: 0.5 },
    ];
    expect(topLosses(records, 3).map((r) => r.index)).toEqual([1, 2, 3]);
    expect(topLosses(records, 10)).toHaveLength(4);
    expect(topLosses(records, 0)).toEqual([]);
    expect(records.map((r) => r.index)).toEqual([3, 1, 2, 0]);
  });

  it('caseRecords: cross-entropy with the Keras clip, paths', () => {
    const r = caseRecords(
      [0, 1],
      [
        [0.25, 0.75],
        [1, 0],
      ],
      { paths: ['a.png', 'b.png'] },
    );
    expect(r[0]).toEqual({
      index: 0,
      path: 'a.png',
      yTrue: 0,
      probabilities: [0.25, 0.75],
      loss: Math.log(4),
    });
    expect(r[1]!.loss).toBeCloseTo(-Math.log(1e-7), 12);
    expect(caseRecords([0], [[0.5, 0.5]], { losses: [3] })[0]).toEqual({
      index: 0,
      yTrue: 0,
      probabilities: [0.5, 0.5],
      loss: 3,
    });
  });

  it('mostConfused: off-diagonal, count descending, ties in row-major order, minCount', () => {
    const names = ['a', 'b', 'c'];
    const yTrue = [0, 0, 1, 1, 1, 2, 2];
    const yPred = [1, 1, 0, 2, 2, 2, 2];
    expect(mostConfused(yTrue, yPred, { classNames: names })).toEqual([
      ['a', 'b', 2],
      ['b', 'c', 2],
      ['b', 'a', 1],
    ]);
    expect(mostConfused(yTrue, yPred, { classNames: names, minCount: 2 })).toHaveLength(2);
    expect(mostConfused([0, 1], [0, 1], { classNames: names })).toEqual([]);
  });

  it('predictionsCsv: RFC 4180 quoting, CRLF, missed findings, thresholded predictions beside the argmax', () => {
    const names = ['tumour, large', 'say "hi"', 'normal'];
    const records: CaseRecord[] = [
      { index: 0, path: 'dir,1/a.png', yTrue: 0, probabilities: [0.25, 0.25, 0.5], loss: 1.5 },
      { index: 1, path: 'line\nbreak.png', yTrue: 2, probabilities: [0.125, 0.5, 0.375], loss: 0.25 },
      { index: 2, yTrue: 1, probabilities: [0.5, 0.25, 0.25], loss: 1e-7 },
    ];
    expect(predictionsCsv(records, names)).toBe(
      [
        'path,true,predicted,predicted_argmax,"p_tumour, large","p_say ""hi""",p_normal,loss',
        '"dir,1/a.png","tumour, large",normal,normal,0.25,0.25,0.5,1.5',
        '"line\nbreak.png",normal,"say ""hi""","say ""hi""",0.125,0.5,0.375,0.25',
        ',"say ""hi""","tumour, large","tumour, large",0.5,0.25,0.25,1e-7',
        '',
      ].join('\r\n'),
    );
    const withMissed = predictionsCsv(records, names, { normalClass: 2 }).split('\r\n');
    expect(withMissed[0]).toMatch(/,loss,missed_finding$/);
    expect(withMissed.slice(1, 4).map((l) => l.split(',').at(-1))).toEqual(['true', 'false', 'false']);
    // At threshold 0.5 case 0 (P(not normal) = 0.5) is called abnormal: glioma, no longer missed;
    // its most probable class, normal, stays beside the thresholded one.
    const frozen = predictionsCsv(records, names, { normalClass: 2, threshold: 0.5 }).split('\r\n');
    expect(frozen[1]).toBe('"dir,1/a.png","tumour, large","tumour, large",normal,0.25,0.25,0.5,1.5,false');
    expect(predictionsCsv([], names)).toBe(
      'path,true,predicted,predicted_argmax,"p_tumour, large","p_say ""hi""",p_normal,loss\r\n',
    );
  });
});

describe('review metrics: bad input fails with clear errors', () => {
  it('operating points', () => {
    const opts = { normalClass: 2, target: 0.9 };
    expect(() => thresholdForSensitivity([0, 1], P, opts)).toThrow(
      'Error in thresholdForSensitivity: yTrue has 2 samples but the predictions have 6',
    );
    expect(() => thresholdForSensitivity(Y, P, { normalClass: 3, target: 0.9 })).toThrow(
      'Error in thresholdForSensitivity: normalClass 3 is outside [0, 3) (the probabilities have 3 classes)',
    );
    expect(() => thresholdForSensitivity(Y, P, { normalClass: -1, target: 0.9 })).toThrow(
      /normalClass must be a class index, got -1/,
    );
    expect(() => thresholdForSensitivity(Y, P, { normalClass: 2, target: 0 })).toThrow(
      'Error in thresholdForSensitivity: target must be > 0, got 0',
    );
    expect(() => thresholdForSensitivity(Y, P, { normalClass: 2, target: 1.5 })).toThrow(
      'target must be <= 1, got 1.5',
    );
    expect(() => thresholdForSensitivity([2, 2], P.slice(0, 2), opts)).toThrow(
      'Error in thresholdForSensitivity: no abnormal cases in yTrue: no sensitivity to reach',
    );
    expect(() => abnormalRoc([2, 2], P.slice(0, 2), 2)).toThrow(/no abnormal cases in yTrue/);
    expect(() => abnormalRoc([0, 1], P.slice(0, 2), 2)).toThrow(/no normal cases in yTrue/);
    expect(() => abnormalRoc([0, 3], P.slice(0, 2), 2)).toThrow(
      'Error in abnormalRoc: yTrue[1] = 3 is outside [0, 3)',
    );
    expect(() => thresholdsForSensitivity(Y, P, { target: Number.NaN })).toThrow(
      'Error in thresholdsForSensitivity: target must be a finite number, got NaN',
    );
    expect(() => abnormalScores([[2, -1]], 0)).toThrow(
      'Error in abnormalScores: probabilities[0][0] = 2 is outside [0, 1] (logits instead of probabilities?)',
    );
    expect(() => abnormalScores([], 0)).toThrow(/empty input/);
    expect(() => applyOperatingPoint(Y, P, { normalClass: 2, threshold: Number.NaN })).toThrow(
      'Error in applyOperatingPoint: threshold must be a number, got NaN',
    );
    expect(() => predictWithThreshold([[1]], { normalClass: 0, threshold: 0.5 })).toThrow(
      /at least 2 classes/,
    );
    expect(() => applyOperatingPoint([], [], { normalClass: 0, threshold: 0.5 })).toThrow(/empty input/);
    expect(() => operatingPointConfidence(Y, P, { normalClass: 2, threshold: 0.5, seed: 1.5 })).toThrow(
      'Error in operatingPointConfidence: seed must be an integer, got 1.5',
    );
  });

  it('calibration, referral and interpretation', () => {
    expect(() => expectedCalibrationError(Y, P, { bins: 0 })).toThrow(
      'Error in expectedCalibrationError: bins must be >= 1, got 0',
    );
    expect(() => reliabilityBins(Y, P, { bins: 2.5 })).toThrow('bins must be an integer, got 2.5');
    expect(() =>
      expectedCalibrationError(
        [0],
        [
          [0.5, 0.5],
          [0.5, 0.5],
        ],
      ),
    ).toThrow('yTrue has 1 samples but the predictions have 2');
    expect(() => fitTemperature([0], [[1]])).toThrow(
      'Error in fitTemperature: scores need at least 2 classes, got 1',
    );
    expect(() => fitTemperature(Y, P, { input: 'logit' as 'logits' })).toThrow(
      "input must be 'probabilities' or 'logits', got logit",
    );
    expect(() => fitTemperature(Y, [[3, -1]])).toThrow(/outside \[0, 1\]/);
    expect(() => fitTemperature(Y, P, { minTemperature: 2, maxTemperature: 1 })).toThrow(
      'maxTemperature must be > 2, got 1',
    );
    expect(() => applyTemperature(P, 0)).toThrow('Error in applyTemperature: temperature must be > 0, got 0');
    expect(() => applyTemperature([[0, 0]], 1)).toThrow(/all zero/);
    expect(() => referralThreshold(Y, P, { targetAccuracy: 0 })).toThrow(
      'Error in referralThreshold: targetAccuracy must be > 0, got 0',
    );
    expect(() => coverageAccuracy(Y, P, { by: 'margin' as 'entropy' })).toThrow(
      "Error in coverageAccuracy: by must be 'maxProbability' or 'entropy', got margin",
    );
    expect(() => referCases(P, { threshold: Number.NaN })).toThrow('threshold must be a number, got NaN');
    expect(() => topLosses([], -1)).toThrow('Error in topLosses: k must be >= 0, got -1');
    expect(() => topLosses([{ index: 0, yTrue: 0, probabilities: [1, 0], loss: Number.NaN }], 1)).toThrow(
      'cases[0].loss must be a number, got NaN',
    );
    expect(() => mostConfused([0], [0], { classNames: [] })).toThrow(/classNames must be a non-empty array/);
    expect(() => mostConfused([0, 5], [0, 1], { classNames: ['a', 'b'] })).toThrow(
      'Error in mostConfused: yTrue[1] = 5 is outside [0, 2)',
    );
    expect(() => mostConfused([0], [0], { classNames: ['a'], minCount: 0 })).toThrow('minCount must be >= 1');
    const rec: CaseRecord = { index: 0, yTrue: 0, probabilities: [0.5, 0.5], loss: 1 };
    expect(() => predictionsCsv([rec], ['a', 'b', 'c'])).toThrow(
      'Error in predictionsCsv: cases[0] has 2 probabilities for 3 classes',
    );
    expect(() => predictionsCsv([rec], ['a', 'b'], { threshold: 0.5 })).toThrow(
      /a threshold needs normalClass/,
    );
    expect(() => predictionsCsv([rec], ['a', 'b'], { normalClass: 2 })).toThrow(/normalClass 2 is outside/);
    expect(() => caseRecords([0], [[0.5, 0.5]], { paths: ['a', 'b'] })).toThrow(
      'Error in caseRecords: 2 paths for 1 cases',
    );
  });
});
