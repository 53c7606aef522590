import type * as tfl from '@tensorflow/tfjs-layers';
import type { SampleSource } from '../data/loader.js';
import {
  checkTta,
  DEFAULT_TTA_FLIPS,
  type TtaFlip,
  type TtaViews,
  ttaViews,
  withTta,
} from '../inference/tta.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import { caseRecords } from '../metrics/interpretation.js';
import { withTemperature } from '../metrics/review.js';
import type { Transform } from '../transforms/base.js';
import { check, checkNumber } from '../util/errors.js';
import { evaluateSource } from './train.js';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  classNames: string[];
  /** The normal / healthy class, for missed findings (abnormal images called normal). */
  normalClass?: string;
  /** The deterministic pipeline applied to every decoded image. */
  transform?: Transform;
  batchSize?: number;
  /**
   * Test-time augmentation: 2 averages the probabilities of each image and its flip, 4 of each
   * image, its horizontal and vertical flips and both. Default 1.
   */
  tta?: TtaViews;
  /**
   * The flips the model was trained with, that the TTA views are drawn from (a classifier's saved
   * `flips`, or `trainingFlips(trainTransform)`). Default: the horizontal flip.
   */
  flips?: readonly TtaFlip[];
  /**
   * Rescale the probabilities by this temperature (softmax(log p / T), e.g. a classifier's saved
   * one) before computing the metrics; the model's own stay in `rawProbabilities`.
   */
  temperature?: number;
}

/**
 * Evaluates a classifier on a data source: classification report, confusion matrix, one-vs-rest
 * ROC-AUC, missed findings (abnormal cases called normal) when `normalClass` is given, and every
 * image's result in `cases` (its `describe(i)` path, true class, probabilities, loss, prediction),
 * in the source's order. With `tta: 2` (or 4) each image's probabilities are the mean over the
 * image and its flip (or its flips, see `ttaViews`); with `temperature` they are rescaled (same argmax).
 * `medimg-classify/node`'s `writeEvaluation` turns the result into text, Markdown, JSON, CSV,
 * pictures and a report page.
 */
export async function evaluate(
  model: tfl.LayersModel,
  data: SampleSource,
  options: EvaluateOptions,
): Promise<EvaluationMetrics> {
  const op = 'evaluate';
  const { classNames } = options;
  check(
    classNames.length === data.numClasses,
    op,
    `${classNames.length} class names for ${data.numClasses} classes`,
  );
  const normal = options.normalClass === undefined ? undefined : classNames.indexOf(options.normalClass);
  check(
    normal === undefined || normal >= 0,
    op,
    `normalClass '${options.normalClass}' is not one of ${classNames.join(', ')}`,
  );
  const flips = options.flips ?? DEFAULT_TTA_FLIPS;
  const tta = checkTta(op, options.tta ?? 1, flips);
  if (options.temperature !== undefined)
    checkNumber(options.temperature, op, 'temperature', { min: 0, minExclusive: true });
  const { metrics } = await evaluateSource(withTta(model, tta, flips), data, {
    classNames,
    ...(normal !== undefined ? { normalClass: normal } : {}),
    ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    ...(options.transform ? { transform: options.transform } : {}),
  });
  // evaluateSource reads the source in order, unshuffled: result i is sample i.
  check(
    metrics.yTrue.length === data.length && metrics.yTrue.every((y, i) => y === data.label(i)),
    op,
    'the evaluation lost the order of the data source',
  );
  const paths = Array.from({ length: data.length }, (_, i) => data.describe?.(i) ?? `sample ${i}`);
  metrics.cases = caseRecords(metrics.yTrue, metrics.probabilities ?? [], { paths }).map((c) => ({
    ...c,
    path: c.path as string,
    predicted: metrics.yPred[c.index] as number,
  }));
  metrics.tta = tta;
  if (tta !== 1) metrics.ttaFlips = [...new Set(ttaViews(tta, flips).flat())];
  if (options.temperature === undefined || options.temperature === 1) return metrics;
  return withTemperature(metrics, options.temperature, {
    classNames,
    ...(normal !== undefined ? { normalClass: normal } : {}),
  });
}
