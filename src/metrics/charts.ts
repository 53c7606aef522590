import { check } from '../util/errors.js';
import { type LabelInput, type ProbabilityInput, toLabels, toProbabilities } from './inputs.js';
import { binaryAuc, rocCurve } from './roc.js';

/** A Vega-Lite specification (plain JSON), rendered by `renderChart` in `medimg-classify/node` or by vega-embed in a page. */
export type ChartSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/**
 * Confusion-matrix heat map with the count (and row percentage) in each cell; rows are the
 * true class. `normalize: true` colours by row-normalised recall.
 */
export function confusionMatrixChart(
  matrix: number[][],
  options: { classNames?: readonly string[]; normalize?: boolean; title?: string } = {},
): ChartSpec {
  const n = matrix.length;
  check(
    n > 0 && matrix.every((r) => r.length === n),
    'confusionMatrixChart',
    'matrix must be square and non-empty',
  );
  const names = options.classNames ?? matrix.map((_, k) => String(k));
  const values = matrix.flatMap((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, j) => ({
      true: names[i],
      predicted: names[j],
      count,
      rate: total ? count / total : 0,
      label: options.normalize ? `${total ? ((100 * count) / total).toFixed(1) : '0.0'}%` : String(count),
    }));
  });
  const colour = options.normalize ? 'rate' : 'count';
  return {
    $schema: SCHEMA,
    title:
      options.title ??
      (options.normalize ? 'Confusion matrix (row-normalised)' : 'Confusion matrix (counts)'),
    data: { values },
    width: Math.max(160, 60 * n),
    height: Math.max(160, 60 * n),
    encoding: {
      x: {
        field: 'predicted',
        type: 'nominal',
        sort: names,
        title: 'Predicted class',
        axis: { labelAngle: -30 },
      },
      y: { field: 'true', type: 'nominal', sort: names, title: 'True class' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: colour,
            type: 'quantitative',
            scale: { scheme: 'blues', ...(options.normalize ? { domain: [0, 1] } : {}) },
            title: options.normalize ? 'Recall' : 'Count',
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 13 },
        encoding: {
          text: { field: 'label', type: 'nominal' },
          color: { condition: { test: 'datum.rate > 0.5', value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/** One-vs-rest ROC curves of every class, with the AUC in the legend. */
export function rocChart(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { classNames?: readonly string[]; title?: string } = {},
): ChartSpec {
  const probs = toProbabilities('rocChart', probabilities);
  const n = probs[0]?.length ?? 0;
  const t = toLabels('rocChart', 'yTrue', yTrue, n);
  const names = options.classNames ?? Array.from({ length: n }, (_, k) => String(k));
  const values: Record<string, unknown>[] = [];
  for (let k = 0; k < n; k++) {
    const positive = t.map((y) => y === k);
    if (!positive.some(Boolean) || positive.every(Boolean)) continue;
    const scores = probs.map((r) => r[k] as number);
    const auc = binaryAuc(positive, scores);
    const curve = rocCurve(positive, scores);
    const label = `${names[k]} (AUC ${auc.toFixed(3)})`;
    curve.fpr.forEach((fpr, i) => {
      values.push({ class: label, fpr, tpr: curve.tpr[i], order: i });
    });
  }
  return {
    $schema: SCHEMA,
    title: options.title ?? 'ROC curves (one-vs-rest)',
    width: 320,
    height: 320,
    layer: [
      {
        data: {
          values: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
        mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values },
        mark: { type: 'line' },
        encoding: {
          x: {
            field: 'fpr',
            type: 'quantitative',
            title: 'False positive rate (1 - specificity)',
            scale: { domain: [0, 1] },
          },
          y: {
            field: 'tpr',
            type: 'quantitative',
            title: 'True positive rate (sensitivity)',
            scale: { domain: [0, 1] },
          },
          color: {
            field: 'class',
            type: 'nominal',
            title: 'Class',
            legend: { labelLimit: 400, orient: 'bottom-right' },
          },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  };
}

/** One row of training history: a metric's value for a split after an epoch. */
export interface HistoryPoint {
  epoch: number;
  metric: string;
  split: string;
  value: number;
}

/** Training curves: one panel per metric (loss, accuracy, F1, ...), one line per split. */
export function trainingCurvesChart(
  history: readonly HistoryPoint[],
  options: { title?: string } = {},
): ChartSpec {
  check(history.length > 0, 'trainingCurvesChart', 'history is empty');
  const finite = history.filter((h) => Number.isFinite(h.value));
  return {
    $schema: SCHEMA,
    title: options.title ?? 'Training curves',
    data: { values: finite },
    facet: { field: 'metric', type: 'nominal', title: null },
    columns: 3,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 240,
      height: 180,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'Epoch', axis: { tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'split', type: 'nominal', title: 'Split' },
      },
    },
  };
}
