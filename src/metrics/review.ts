import { check, checkNumber } from '../util/errors.js';
import { type EvaluationCase, type EvaluationMetrics, MetricAccumulator } from './accumulator.js';
import { bootstrapConfidence, type Interval } from './bootstrap.js';
import {
  applyTemperature,
  expectedCalibrationError,
  fitTemperature,
  type ReliabilityBin,
  reliabilityBins,
  type TemperatureFit,
} from './calibration.js';
import { confusionMatrix } from './confusion-matrix.js';
import { argmax } from './inputs.js';
import { mostConfused, topLosses } from './interpretation.js';
import {
  abnormalRoc,
  applyOperatingPoint,
  type OperatingPoint,
  type OperatingPointConfidence,
  type OperatingPointResult,
  operatingPointConfidence,
  predictWithThreshold,
  thresholdForSensitivity,
  thresholdsForSensitivity,
} from './operating-point.js';
import {
  type CoverageCurve,
  coverageAccuracy,
  type ReferralBy,
  type ReferralPoint,
  referCases,
  referralThreshold,
} from './referral.js';

/*
 * Reviewing a model as clinicians do: the decision rules (temperature, a threshold on
 * P(not normal), per-class thresholds, a referral cut-off) are chosen once on validation data by
 * chooseRules, then applied frozen to any split by reviewSplit, which gathers what a report shows.
 */

/** Default sensitivity target of the thresholds: miss no abnormal validation case. */
export const DEFAULT_SENSITIVITY = 1;
/** Default accuracy the referral rule keeps on the images it does not refer. */
export const DEFAULT_REFERRAL_ACCURACY = 0.99;
/** Default fewest validation images a temperature is applied from. */
export const DEFAULT_MIN_CALIBRATION_IMAGES = 50;
/** Default number of worst cases a review lists. */
export const DEFAULT_WORST_CASES = 12;

const clipLoss = (p: number) => -Math.log(Math.min(Math.max(p, 1e-7), 1 - 1e-7));

/**
 * The metrics of an evaluation with its probabilities rescaled by a temperature (softmax(log p / T)
 * of the model's own probabilities: `rawProbabilities` when the metrics were already scaled). The
 * argmax, hence the classification report, stays; the loss, ROC-AUC and per-case probabilities
 * and losses follow the scaled probabilities.
 *
 * @example
 * const calibrated = withTemperature(metrics, 1.8, { classNames, normalClass: 2 });
 */
export function withTemperature(
  metrics: EvaluationMetrics,
  temperature: number,
  options: { classNames?: readonly string[]; normalClass?: number } = {},
): EvaluationMetrics {
  const op = 'withTemperature';
  checkNumber(temperature, op, 'temperature', { min: 0, minExclusive: true });
  const raw = metrics.rawProbabilities ?? metrics.probabilities;
  check(raw !== undefined && raw.length > 0, op, 'the evaluation has no probabilities to rescale');
  const numClasses = raw[0]?.length ?? 0;
  const probs = temperature === 1 ? raw.map((r) => [...r]) : applyTemperature(raw, temperature);
  const losses = probs.map((p, i) => clipLoss(p[metrics.yTrue[i] as number] as number));
  const acc = new MetricAccumulator({
    numClasses,
    ...(options.classNames ? { classNames: options.classNames } : {}),
    ...(options.normalClass !== undefined ? { normalClass: options.normalClass } : {}),
  });
  const out = acc.update(metrics.yTrue, probs, losses).aggregate();
  if (metrics.cases)
    out.cases = metrics.cases.map((c, i) => ({
      ...c,
      probabilities: probs[i] as number[],
      loss: losses[i] as number,
      predicted: argmax(probs[i] as number[]),
    }));
  if (metrics.tta !== undefined) out.tta = metrics.tta;
  if (metrics.ttaFlips !== undefined) out.ttaFlips = [...metrics.ttaFlips];
  if (temperature !== 1) {
    out.temperature = temperature;
    out.rawProbabilities = raw.map((r) => [...r]);
  }
  return out;
}

/** Options of {@link chooseRules} and {@link reviewSplit}. */
export interface ReviewOptions {
  classNames: readonly string[];
  /** Index of the normal / healthy class: enables the operating point on P(not normal). */
  normalClass?: number;
  /** Sensitivity target of the thresholds. Default {@link DEFAULT_SENSITIVITY} (1: miss none). */
  sensitivity?: number;
  /** Accuracy the referral rule must keep on the images it keeps. Default 0.99. */
  referralAccuracy?: number;
  /** Fit a temperature on validation (default true). */
  calibrate?: boolean;
  /**
   * Fewest validation images a temperature is applied from (default 50): on fewer, a fitted T is
   * mostly noise, and `predict` would carry it to every image.
   */
  minCalibrationImages?: number;
  /** Bootstrap seed (default 0) and resamples (default 1000) of the confidence intervals. */
  seed?: number;
  iterations?: number;
  /** Worst cases listed (default 12). */
  worst?: number;
}

/** The decision rules chosen on validation data, then applied frozen to every split. */
export interface ReviewChoices {
  /** The sensitivity target of the thresholds. */
  sensitivity: number;
  /** Temperature scaling: the fit, whether it is applied, and why not. */
  temperature?: TemperatureFit & { applied: boolean; note?: string };
  /** Threshold on P(not normal) (after the temperature), with what it gave on validation. */
  operatingPoint?: OperatingPoint;
  /** Why there is no operating point (no normal class, no abnormal validation case). */
  operatingPointNote?: string;
  /** One-vs-rest thresholds on p[k] per class (NaN for a class without validation cases). */
  classThresholds: OperatingPoint[];
  /** Referral target accuracy and the cut-offs by max probability and by entropy. */
  referralAccuracy: number;
  referral: ReferralPoint[];
  /** Validation images the rules were chosen on. */
  images: number;
}

function checkOptions(op: string, options: ReviewOptions) {
  const sensitivity = checkNumber(options.sensitivity ?? DEFAULT_SENSITIVITY, op, 'sensitivity', {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const referralAccuracy = checkNumber(
    options.referralAccuracy ?? DEFAULT_REFERRAL_ACCURACY,
    op,
    'referralAccuracy',
    { min: 0, minExclusive: true, max: 1 },
  );
  return { sensitivity, referralAccuracy };
}

function probabilitiesOf(op: string, metrics: EvaluationMetrics): number[][] {
  check(
    metrics.probabilities !== undefined && metrics.probabilities.length > 0,
    op,
    'the evaluation has no probabilities (evaluate a model, not labels)',
  );
  return metrics.probabilities;
}

/**
 * Chooses the decision rules on validation data: a temperature (fitted on the model's own
 * probabilities; not applied when the fit runs to a bound, as on perfectly separated or tiny
 * data), then, on the calibrated probabilities, the largest threshold on P(not normal) reaching
 * the sensitivity target, the per-class one-vs-rest thresholds, and the referral cut-offs
 * keeping the most images at the target accuracy. Returns the rules and the validation metrics
 * with the temperature applied.
 *
 * @example
 * const { choices, validation } = chooseRules(valMetrics, { classNames, normalClass: 2, sensitivity: 1 });
 * const test = withTemperature(testMetrics, choices.temperature?.applied ? choices.temperature.temperature : 1);
 */
export function chooseRules(
  validation: EvaluationMetrics,
  options: ReviewOptions,
): { choices: ReviewChoices; validation: EvaluationMetrics } {
  const op = 'chooseRules';
  const { sensitivity, referralAccuracy } = checkOptions(op, options);
  const raw = validation.rawProbabilities ?? probabilitiesOf(op, validation);
  const { yTrue } = validation;
  let temperature: ReviewChoices['temperature'];
  let calibrated = validation;
  if (options.calibrate ?? true) {
    const fit = fitTemperature(yTrue, raw);
    const minImages = options.minCalibrationImages ?? DEFAULT_MIN_CALIBRATION_IMAGES;
    const note =
      yTrue.length < minImages
        ? `only ${yTrue.length} validation images (fewer than ${minImages}): too few to calibrate on; not applied`
        : fit.atBound
          ? `the fit ran to its bound (T = ${fit.temperature.toPrecision(3)}): the validation data are too few or perfectly separated to calibrate on; not applied`
          : !fit.converged
            ? 'the fit did not converge; not applied'
            : undefined;
    temperature = { ...fit, applied: note === undefined, ...(note ? { note } : {}) };
    if (note === undefined)
      calibrated = withTemperature(validation, fit.temperature, {
        classNames: options.classNames,
        ...(options.normalClass !== undefined ? { normalClass: options.normalClass } : {}),
      });
  }
  const probs = probabilitiesOf(op, calibrated);
  let operatingPoint: OperatingPoint | undefined;
  let operatingPointNote: string | undefined;
  if (options.normalClass === undefined)
    operatingPointNote = 'no normal class given: no abnormal-vs-normal operating point';
  else if (!yTrue.some((y) => y !== options.normalClass))
    operatingPointNote = 'the validation data have no abnormal case: no threshold can be chosen';
  else
    operatingPoint = thresholdForSensitivity(yTrue, probs, {
      normalClass: options.normalClass,
      target: sensitivity,
    });
  const choices: ReviewChoices = {
    sensitivity,
    ...(temperature ? { temperature } : {}),
    ...(operatingPoint ? { operatingPoint } : {}),
    ...(operatingPointNote ? { operatingPointNote } : {}),
    classThresholds: thresholdsForSensitivity(yTrue, probs, { target: sensitivity }),
    referralAccuracy,
    referral: (['maxProbability', 'entropy'] as const).map((by) =>
      referralThreshold(yTrue, probs, { targetAccuracy: referralAccuracy, by }),
    ),
    images: yTrue.length,
  };
  return { choices, validation: calibrated };
}

/** Calibration of one split: reliability bins, ECE and NLL, before and after the temperature. */
export interface CalibrationReview {
  bins: ReliabilityBin[];
  ece: number;
  /** Mean negative log-likelihood (the loss, clipped as Keras). */
  nll: number;
  /** The same for the model's own probabilities, when a temperature was applied. */
  before?: { bins: ReliabilityBin[]; ece: number; nll: number };
  temperature?: number;
}

/** The frozen threshold on P(not normal) applied to one split. */
export interface OperatingPointReview {
  /** The threshold's sensitivity target (chosen on validation). */
  sensitivityTarget: number;
  result: OperatingPointResult;
  confidence: OperatingPointConfidence;
  /** Every image's class under the threshold (`predictWithThreshold`). */
  predictions: number[];
  /** Confusion matrix of those predictions. */
  confusionMatrix: number[][];
  /** ROC of P(not normal), when the split has both abnormal and normal images. */
  roc?: { fpr: number[]; tpr: number[]; auc: number };
}

/** One class's frozen one-vs-rest threshold applied to one split. */
export interface ClassThresholdReview {
  className: string;
  threshold: number;
  /** On this split: class-k images with p[k] >= threshold / class-k images. */
  sensitivity: number;
  /** Other images with p[k] < threshold / other images. */
  specificity: number;
  support: number;
}

/** A frozen referral cut-off applied to one split. */
export interface ReferralRuleReview {
  by: ReferralBy;
  threshold: number;
  targetAccuracy: number;
  coverage: number;
  /** Accuracy (argmax) on the kept images; NaN when none is kept. */
  accuracy: number;
  kept: number;
  referred: number;
}

/** Everything a report shows about one split, with the rules applied frozen. */
export interface SplitReview {
  images: number;
  classNames: string[];
  normalClass?: number;
  /** True when the rules were chosen on this very split (validation): its figures are optimistic. */
  chosenHere: boolean;
  /** Bootstrap intervals of accuracy and per-class recall (argmax). */
  confidence: { accuracy: Interval; recall: Interval[] };
  calibration: CalibrationReview;
  operatingPoint?: OperatingPointReview;
  classThresholds: ClassThresholdReview[];
  referral: {
    curves: CoverageCurve[];
    /** Accuracy when keeping the most certain `coverage` of images (the curve's largest point <= it). */
    atCoverage: { coverage: number; maxProbability: number; entropy: number }[];
    rules: ReferralRuleReview[];
  };
  /** Off-diagonal confusion cells, count descending (argmax). */
  mostConfused: [actual: string, predicted: string, count: number][];
  /** The images with the largest loss, worst first. */
  worst: EvaluationCase[];
}

const COVERAGES = [1, 0.95, 0.9, 0.8, 0.7, 0.5];

function accuracyAtCoverage(curve: CoverageCurve, coverage: number): number {
  let best = Number.NaN;
  for (let i = 0; i < curve.coverage.length; i++)
    if ((curve.coverage[i] as number) <= coverage + 1e-12) best = curve.accuracy[i] as number;
  return best;
}

/**
 * Reviews one split with rules chosen on validation ({@link chooseRules}), applied frozen:
 * bootstrap intervals, calibration before and after the temperature (already applied to
 * `metrics`, e.g. by `evaluate({ temperature })` or {@link withTemperature}), the operating point
 * with its missed findings and intervals, per-class thresholds, referral curves and rules,
 * the most confused classes and the worst cases. `chosenHere` marks the validation split.
 *
 * @example
 * const review = reviewSplit(testMetrics, choices, { classNames, normalClass: 2 });
 * review.operatingPoint?.result.missed; // abnormal test images called normal at the frozen threshold
 */
export function reviewSplit(
  metrics: EvaluationMetrics,
  choices: ReviewChoices | undefined,
  options: ReviewOptions & { chosenHere?: boolean },
): SplitReview {
  const op = 'reviewSplit';
  const probs = probabilitiesOf(op, metrics);
  const { yTrue, yPred } = metrics;
  const classNames = [...options.classNames];
  check(
    probs[0]?.length === classNames.length,
    op,
    `${classNames.length} class names for ${probs[0]?.length} classes`,
  );
  const seed = options.seed ?? 0;
  const iterations = options.iterations ?? 1000;
  const normal = options.normalClass;
  const ci = bootstrapConfidence(yTrue, yPred, { seed, iterations, numClasses: classNames.length });
  const nll = (p: readonly (readonly number[])[]) =>
    p.reduce((s, row, i) => s + clipLoss(row[yTrue[i] as number] as number), 0) / p.length;
  const calibration: CalibrationReview = {
    bins: reliabilityBins(yTrue, probs, { bins: 10 }),
    ece: expectedCalibrationError(yTrue, probs),
    nll: nll(probs),
  };
  if (metrics.rawProbabilities && metrics.temperature !== undefined) {
    const raw = metrics.rawProbabilities;
    calibration.before = {
      bins: reliabilityBins(yTrue, raw, { bins: 10 }),
      ece: expectedCalibrationError(yTrue, raw),
      nll: nll(raw),
    };
    calibration.temperature = metrics.temperature;
  }
  let operatingPoint: OperatingPointReview | undefined;
  const point = choices?.operatingPoint;
  if (point && normal !== undefined) {
    const frozen = { normalClass: normal, threshold: point.threshold };
    const predictions = predictWithThreshold(probs, frozen);
    const hasBoth = yTrue.some((y) => y === normal) && yTrue.some((y) => y !== normal);
    operatingPoint = {
      sensitivityTarget: choices.sensitivity,
      result: applyOperatingPoint(yTrue, probs, frozen),
      confidence: operatingPointConfidence(yTrue, probs, { ...frozen, seed, iterations }),
      predictions,
      confusionMatrix: confusionMatrix(yTrue, predictions, { numClasses: classNames.length }),
      ...(hasBoth ? { roc: abnormalRoc(yTrue, probs, normal) } : {}),
    };
  }
  const classThresholds = (choices?.classThresholds ?? []).map((t, k) => {
    const support = yTrue.filter((y) => y === k).length;
    let tp = 0;
    let tn = 0;
    yTrue.forEach((y, i) => {
      const called = ((probs[i] as number[])[k] as number) >= t.threshold;
      if (y === k && called) tp++;
      if (y !== k && !called) tn++;
    });
    const others = yTrue.length - support;
    return {
      className: classNames[k] as string,
      threshold: t.threshold,
      sensitivity: Number.isNaN(t.threshold) || !support ? Number.NaN : tp / support,
      specificity: Number.isNaN(t.threshold) || !others ? Number.NaN : tn / others,
      support,
    };
  });
  const curves = (['maxProbability', 'entropy'] as const).map((by) => coverageAccuracy(yTrue, probs, { by }));
  const rules = (choices?.referral ?? []).map((r): ReferralRuleReview => {
    const referred = Number.isFinite(r.threshold)
      ? referCases(probs, { threshold: r.threshold, by: r.by })
      : yTrue.map((_, i) => i);
    const out = new Set(referred);
    let kept = 0;
    let correct = 0;
    yTrue.forEach((y, i) => {
      if (out.has(i)) return;
      kept++;
      if (yPred[i] === y) correct++;
    });
    return {
      by: r.by,
      threshold: r.threshold,
      targetAccuracy: choices?.referralAccuracy ?? Number.NaN,
      coverage: kept / yTrue.length,
      accuracy: kept ? correct / kept : Number.NaN,
      kept,
      referred: referred.length,
    };
  });
  const worst = metrics.cases ? topLosses(metrics.cases, options.worst ?? DEFAULT_WORST_CASES) : [];
  return {
    images: yTrue.length,
    classNames,
    ...(normal !== undefined ? { normalClass: normal } : {}),
    chosenHere: options.chosenHere ?? false,
    confidence: ci,
    calibration,
    ...(operatingPoint ? { operatingPoint } : {}),
    classThresholds,
    referral: {
      curves,
      atCoverage: COVERAGES.map((coverage) => ({
        coverage,
        maxProbability: accuracyAtCoverage(curves[0] as CoverageCurve, coverage),
        entropy: accuracyAtCoverage(curves[1] as CoverageCurve, coverage),
      })),
      rules,
    },
    mostConfused: mostConfused(yTrue, yPred, { classNames }),
    worst: worst as EvaluationCase[],
  };
}
