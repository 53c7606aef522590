import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { SampleSource } from '../data/loader.js';
import type { DecodeSpec } from '../inference/classifier.js';
import { saveClassifier } from '../inference/classifier.node.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import type { EpochLog } from '../train/checkpoint.js';
import { evaluate } from '../train/evaluate.js';
import type { Transform } from '../transforms/base.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { writeEvaluation, writeTrainingCurves } from './evaluation.node.js';

export interface EvaluateAndSaveOptions {
  /** The run's folder: `evaluation/`, `test-evaluation/`, `training-curves.*`, `history.json`, `classifier/`. */
  dir: string;
  model: tfl.LayersModel;
  classNames: string[];
  normalClass?: string | null;
  /** How images are decoded for this model (saved with the classifier). */
  decode: DecodeSpec;
  /** The deterministic pipeline after decoding (saved with the classifier). */
  preprocessing: Transform;
  /** The split that picked the best epoch. */
  validation: SampleSource;
  /** A held-out test set, scored once and reported separately. */
  test?: SampleSource;
  history?: readonly EpochLog[];
  /** Carried by the saved classifier as its model card (e.g. the CLI's `run.json`). */
  modelCard?: Record<string, unknown>;
  /** Where the text reports go (default: nowhere). */
  log?: (text: string) => void;
  batchSize?: number;
}

/** A compact summary of an evaluation, as saved in `classifier.json`'s metrics. */
export function metricsSummary(m: EvaluationMetrics): Record<string, unknown> {
  return {
    images: m.report.support,
    accuracy: m.report.accuracy,
    macroF1: m.report.macro.f1,
    loss: m.loss ?? null,
    rocAucMacro: m.rocAuc?.macro ?? null,
    missedFindings: m.missedFindings
      ? { count: m.missedFindings.count, of: m.missedFindings.abnormal }
      : null,
  };
}

/**
 * The end of a training run, shared by the CLI and the examples: evaluates the model on the
 * validation split (the one that picked the best epoch) and writes its report and pictures;
 * scores the held-out test set once, when given, into its own folder; writes the training
 * curves and history; and saves the classifier folder with both results and the model card.
 *
 * @example
 * const { validation, test } = await evaluateAndSave({ dir: 'runs/brain', model, classNames, normalClass: 'notumor',
 *   decode, preprocessing, validation: valSource, test: testSource, history: result.history, log: console.log });
 */
export async function evaluateAndSave(
  options: EvaluateAndSaveOptions,
): Promise<{ validation: EvaluationMetrics; test?: EvaluationMetrics }> {
  const { dir, model, classNames } = options;
  const log = options.log ?? (() => {});
  const normalClass = options.normalClass ?? undefined;
  const score = (data: SampleSource) =>
    evaluate(model, data, {
      classNames,
      transform: options.preprocessing,
      ...(normalClass ? { normalClass } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
    });
  const validation = await score(options.validation);
  const v = await writeEvaluation(validation, join(dir, 'evaluation'), {
    classNames,
    title: 'Validation (the split that picked the best epoch)',
  });
  log(`validation: ${validation.report.support} images\n${v.text}`);
  log(`pictures: ${v.files.map((f) => f.png).join(', ')}`);
  let test: EvaluationMetrics | undefined;
  if (options.test) {
    test = await score(options.test);
    const t = await writeEvaluation(test, join(dir, 'test-evaluation'), {
      classNames,
      title: 'Held-out test set (scored once)',
    });
    log(`held-out test: ${test.report.support} images, scored once\n${t.text}`);
    log(`pictures: ${t.files.map((f) => f.png).join(', ')}`);
  }
  if (options.history?.length) {
    const curves = await writeTrainingCurves(options.history, join(dir, 'training-curves'));
    await writeFileAtomic(join(dir, 'history.json'), `${JSON.stringify(options.history, null, 2)}\n`);
    log(`training curves: ${curves.png}`);
  }
  await saveClassifier(join(dir, 'classifier'), {
    model,
    classNames,
    decode: options.decode,
    preprocessing: options.preprocessing,
    normalClass: normalClass ?? null,
    metrics: { validation: metricsSummary(validation), ...(test ? { test: metricsSummary(test) } : {}) },
    ...(options.modelCard ? { modelCard: options.modelCard } : {}),
  });
  log(`saved classifier: ${join(dir, 'classifier')}`);
  return { validation, ...(test ? { test } : {}) };
}
