import { check } from '../util/errors.js';
import type { ReliabilityBin } from './calibration.js';
import { type LabelInput, type ProbabilityInput, toLabels, toProbabilities } from './inputs.js';
import type { CoverageCurve } from './referral.js';
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

/** The chance line of a ROC plot. */
const DIAGONAL = {
  data: {
    values: [
      { x: 0, y: 0 },
      { x: 1, y: 1 },
    ],
  },
  mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
  encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
};

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
      DIAGONAL,
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

/**
 * ROC curve of P(not normal) (abnormal vs normal) with the operating point marked: the frozen
 * threshold's (1 - specificity, sensitivity) on this data, labelled with the threshold.
 *
 * @example
 * const roc = abnormalRoc(yTrue, probs, 2);
 * operatingPointRocChart(roc, { point: { fpr: 0.12, tpr: 1, label: 't = 0.08' } });
 */
export function operatingPointRocChart(
  roc: { fpr: readonly number[]; tpr: readonly number[]; auc: number },
  options: { point?: { fpr: number; tpr: number; label: string }; title?: string } = {},
): ChartSpec {
  check(
    roc.fpr.length > 0 && roc.fpr.length === roc.tpr.length,
    'operatingPointRocChart',
    'the ROC curve needs as many false as true positive rates',
  );
  const curve = roc.fpr.map((fpr, i) => ({ fpr, tpr: roc.tpr[i], order: i }));
  const x = {
    field: 'fpr',
    type: 'quantitative',
    title: 'False positive rate (1 - specificity)',
    scale: { domain: [0, 1] },
  };
  const y = { field: 'tpr', type: 'quantitative', title: 'Sensitivity', scale: { domain: [0, 1] } };
  const layers: Record<string, unknown>[] = [
    DIAGONAL,
    {
      data: { values: curve },
      mark: { type: 'line', color: '#1f77b4', strokeWidth: 2 },
      encoding: { x, y, order: { field: 'order', type: 'quantitative' } },
    },
  ];
  if (options.point) {
    const p = [{ ...options.point }];
    layers.push(
      {
        data: { values: p },
        mark: { type: 'point', filled: true, size: 140, color: '#d62728' },
        encoding: { x, y: { ...y, field: 'tpr' } },
      },
      {
        data: { values: p },
        mark: { type: 'text', align: 'left', dx: 9, dy: 12, fontSize: 12, color: '#d62728' },
        encoding: { x, y, text: { field: 'label', type: 'nominal' } },
      },
    );
  }
  return {
    $schema: SCHEMA,
    title: options.title ?? `Abnormal vs normal: ROC of P(not normal), AUC ${roc.auc.toFixed(3)}`,
    width: 320,
    height: 320,
    layer: layers,
  };
}

/**
 * Reliability diagram: accuracy against mean confidence per bin (points sized by the number of
 * images), one line per series (e.g. before and after temperature scaling); a calibrated model
 * lies on the diagonal. Empty bins are left out.
 *
 * @example
 * reliabilityChart([{ name: 'model (ECE 0.081)', bins: reliabilityBins(yTrue, probs, { bins: 10 }) }]);
 */
export function reliabilityChart(
  series: readonly { name: string; bins: readonly ReliabilityBin[] }[],
  options: { title?: string } = {},
): ChartSpec {
  check(series.length > 0, 'reliabilityChart', 'no series to draw');
  const values = series.flatMap((s) =>
    s.bins
      .filter((b) => b.count > 0)
      .map((b) => ({ series: s.name, confidence: b.confidence, accuracy: b.accuracy, count: b.count })),
  );
  const x = {
    field: 'confidence',
    type: 'quantitative',
    title: 'Confidence (top probability)',
    scale: { domain: [0, 1] },
  };
  const y = { field: 'accuracy', type: 'quantitative', title: 'Accuracy', scale: { domain: [0, 1] } };
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    sort: series.map((s) => s.name),
    legend: { orient: 'top-left', labelLimit: 400 },
  };
  return {
    $schema: SCHEMA,
    title: options.title ?? 'Reliability diagram',
    width: 320,
    height: 320,
    layer: [
      DIAGONAL,
      {
        data: { values },
        mark: { type: 'line', point: false, opacity: 0.8 },
        encoding: { x, y, color },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, opacity: 0.85 },
        encoding: {
          x,
          y,
          color,
          size: { field: 'count', type: 'quantitative', title: 'Images', scale: { range: [20, 300] } },
        },
      },
    ],
  };
}

/**
 * Coverage against accuracy of referring uncertain images to a human: one line per certainty
 * measure, and the chosen referral cut-offs marked.
 *
 * @example
 * coverageChart([{ name: 'max probability', curve: coverageAccuracy(yTrue, probs) }]);
 */
export function coverageChart(
  curves: readonly { name: string; curve: CoverageCurve }[],
  options: { marks?: readonly { name: string; coverage: number; accuracy: number }[]; title?: string } = {},
): ChartSpec {
  check(curves.length > 0, 'coverageChart', 'no curve to draw');
  const values = curves.flatMap((c) =>
    c.curve.coverage.map((coverage, i) => ({
      measure: c.name,
      coverage,
      accuracy: c.curve.accuracy[i],
      order: i,
    })),
  );
  const x = {
    field: 'coverage',
    type: 'quantitative',
    title: 'Coverage (images the model keeps)',
    scale: { domain: [0, 1] },
  };
  const y = {
    field: 'accuracy',
    type: 'quantitative',
    title: 'Accuracy on the kept images',
    scale: { zero: false },
  };
  const color = {
    field: 'measure',
    type: 'nominal',
    title: 'Certainty',
    sort: curves.map((c) => c.name),
    legend: { labelLimit: 400 },
  };
  const layers: Record<string, unknown>[] = [
    {
      data: { values },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: { x, y, color, order: { field: 'order', type: 'quantitative' } },
    },
  ];
  const marks = (options.marks ?? []).filter((m) => Number.isFinite(m.accuracy) && m.coverage > 0);
  if (marks.length) {
    const data = {
      values: marks.map((m) => ({
        measure: m.name,
        coverage: m.coverage,
        accuracy: m.accuracy,
        label: `kept ${(100 * m.coverage).toFixed(0)}%`,
      })),
    };
    layers.push(
      {
        data,
        mark: { type: 'point', size: 120, strokeWidth: 2 },
        encoding: { x, y, color },
      },
      {
        data,
        mark: { type: 'text', align: 'left', dx: 8, dy: -9, fontSize: 11 },
        encoding: { x, y, text: { field: 'label', type: 'nominal' } },
      },
    );
  }
  return {
    $schema: SCHEMA,
    title: options.title ?? 'Refer uncertain images to a human: coverage vs accuracy',
    width: 320,
    height: 320,
    layer: layers,
  };
}
