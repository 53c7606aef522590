import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { SampleSource } from '../data/loader.js';
import type { ClassifierRules, DecodeSpec } from '../inference/classifier.js';
import { saveClassifier } from '../inference/classifier.node.js';
import { checkTta, DEFAULT_TTA_FLIPS, type TtaViews, trainingFlips } from '../inference/tta.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import { chooseRules, type ReviewChoices, type SplitReview } from '../metrics/review.js';
import type { EpochLog } from '../train/checkpoint.js';
import { evaluate } from '../train/evaluate.js';
import type { Transform } from '../transforms/base.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { check, checkNumber } from '../util/errors.js';
import { writeEvaluation, writeTrainingCurves } from './evaluation.node.js';
import { type ReportPageSplit, writeReportPage } from './page.node.js';

export interface EvaluateAndSaveOptions {
  /** The run's folder: `evaluation/` (with `report.html`), `test-evaluation/`, `training-curves.*`, `history.json`, `classifier/`. */
  dir: string;
  model: tfl.LayersModel;
  classNames: string[];
  normalClass?: string | null;
  /** How images are decoded for this model (saved with the classifier). */
  decode: DecodeSpec;
  /** The deterministic pipeline after decoding (saved with the classifier). */
  preprocessing: Transform;
  /**
   * The training pipeline (`train`'s `transform`): the flips in it (`trainingFlips`) are saved
   * with the classifier as its `flips`, the views its test-time augmentation may use. Without
   * it no flips are recorded and TTA keeps the horizontal flip.
   */
  trainTransform?: Transform;
  /** The split that picked the best epoch; the decision rules are chosen on it too. */
  validation: SampleSource;
  /** A held-out test set, scored once with the rules frozen and reported separately. */
  test?: SampleSource;
  history?: readonly EpochLog[];
  /** Carried by the saved classifier as its model card (e.g. the CLI's `run.json`). */
  modelCard?: Record<string, unknown>;
  /** Where the text reports go (default: nowhere). */
  log?: (text: string) => void;
  batchSize?: number;
  /**
   * Sensitivity the threshold on P(not normal) must reach on validation (default 1: the largest
   * threshold that misses no abnormal validation image). Needs `normalClass`.
   */
  sensitivity?: number;
  /** Accuracy the referral rule keeps on the images it does not refer (default 0.99). */
  referralAccuracy?: number;
  /**
   * Test-time augmentation views (1, 2 or 4, from the flips of `trainTransform`, else the
   * horizontal flip); saved with the classifier. Default 1.
   */
  tta?: TtaViews;
  /** Fit a temperature on validation and save it (default true). */
  calibrate?: boolean;
  /** Fewest validation images a temperature is applied from (default 50). */
  minCalibrationImages?: number;
  /** Worst cases drawn with Grad-CAM per split (default 12). */
  worst?: number;
  /** Title of the report page. */
  title?: string;
}

/** What {@link evaluateAndSave} returns. */
export interface EvaluateAndSaveResult {
  /** Validation metrics, with the temperature applied when one was fitted. */
  validation: EvaluationMetrics;
  /** Test metrics, scored once with the rules frozen. */
  test?: EvaluationMetrics;
  /** The rules chosen on validation. */
  choices: ReviewChoices;
  reviews: { validation?: SplitReview; test?: SplitReview };
  /** The rules saved with the classifier. */
  rules: ClassifierRules;
  /** `evaluation/report.html`. */
  report: string;
}

/** A compact summary of an evaluation, as saved in `classifier.json`'s metrics. */
export function metricsSummary(m: EvaluationMetrics, review?: SplitReview): Record<string, unknown> {
  const o = review?.operatingPoint;
  return {
    images: m.report.support,
    accuracy: m.report.accuracy,
    macroF1: m.report.macro.f1,
    loss: m.loss ?? null,
    rocAucMacro: m.rocAuc?.macro ?? null,
    missedFindings: m.missedFindings
      ? { count: m.missedFindings.count, of: m.missedFindings.abnormal }
      : null,
    ...(review ? { ece: review.calibration.ece } : {}),
    ...(o
      ? {
          operatingPoint: {
            threshold: o.result.threshold,
            sensitivity: o.result.sensitivity,
            specificity: o.result.specificity,
            missed: o.result.missed,
            of: o.result.abnormal,
          },
        }
      : {}),
  };
}

/** The rules a classifier saves from what was chosen on validation (JSON-safe: no NaN or Infinity). */
export function rulesFromChoices(
  choices: ReviewChoices,
  classNames: readonly string[],
  tta: TtaViews = 1,
): ClassifierRules {
  const rules: ClassifierRules = {};
  const t = choices.temperature;
  if (t?.applied) rules.temperature = t.temperature;
  const op = choices.operatingPoint;
  if (op)
    rules.operatingPoint = {
      threshold: op.threshold,
      sensitivityTarget: choices.sensitivity,
      validation: { sensitivity: op.sensitivity, specificity: op.specificity, images: choices.images },
    };
  const classThresholds = Object.fromEntries(
    choices.classThresholds.flatMap((p, k) =>
      Number.isFinite(p.threshold) ? [[classNames[k], p.threshold]] : [],
    ),
  );
  if (Object.keys(classThresholds).length) rules.classThresholds = classThresholds;
  const referral = choices.referral.find((r) => r.by === 'maxProbability');
  if (referral && Number.isFinite(referral.threshold))
    rules.referral = {
      by: referral.by,
      threshold: referral.threshold,
      targetAccuracy: choices.referralAccuracy,
      validation: { coverage: referral.coverage, accuracy: referral.accuracy, images: choices.images },
    };
  if (tta !== 1) rules.tta = tta;
  return rules;
}

/**
 * The end of a training run, shared by the CLI and the examples. On the validation split (the
 * one that picked the best epoch) it evaluates the model with per-image results, then chooses the
 * decision rules there: a temperature (temperature scaling), the largest threshold on
 * P(not normal) reaching the `sensitivity` target, per-class thresholds and a referral cut-off.
 * It scores the held-out test set once, when given, with those rules frozen. It writes each
 * split's files (`evaluation/`, `test-evaluation/`: reports, `predictions.csv`, charts,
 * `worst-cases.png` with Grad-CAM), the training curves and history, one self-contained report
 * page, `evaluation/report.html`, and saves the classifier folder with both results, the rules
 * (which `predict` then applies), the flips of `trainTransform` (its TTA views) and the model card.
 *
 * @example
 * const { validation, test, report } = await evaluateAndSave({ dir: 'runs/brain', model, classNames, normalClass: 'notumor',
 *   decode, preprocessing, trainTransform: augment, validation: valSource, test: testSource, history: result.history, log: console.log });
 */
export async function evaluateAndSave(options: EvaluateAndSaveOptions): Promise<EvaluateAndSaveResult> {
  const op = 'evaluateAndSave';
  const { dir, model, classNames } = options;
  const log = options.log ?? (() => {});
  const normalClass = options.normalClass ?? undefined;
  const normal = normalClass === undefined ? undefined : classNames.indexOf(normalClass);
  check(
    normal === undefined || normal >= 0,
    op,
    `normalClass '${normalClass}' is not one of ${classNames.join(', ')}`,
  );
  const flips = options.trainTransform ? trainingFlips(options.trainTransform) : undefined;
  const tta = checkTta(op, options.tta ?? 1, flips ?? DEFAULT_TTA_FLIPS);
  const sensitivity = checkNumber(options.sensitivity ?? 1, op, 'sensitivity', {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const referralAccuracy = checkNumber(options.referralAccuracy ?? 0.99, op, 'referralAccuracy', {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const score = (data: SampleSource, temperature?: number) =>
    evaluate(model, data, {
      classNames,
      transform: options.preprocessing,
      tta,
      ...(flips ? { flips } : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      ...(normalClass ? { normalClass } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
  const { choices, validation } = chooseRules(await score(options.validation), {
    classNames,
    ...(normal !== undefined ? { normalClass: normal } : {}),
    sensitivity,
    referralAccuracy,
    calibrate: options.calibrate ?? true,
    ...(options.minCalibrationImages !== undefined
      ? { minCalibrationImages: options.minCalibrationImages }
      : {}),
  });
  const temperature = choices.temperature?.applied ? choices.temperature.temperature : undefined;
  const common = {
    classNames,
    choices,
    ...(normalClass ? { normalClass } : {}),
    ...(options.worst !== undefined ? { worst: options.worst } : {}),
  };
  const v = await writeEvaluation(validation, join(dir, 'evaluation'), {
    ...common,
    title: 'Validation (the split that picked the best epoch and the decision rules)',
    chosenHere: true,
    gradCam: { model, source: options.validation, transform: options.preprocessing },
  });
  log(`validation: ${validation.report.support} images\n${v.text}`);
  log(`pictures: ${v.files.map((f) => f.png).join(', ')}`);
  const splits: ReportPageSplit[] = [
    { name: 'validation', title: 'Validation (rules chosen here)', metrics: validation, written: v },
  ];
  let test: EvaluationMetrics | undefined;
  if (options.test) {
    test = await score(options.test, temperature);
    const t = await writeEvaluation(test, join(dir, 'test-evaluation'), {
      ...common,
      title: 'Held-out test set (scored once, rules frozen)',
      gradCam: { model, source: options.test, transform: options.preprocessing },
    });
    log(`held-out test: ${test.report.support} images, scored once\n${t.text}`);
    log(`pictures: ${t.files.map((f) => f.png).join(', ')}`);
    splits.push({ name: 'test', title: 'Held-out test (scored once)', metrics: test, written: t });
  }
  let curves: string | undefined;
  if (options.history?.length) {
    curves = (await writeTrainingCurves(options.history, join(dir, 'training-curves'))).png;
    await writeFileAtomic(join(dir, 'history.json'), `${JSON.stringify(options.history, null, 2)}\n`);
    log(`training curves: ${curves}`);
  }
  const report = await writeReportPage(join(dir, 'evaluation', 'report.html'), {
    title: options.title ?? 'Model review',
    classNames,
    ...(normalClass ? { normalClass } : {}),
    splits,
    choices,
    rulesFrom: 'the validation split of this run',
    ...(options.modelCard ? { modelCard: options.modelCard } : {}),
    ...(curves ? { trainingCurves: curves } : {}),
    notes: [
      options.test
        ? 'The decision rules were chosen on the validation split and applied, frozen, to the held-out test set.'
        : 'No held-out test set: every figure is on the validation split that chose the decision rules (optimistic).',
    ],
  });
  log(`report page: ${report}`);
  const rules: ClassifierRules = {
    ...rulesFromChoices(choices, classNames, tta),
    ...(flips ? { flips } : {}),
  };
  await saveClassifier(join(dir, 'classifier'), {
    model,
    classNames,
    decode: options.decode,
    preprocessing: options.preprocessing,
    normalClass: normalClass ?? null,
    metrics: {
      validation: metricsSummary(validation, v.review),
      ...(test ? { test: metricsSummary(test, splits[1]?.written.review) } : {}),
    },
    ...(options.modelCard ? { modelCard: options.modelCard } : {}),
    ...rules,
  });
  log(`saved classifier: ${join(dir, 'classifier')}`);
  return {
    validation,
    ...(test ? { test } : {}),
    choices,
    reviews: {
      ...(v.review ? { validation: v.review } : {}),
      ...(splits[1]?.written.review ? { test: splits[1].written.review } : {}),
    },
    rules,
    report,
  };
}
