import { check, checkNumber } from '../util/errors.js';
import { bootstrapConfidence, type Interval } from './bootstrap.js';
import {
  argmax,
  checkClassIndex,
  checkUnitInterval,
  type LabelInput,
  type ProbabilityInput,
  readCases,
  toProbabilities,
} from './inputs.js';
import { binaryAuc, rocCurve, rocPoints } from './roc.js';

/*
 * Operating points for the screening question "abnormal or normal?". A multi-class model is
 * reduced to one score per case, P(not normal) = 1 - p[normal], and a case is called abnormal
 * when that score is >= a threshold t. The threshold is chosen on validation data (for a
 * sensitivity target) and then applied, frozen, to the test data: choosing it on the test data
 * would report an optimistic sensitivity.
 */

/** A threshold on P(not normal) and the sensitivity and specificity it gives on some data. */
export interface OperatingPoint {
  /** Call a case abnormal when its score is >= threshold. */
  threshold: number;
  /** Abnormal cases called abnormal / abnormal cases (NaN without abnormal cases). */
  sensitivity: number;
  /** Normal cases called normal / normal cases (NaN without normal cases). */
  specificity: number;
}

/** What {@link applyOperatingPoint} returns. */
export interface OperatingPointResult extends OperatingPoint {
  /** Number of abnormal cases (true class != normal). */
  abnormal: number;
  /** Number of normal cases. */
  normal: number;
  /** Abnormal cases called abnormal. */
  truePositives: number;
  /** Normal cases called normal. */
  trueNegatives: number;
  /** Abnormal cases called normal: the missed findings. */
  missed: number;
  /** Sample indices of the missed findings, ascending. */
  missedIndices: number[];
  /** Normal cases called abnormal. */
  falseAlarms: number;
  /** Sample indices of the false alarms, ascending. */
  falseAlarmIndices: number[];
  /** Positive predictive value: TP / (TP + false alarms); NaN when nothing is called abnormal. */
  ppv: number;
  /** Negative predictive value: TN / (TN + missed); NaN when nothing is called normal. */
  npv: number;
}

/** Options naming the normal class and a frozen threshold. */
export interface ThresholdOptions {
  /** Index of the normal / healthy class. */
  normalClass: number;
  /** Call a case abnormal when P(not normal) >= threshold. */
  threshold: number;
}

/** What {@link operatingPointConfidence} returns: percentile-bootstrap intervals. */
export interface OperatingPointConfidence {
  sensitivity: Interval;
  specificity: Interval;
  /** Fraction of abnormal cases missed: 1 - sensitivity on every resample. */
  missedRate: Interval;
}

function checkThreshold(op: string, threshold: unknown): number {
  check(
    typeof threshold === 'number' && !Number.isNaN(threshold),
    op,
    () => `threshold must be a number, got ${String(threshold)}`,
  );
  return threshold;
}

function checkTarget(op: string, target: unknown): number {
  return checkNumber(target, op, 'target', { min: 0, minExclusive: true, max: 1 });
}

function scoresOf(probs: readonly (readonly number[])[], normal: number): number[] {
  return probs.map((row) => 1 - (row[normal] as number));
}

/**
 * The largest threshold t at which `score >= t` reaches sensitivity >= target on the positive
 * cases. Sensitivity only changes at positive scores, so t is always one of them; tied scores
 * are called together.
 */
function largestThreshold(
  positive: readonly boolean[],
  scores: readonly number[],
  target: number,
): OperatingPoint {
  const nPos = positive.filter(Boolean).length;
  const nNeg = positive.length - nPos;
  for (const { threshold, tp, fp } of rocPoints(positive, scores)) {
    if (tp / nPos >= target)
      return { threshold, sensitivity: tp / nPos, specificity: nNeg ? (nNeg - fp) / nNeg : Number.NaN };
  }
  // Unreachable for target <= 1 and nPos > 0: the last group has tp = nPos.
  throw new Error('largestThreshold: no threshold reaches the target');
}

/**
 * P(not normal) = 1 - p[normalClass] for every case: the score of the binary question
 * "abnormal (any class but normal) or normal?".
 *
 * @example
 * abnormalScores([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], 2); // [0.9, 0.19999999999999996]
 */
export function abnormalScores(probabilities: ProbabilityInput, normalClass: number): number[] {
  const op = 'abnormalScores';
  const probs = toProbabilities(op, probabilities);
  check(probs.length > 0, op, 'empty input: no samples to score');
  checkUnitInterval(op, probs);
  checkClassIndex(op, 'normalClass', normalClass, probs[0]?.length ?? 0);
  return scoresOf(probs, normalClass);
}

/**
 * ROC curve of P(not normal) for abnormal (any class but normal) vs normal: false and true
 * positive rates at every distinct score, as scikit-learn's
 * `roc_curve(y != normal, 1 - p[:, normal], drop_intermediate=False)`. `thresholds` descend and
 * start with Infinity (scikit-learn >= 1.3; 1.2 puts max(score) + 1 there); the point i calls a
 * case abnormal when its score is >= thresholds[i]. `auc` is the area under the curve.
 *
 * @example
 * const { fpr, tpr, thresholds, auc } = abnormalRoc(yTrue, probabilities, 2);
 */
export function abnormalRoc(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  normalClass: number,
): { fpr: number[]; tpr: number[]; thresholds: number[]; auc: number } {
  const op = 'abnormalRoc';
  const { labels, probs, numClasses } = readCases(op, yTrue, probabilities);
  checkClassIndex(op, 'normalClass', normalClass, numClasses);
  const positive = labels.map((y) => y !== normalClass);
  check(positive.some(Boolean), op, 'no abnormal cases in yTrue: the ROC curve is undefined');
  check(!positive.every(Boolean), op, 'no normal cases in yTrue: the ROC curve is undefined');
  const scores = scoresOf(probs, normalClass);
  return { ...rocCurve(positive, scores), auc: binaryAuc(positive, scores) };
}

/**
 * Chooses the operating point for a sensitivity target: the largest threshold t such that
 * calling a case abnormal when P(not normal) >= t finds at least `target` of the abnormal cases
 * in this data. Returns t and the sensitivity and specificity it gives here.
 *
 * Choose t on the validation set and apply it frozen to the test set (with
 * {@link applyOperatingPoint}); the test set's sensitivity may then fall below the target, which
 * is exactly what a clinician needs to know. t is always the score of an abnormal case, so the
 * achieved sensitivity can exceed the target when scores tie or cases are few.
 *
 * @example
 * const point = thresholdForSensitivity(valTrue, valProbs, { normalClass: 2, target: 0.95 });
 * const onTest = applyOperatingPoint(testTrue, testProbs, { normalClass: 2, threshold: point.threshold });
 */
export function thresholdForSensitivity(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { normalClass: number; target: number },
): OperatingPoint {
  const op = 'thresholdForSensitivity';
  const { labels, probs, numClasses } = readCases(op, yTrue, probabilities);
  const normal = checkClassIndex(op, 'normalClass', options?.normalClass, numClasses);
  const target = checkTarget(op, options.target);
  const positive = labels.map((y) => y !== normal);
  check(positive.some(Boolean), op, 'no abnormal cases in yTrue: no sensitivity to reach');
  return largestThreshold(positive, scoresOf(probs, normal), target);
}

/**
 * One-vs-rest thresholds per class: for every class k, the largest threshold t_k on p[k] such
 * that calling class k when p[k] >= t_k finds at least `target` of the class-k cases, with the
 * one-vs-rest sensitivity and specificity it gives. A class without cases in `yTrue` gets NaN
 * everywhere. As for {@link thresholdForSensitivity}: choose on validation, apply frozen.
 *
 * @example
 * thresholdsForSensitivity(yTrue, probabilities, { target: 0.9 }).map((p) => p.threshold);
 */
export function thresholdsForSensitivity(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { target: number },
): OperatingPoint[] {
  const op = 'thresholdsForSensitivity';
  const { labels, probs, numClasses } = readCases(op, yTrue, probabilities);
  const target = checkTarget(op, options?.target);
  return Array.from({ length: numClasses }, (_, k) => {
    const positive = labels.map((y) => y === k);
    if (!positive.some(Boolean)) {
      return { threshold: Number.NaN, sensitivity: Number.NaN, specificity: Number.NaN };
    }
    return largestThreshold(
      positive,
      probs.map((row) => row[k] as number),
      target,
    );
  });
}

/**
 * Final class predictions under a threshold on P(not normal): a case whose score is >= threshold
 * is given the most probable abnormal class (the argmax over every class but normal; ties go to
 * the lower index), any other case the normal class. Lowering the threshold trades false alarms
 * for fewer missed findings without retraining.
 *
 * @example
 * predictWithThreshold([[0.3, 0.1, 0.6]], { normalClass: 2, threshold: 0.4 }); // [0]
 */
export function predictWithThreshold(probabilities: ProbabilityInput, options: ThresholdOptions): number[] {
  const op = 'predictWithThreshold';
  const probs = toProbabilities(op, probabilities);
  check(probs.length > 0, op, 'empty input: no samples to predict');
  checkUnitInterval(op, probs);
  const numClasses = probs[0]?.length ?? 0;
  check(numClasses >= 2, op, `probabilities need at least 2 classes, got ${numClasses}`);
  const normal = checkClassIndex(op, 'normalClass', options?.normalClass, numClasses);
  const threshold = checkThreshold(op, options.threshold);
  return probs.map((row) => {
    if (1 - (row[normal] as number) < threshold) return normal;
    const masked = row.map((v, j) => (j === normal ? Number.NEGATIVE_INFINITY : v));
    return argmax(masked);
  });
}

/**
 * Applies a frozen threshold on P(not normal) (from {@link thresholdForSensitivity} on
 * validation) to a data set: sensitivity, specificity, the missed findings (abnormal cases
 * called normal) and false alarms (normal cases called abnormal) with their sample indices, and
 * the predictive values.
 *
 * @example
 * const r = applyOperatingPoint(testTrue, testProbs, { normalClass: 2, threshold: 0.31 });
 * console.log(`sensitivity ${r.sensitivity}, ${r.missed} missed findings`, r.missedIndices);
 */
export function applyOperatingPoint(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: ThresholdOptions,
): OperatingPointResult {
  const op = 'applyOperatingPoint';
  const { labels, probs, numClasses } = readCases(op, yTrue, probabilities);
  const normal = checkClassIndex(op, 'normalClass', options?.normalClass, numClasses);
  const threshold = checkThreshold(op, options.threshold);
  const scores = scoresOf(probs, normal);
  const missedIndices: number[] = [];
  const falseAlarmIndices: number[] = [];
  let abnormal = 0;
  labels.forEach((y, i) => {
    const calledAbnormal = (scores[i] as number) >= threshold;
    if (y !== normal) {
      abnormal++;
      if (!calledAbnormal) missedIndices.push(i);
    } else if (calledAbnormal) falseAlarmIndices.push(i);
  });
  const normalCount = labels.length - abnormal;
  const truePositives = abnormal - missedIndices.length;
  const trueNegatives = normalCount - falseAlarmIndices.length;
  const ratio = (a: number, b: number) => (b ? a / b : Number.NaN);
  return {
    threshold,
    sensitivity: ratio(truePositives, abnormal),
    specificity: ratio(trueNegatives, normalCount),
    abnormal,
    normal: normalCount,
    truePositives,
    trueNegatives,
    missed: missedIndices.length,
    missedIndices,
    falseAlarms: falseAlarmIndices.length,
    falseAlarmIndices,
    ppv: ratio(truePositives, truePositives + falseAlarmIndices.length),
    npv: ratio(trueNegatives, trueNegatives + missedIndices.length),
  };
}

/**
 * Percentile-bootstrap confidence intervals for sensitivity, specificity and the missed-finding
 * rate at a frozen threshold on P(not normal). The cases are resampled with replacement by
 * {@link bootstrapConfidence} (same seed, same resamples) on the binary labels abnormal/normal;
 * resamples without abnormal (normal) cases are left out of the sensitivity (specificity)
 * interval. The missed rate is 1 - sensitivity on each resample; for an interval on the number of
 * missed findings among `abnormal` cases, multiply it by that number.
 *
 * @example
 * const ci = operatingPointConfidence(testTrue, testProbs, { normalClass: 2, threshold: 0.31, seed: 1 });
 * console.log(`sensitivity ${ci.sensitivity.estimate} (95% CI ${ci.sensitivity.lower}-${ci.sensitivity.upper})`);
 */
export function operatingPointConfidence(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: ThresholdOptions & { seed: number; iterations?: number; confidence?: number },
): OperatingPointConfidence {
  const op = 'operatingPointConfidence';
  const { labels, probs, numClasses } = readCases(op, yTrue, probabilities);
  const normal = checkClassIndex(op, 'normalClass', options?.normalClass, numClasses);
  const threshold = checkThreshold(op, options.threshold);
  check(Number.isInteger(options.seed), op, `seed must be an integer, got ${String(options.seed)}`);
  const truth = labels.map((y) => (y === normal ? 0 : 1));
  const called = scoresOf(probs, normal).map((s) => (s >= threshold ? 1 : 0));
  const ci = bootstrapConfidence(truth, called, {
    seed: options.seed,
    numClasses: 2,
    ...(options.iterations !== undefined ? { iterations: options.iterations } : {}),
    ...(options.confidence !== undefined ? { confidence: options.confidence } : {}),
  });
  const sensitivity = ci.recall[1] as Interval;
  return {
    sensitivity,
    specificity: ci.recall[0] as Interval,
    missedRate: {
      estimate: 1 - sensitivity.estimate,
      lower: 1 - sensitivity.upper,
      upper: 1 - sensitivity.lower,
    },
  };
}
