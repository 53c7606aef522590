import type * as tfl from '@tensorflow/tfjs-layers';
import type { SampleSource } from '../data/loader.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import type { Transform } from '../transforms/base.js';
import { check } from '../util/errors.js';
import { evaluateSource } from './train.js';

/**
 * Evaluates a classifier on a data source: classification report, confusion matrix, one-vs-rest
 * ROC-AUC, and missed findings (abnormal cases called normal) when `normalClass` is given.
 * `medimg-classify/node`'s `writeEvaluation` turns the result into text, Markdown, JSON and pictures.
 */
export async function evaluate(
  model: tfl.LayersModel,
  data: SampleSource,
  options: { classNames: string[]; normalClass?: string; transform?: Transform; batchSize?: number },
): Promise<EvaluationMetrics> {
  const { classNames } = options;
  check(
    classNames.length === data.numClasses,
    'evaluate',
    `${classNames.length} class names for ${data.numClasses} classes`,
  );
  const normal = options.normalClass === undefined ? undefined : classNames.indexOf(options.normalClass);
  check(
    normal === undefined || normal >= 0,
    'evaluate',
    `normalClass '${options.normalClass}' is not one of ${classNames.join(', ')}`,
  );
  const { metrics } = await evaluateSource(model, data, {
    classNames,
    ...(normal !== undefined ? { normalClass: normal } : {}),
    ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    ...(options.transform ? { transform: options.transform } : {}),
  });
  return metrics;
}
