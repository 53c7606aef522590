import { check } from '../util/errors.js';
import { confusionMatrix } from './confusion-matrix.js';
import { formatFixed } from './format.js';
import { checkPaired, inferNumClasses, type LabelInput, type ProbabilityInput, toLabels } from './inputs.js';

/** Metrics of one class (one-vs-rest). `sensitivity` is an alias of `recall`. */
export interface ClassMetrics {
  className: string;
  precision: number;
  recall: number;
  /** Alias of `recall`, the clinical name. */
  sensitivity: number;
  f1: number;
  /** True-negative rate: TN / (TN + FP). */
  specificity: number;
  /** Number of true samples of this class. */
  support: number;
}

export interface AveragedMetrics {
  precision: number;
  recall: number;
  f1: number;
}

/** What {@link classificationReport} returns. */
export interface ClassificationReport {
  perClass: ClassMetrics[];
  accuracy: number;
  macro: AveragedMetrics;
  weighted: AveragedMetrics;
  confusionMatrix: number[][];
  /** Total number of samples. */
  support: number;
  /** A text table laid out like scikit-learn's `classification_report`. */
  toString(digits?: number): string;
  /** A Markdown table of the same numbers. */
  toMarkdown(digits?: number): string;
}

export interface ClassificationReportOptions {
  numClasses?: number;
  classNames?: readonly string[];
  /** Value used when a ratio has a zero denominator (scikit-learn's `zero_division`). Default 0. */
  zeroDivision?: 0 | 1;
}

const ratio = (num: number, den: number, zero: number) => (den === 0 ? zero : num / den);

/**
 * Per-class precision, recall (sensitivity), F1, specificity and support, accuracy, and macro
 * and support-weighted averages, computed as scikit-learn 1.2 does.
 *
 * @example
 * const report = classificationReport(yTrue, probabilities, { classNames: ['glioma', 'meningioma', 'notumor', 'pituitary'] });
 * console.log(report.toString());
 */
export function classificationReport(
  yTrue: LabelInput,
  yPred: LabelInput | ProbabilityInput,
  options: ClassificationReportOptions = {},
): ClassificationReport {
  const op = 'classificationReport';
  const zero = options.zeroDivision ?? 0;
  check(zero === 0 || zero === 1, op, `zeroDivision must be 0 or 1, got ${String(zero)}`);
  const given = options.numClasses ?? options.classNames?.length;
  const t = toLabels(op, 'yTrue', yTrue, given);
  const p = toLabels(op, 'yPred', yPred, given);
  checkPaired(op, t, p);
  const n = inferNumClasses(op, given, t, p);
  const names = options.classNames ? [...options.classNames] : Array.from({ length: n }, (_, k) => String(k));
  check(names.length === n, op, `classNames has ${names.length} names but there are ${n} classes`);
  const cm = confusionMatrix(t, p, { numClasses: n });
  const total = t.length;

  const perClass: ClassMetrics[] = names.map((className, k) => {
    const row = cm[k] as number[];
    const tp = row[k] as number;
    const support = row.reduce((a, b) => a + b, 0);
    const predicted = cm.reduce((a, r) => a + (r[k] as number), 0);
    const fp = predicted - tp;
    const tn = total - support - fp;
    const precision = ratio(tp, predicted, zero);
    const recall = ratio(tp, support, zero);
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return {
      className,
      precision,
      recall,
      sensitivity: recall,
      f1,
      specificity: ratio(tn, tn + fp, zero),
      support,
    };
  });
  const accuracy = cm.reduce((a, r, k) => a + (r[k] as number), 0) / total;
  const mean = (key: 'precision' | 'recall' | 'f1') => perClass.reduce((a, c) => a + c[key], 0) / n;
  const weightedMean = (key: 'precision' | 'recall' | 'f1') =>
    ratio(
      perClass.reduce((a, c) => a + c[key] * c.support, 0),
      total,
      zero,
    );
  const macro = { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
  const weighted = {
    precision: weightedMean('precision'),
    recall: weightedMean('recall'),
    f1: weightedMean('f1'),
  };
  // scikit-learn prints "micro avg" instead of "accuracy" when a class occurs in neither list.
  const absent = perClass.some((c, k) => c.support === 0 && cm.every((r) => r[k] === 0));

  const report: ClassificationReport = {
    perClass,
    accuracy,
    macro,
    weighted,
    confusionMatrix: cm,
    support: total,
    toString: (digits = 2) => formatReport(report, digits, absent),
    toMarkdown: (digits = 3) => markdownReport(report, digits),
  };
  return report;
}

function formatReport(r: ClassificationReport, digits: number, microAvg: boolean): string {
  const width = Math.max('weighted avg'.length, digits, ...r.perClass.map((c) => c.className.length));
  const col = (s: string) => ` ${s.padStart(9)}`;
  const f = (x: number) => col(formatFixed(x, digits));
  let out = `${''.padStart(width)} ${col('precision')}${col('recall')}${col('f1-score')}${col('support')}\n\n`;
  for (const c of r.perClass) {
    out += `${c.className.padStart(width)} ${f(c.precision)}${f(c.recall)}${f(c.f1)}${col(String(c.support))}\n`;
  }
  out += '\n';
  if (microAvg) {
    const a = r.accuracy;
    out += `${'micro avg'.padStart(width)} ${f(a)}${f(a)}${f(a)}${col(String(r.support))}\n`;
  } else {
    out += `${'accuracy'.padStart(width)} ${col('')}${col('')}${f(r.accuracy)}${col(String(r.support))}\n`;
  }
  for (const [label, m] of [
    ['macro avg', r.macro],
    ['weighted avg', r.weighted],
  ] as const) {
    out += `${label.padStart(width)} ${f(m.precision)}${f(m.recall)}${f(m.f1)}${col(String(r.support))}\n`;
  }
  return out;
}

function markdownReport(r: ClassificationReport, digits: number): string {
  const f = (x: number) => formatFixed(x, digits);
  const lines = [
    '| class | precision | recall (sensitivity) | specificity | F1 | support |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.perClass.map(
      (c) =>
        `| ${c.className} | ${f(c.precision)} | ${f(c.recall)} | ${f(c.specificity)} | ${f(c.f1)} | ${c.support} |`,
    ),
    `| **macro avg** | ${f(r.macro.precision)} | ${f(r.macro.recall)} | | ${f(r.macro.f1)} | ${r.support} |`,
    `| **weighted avg** | ${f(r.weighted.precision)} | ${f(r.weighted.recall)} | | ${f(r.weighted.f1)} | ${r.support} |`,
    `| **accuracy** | | | | ${f(r.accuracy)} | ${r.support} |`,
  ];
  return `${lines.join('\n')}\n`;
}
