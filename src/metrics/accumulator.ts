import * as tf from '@tensorflow/tfjs-core';
import type { TtaFlip, TtaViews } from '../inference/tta.js';
import { check } from '../util/errors.js';
import { type ClassificationReport, classificationReport } from './classification-report.js';
import { type LabelInput, type ProbabilityInput, toLabels, toProbabilities } from './inputs.js';
import type { CaseRecord } from './interpretation.js';
import { type MissedFindings, missedFindings } from './missed-findings.js';
import { rocAuc } from './roc.js';

export interface AccumulatorOptions {
  numClasses: number;
  classNames?: readonly string[];
  /** Index of the normal / healthy class, for {@link missedFindings}. */
  normalClass?: number;
}

/** One evaluated image: a {@link CaseRecord} with its file and the model's (argmax) prediction. */
export interface EvaluationCase extends CaseRecord {
  /** The image (the data source's `describe(index)`, e.g. its path). */
  path: string;
  /** The most probable class. */
  predicted: number;
}

/** What {@link MetricAccumulator.aggregate} returns (and `evaluate`, with the per-case fields). */
export interface EvaluationMetrics {
  report: ClassificationReport;
  /** Per-class and macro one-vs-rest ROC-AUC, when probabilities were given. */
  rocAuc?: { perClass: number[]; macro: number };
  missedFindings?: MissedFindings;
  /** Mean of the per-sample losses passed to `update`, when given. */
  loss?: number;
  yTrue: number[];
  yPred: number[];
  probabilities?: number[][];
  /** Every image in data-source order: path, true class, probabilities, loss, prediction (set by `evaluate`). */
  cases?: EvaluationCase[];
  /** The temperature `probabilities` were scaled with (set by `evaluate` with a temperature). */
  temperature?: number;
  /** The model's probabilities before the temperature (with `temperature`). */
  rawProbabilities?: number[][];
  /** Test-time augmentation views averaged into the probabilities (set by `evaluate`). */
  tta?: TtaViews;
  /** The flips of those views, with `tta` above 1 (e.g. `['vertical']`). */
  ttaFlips?: TtaFlip[];
}

/**
 * Collects labels (and probabilities) batch by batch during evaluation, then computes the
 * metrics once (MONAI's cumulative-metric pattern). Tensors passed to `update` are read, not
 * disposed.
 *
 * @example
 * const acc = new MetricAccumulator({ numClasses: 4, classNames, normalClass: 2 });
 * for await (const { xs, ys } of batches) acc.update(ys, model.predict(xs) as tf.Tensor);
 * const { report, rocAuc, missedFindings } = acc.aggregate();
 */
export class MetricAccumulator {
  private yTrue: number[] = [];
  private yPred: number[] = [];
  private probabilities: number[][] = [];
  private lossSum = 0;
  private lossCount = 0;
  constructor(private readonly options: AccumulatorOptions) {
    check(
      Number.isInteger(options?.numClasses) && options.numClasses > 0,
      'MetricAccumulator',
      `numClasses must be a positive integer, got ${String(options?.numClasses)}`,
    );
  }

  /** Adds a batch: true labels (or one-hot) and predicted labels or probabilities. */
  update(
    yTrue: LabelInput | ProbabilityInput,
    yPred: LabelInput | ProbabilityInput,
    losses?: ArrayLike<number>,
  ): this {
    const op = 'MetricAccumulator.update';
    const n = this.options.numClasses;
    const t = toLabels(op, 'yTrue', yTrue, n);
    const p = toLabels(op, 'yPred', yPred, n);
    check(t.length === p.length, op, `yTrue has ${t.length} samples but yPred has ${p.length}`);
    const isProbs =
      (yPred instanceof tf.Tensor && yPred.rank === 2) || (Array.isArray(yPred) && Array.isArray(yPred[0]));
    check(
      this.yTrue.length === 0 || isProbs === this.probabilities.length > 0,
      op,
      'mixes batches with and without probabilities',
    );
    if (isProbs) {
      const probs = toProbabilities(op, yPred as ProbabilityInput);
      check(probs[0]?.length === n, op, `probabilities have ${probs[0]?.length} columns, expected ${n}`);
      this.probabilities.push(...probs);
    }
    if (losses) {
      for (let i = 0; i < losses.length; i++) this.lossSum += losses[i] as number;
      this.lossCount += losses.length;
    }
    this.yTrue.push(...t);
    this.yPred.push(...p);
    return this;
  }

  /** Number of samples seen since the last reset. */
  get count(): number {
    return this.yTrue.length;
  }

  aggregate(): EvaluationMetrics {
    const { numClasses, classNames, normalClass } = this.options;
    const report = classificationReport(this.yTrue, this.yPred, {
      numClasses,
      ...(classNames ? { classNames } : {}),
    });
    const out: EvaluationMetrics = { report, yTrue: [...this.yTrue], yPred: [...this.yPred] };
    if (this.probabilities.length) {
      out.probabilities = this.probabilities.map((r) => [...r]);
      // A class absent from this batch of labels has no ROC: it is left out of the macro average.
      out.rocAuc = {
        perClass: rocAuc(this.yTrue, this.probabilities, { average: 'none' }),
        macro: rocAuc(this.yTrue, this.probabilities, { average: 'macro', absentClasses: 'skip' }),
      };
    }
    if (normalClass !== undefined) {
      out.missedFindings = missedFindings(this.yTrue, this.yPred, {
        normalClass,
        numClasses,
        ...(classNames ? { classNames } : {}),
      });
    }
    if (this.lossCount) out.loss = this.lossSum / this.lossCount;
    return out;
  }

  reset(): void {
    this.yTrue = [];
    this.yPred = [];
    this.probabilities = [];
    this.lossSum = 0;
    this.lossCount = 0;
  }
}
