import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import type { SampleSource } from '../data/loader.js';
import { gradCamOverlay } from '../inference/gradcam.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import type { Interval } from '../metrics/bootstrap.js';
import {
  type ChartSpec,
  confusionMatrixChart,
  coverageChart,
  type HistoryPoint,
  operatingPointRocChart,
  reliabilityChart,
  rocChart,
  trainingCurvesChart,
} from '../metrics/charts.js';
import { predictionsCsv } from '../metrics/interpretation.js';
import { DEFAULT_WORST_CASES, type ReviewChoices, reviewSplit, type SplitReview } from '../metrics/review.js';
import type { EpochLog } from '../train/checkpoint.js';
import type { Transform } from '../transforms/base.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { check } from '../util/errors.js';
import { writeChart } from './render.node.js';
import { writeWorstCasesGrid } from './worst-cases.node.js';

/** Converts per-epoch logs into chart rows (`loss`/`val_loss` become one panel, two lines). */
export function historyPoints(history: readonly EpochLog[]): HistoryPoint[] {
  const out: HistoryPoint[] = [];
  for (const log of history) {
    for (const [key, value] of Object.entries(log)) {
      if (key === 'epoch' || key === 'lr' || typeof value !== 'number') continue;
      const validation = key.startsWith('val_');
      out.push({
        epoch: log.epoch + 1,
        metric: validation ? key.slice(4) : key,
        split: validation ? 'validation' : 'train',
        value,
      });
    }
  }
  return out;
}

/** Writes training curves (loss, accuracy, F1 per epoch, both splits) as SVG and PNG. */
export async function writeTrainingCurves(history: readonly EpochLog[], base: string) {
  return writeChart(trainingCurvesChart(historyPoints(history)), base);
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const ci = (i: Interval) =>
  Number.isFinite(i.lower) ? `${pct(i.estimate)} (95% CI ${pct(i.lower)}-${pct(i.upper)})` : pct(i.estimate);

/** Options of {@link writeEvaluation}. */
export interface WriteEvaluationOptions {
  classNames: string[];
  title?: string;
  /** The normal / healthy class: `missed_finding` in the CSV, the abnormal-vs-normal operating point. */
  normalClass?: string;
  /** Decision rules chosen on validation data (`chooseRules`), applied frozen to these metrics. */
  choices?: ReviewChoices;
  /** True when `metrics` are the split the rules were chosen on (its figures are then optimistic). */
  chosenHere?: boolean;
  /** The model and data of the evaluation: the worst cases are drawn with their Grad-CAM overlays. */
  gradCam?: { model: tfl.LayersModel; source: SampleSource; transform?: Transform };
  /** Worst cases listed and drawn (default 12; 0: none). */
  worst?: number;
  /** Seed of the bootstrap confidence intervals (default 0). */
  seed?: number;
}

/** What {@link writeEvaluation} wrote, with the review the report page shows. */
export interface WrittenEvaluation {
  /** The text report (also in `report.txt`). */
  text: string;
  /** Every chart written (SVG, PNG and spec paths). */
  files: { svg: string; png: string; spec: string }[];
  /** PNG paths by chart: confusion, confusionNormalized, roc, operatingPoint, confusionAtThreshold, reliability, coverage. */
  charts: Record<string, string>;
  /** The review (absent when the metrics have no probabilities). */
  review?: SplitReview;
  /** `predictions.csv`, when the metrics have per-case results (from `evaluate`). */
  predictions?: string;
  /** `worst-cases.png` (with `gradCam`). */
  worstCases?: { path: string; gradCam: boolean; note?: string };
  dir: string;
}

function reviewText(review: SplitReview, choices: ReviewChoices | undefined, classNames: string[]): string {
  let text = '';
  const o = review.operatingPoint;
  if (o) {
    const r = o.result;
    text += `\nOperating point (abnormal vs normal): abnormal when P(not ${classNames[review.normalClass as number]}) >= ${r.threshold.toPrecision(4)}, chosen on validation for sensitivity ${pct(o.sensitivityTarget)}${review.chosenHere ? ' (on this data: optimistic)' : ', applied frozen'}\n`;
    text += `  sensitivity ${ci(o.confidence.sensitivity)}\n  specificity ${ci(o.confidence.specificity)}\n`;
    text += `  missed findings ${r.missed} of ${r.abnormal} (rate ${ci(o.confidence.missedRate)}), false alarms ${r.falseAlarms} of ${r.normal}\n`;
  } else if (choices?.operatingPointNote) text += `\nOperating point: ${choices.operatingPointNote}\n`;
  const c = review.calibration;
  text += `\nCalibration: ECE ${c.ece.toFixed(4)}, NLL ${c.nll.toFixed(4)}`;
  if (c.before)
    text += ` after temperature ${c.temperature?.toFixed(3)} (before: ECE ${c.before.ece.toFixed(4)}, NLL ${c.before.nll.toFixed(4)})`;
  else if (choices?.temperature && !choices.temperature.applied)
    text += ` (temperature: ${choices.temperature.note})`;
  text += '\n';
  for (const r of review.referral.rules) {
    if (r.by !== 'maxProbability') continue;
    text += Number.isFinite(r.threshold)
      ? `\nReferral (top probability < ${r.threshold.toPrecision(4)} goes to a human; chosen on validation for ${pct(r.targetAccuracy)} accuracy): keeps ${r.kept} of ${review.images} (${pct(r.coverage)}) at accuracy ${pct(r.accuracy)}, refers ${r.referred}\n`
      : `\nReferral: no cut-off reaches ${pct(r.targetAccuracy)} accuracy where the rules were chosen: no referral rule\n`;
  }
  if (review.mostConfused.length)
    text += `\nMost confused (true -> predicted): ${review.mostConfused
      .slice(0, 6)
      .map(([a, b, n]) => `${a} -> ${b}: ${n}`)
      .join(', ')}\n`;
  return text;
}

function reviewJson(review: SplitReview, metrics: EvaluationMetrics) {
  const o = review.operatingPoint;
  const paths = (indices: number[]) => indices.map((i) => metrics.cases?.[i]?.path ?? `sample ${i}`);
  return {
    confidence: review.confidence,
    calibration: review.calibration,
    operatingPoint: o
      ? {
          threshold: o.result.threshold,
          sensitivityTarget: o.sensitivityTarget,
          sensitivity: o.confidence.sensitivity,
          specificity: o.confidence.specificity,
          missedRate: o.confidence.missedRate,
          missed: o.result.missed,
          abnormal: o.result.abnormal,
          falseAlarms: o.result.falseAlarms,
          normal: o.result.normal,
          ppv: o.result.ppv,
          npv: o.result.npv,
          missedImages: paths(o.result.missedIndices),
          falseAlarmImages: paths(o.result.falseAlarmIndices),
          confusionMatrix: o.confusionMatrix,
          auc: o.roc?.auc ?? null,
        }
      : null,
    classThresholds: review.classThresholds,
    referral: { atCoverage: review.referral.atCoverage, rules: review.referral.rules },
    mostConfused: review.mostConfused,
    worst: review.worst.map((c) => ({
      path: c.path,
      index: c.index,
      yTrue: c.yTrue,
      predicted: c.predicted,
      loss: c.loss,
    })),
    chosenHere: review.chosenHere,
  };
}

/**
 * Writes an evaluation to a folder: `report.txt` (scikit-learn layout, then the operating point,
 * calibration, referral and most-confused classes), `report.md`, `metrics.json`,
 * `predictions.csv` (one row per image, from `evaluate`'s per-case results), confusion matrices
 * (counts, row-normalised, and at the operating point), ROC curves (one-vs-rest, and abnormal vs
 * normal with the operating point marked), the reliability diagram and the coverage-accuracy
 * curve as SVG + PNG, and, with `gradCam`, `worst-cases.png`. Decision rules given in `choices`
 * (chosen on validation) are applied frozen. Returns the text, the files and the
 * {@link SplitReview} that `writeReportPage` shows.
 */
export async function writeEvaluation(
  metrics: EvaluationMetrics,
  dir: string,
  options: WriteEvaluationOptions,
): Promise<WrittenEvaluation> {
  const { classNames, choices } = options;
  const normal = options.normalClass === undefined ? undefined : classNames.indexOf(options.normalClass);
  check(
    normal === undefined || normal >= 0,
    'writeEvaluation',
    `normalClass '${options.normalClass}' is not one of ${classNames.join(', ')}`,
  );
  const r = metrics.report;
  let text = r.toString();
  if (metrics.rocAuc) text += `\nROC-AUC (one-vs-rest, macro): ${metrics.rocAuc.macro.toFixed(4)}\n`;
  if (metrics.missedFindings) {
    const m = metrics.missedFindings;
    text += `\nMissed findings (abnormal called normal): ${m.count} of ${m.abnormal}${m.perClass.length ? ` (${m.perClass.map((p) => `${p.className ?? p.trueClass}: ${p.count}/${p.of}`).join(', ')})` : ''}\n`;
  }
  const review = metrics.probabilities
    ? reviewSplit(metrics, choices, {
        classNames,
        ...(normal !== undefined ? { normalClass: normal } : {}),
        ...(choices ? { sensitivity: choices.sensitivity, referralAccuracy: choices.referralAccuracy } : {}),
        chosenHere: options.chosenHere ?? false,
        seed: options.seed ?? 0,
        worst: options.worst ?? DEFAULT_WORST_CASES,
      })
    : undefined;
  if (review) text += reviewText(review, choices, classNames);
  await writeFileAtomic(join(dir, 'report.txt'), text);
  await writeFileAtomic(join(dir, 'report.md'), `# ${options.title ?? 'Evaluation'}\n\n${r.toMarkdown()}`);
  await writeFileAtomic(
    join(dir, 'metrics.json'),
    `${JSON.stringify(
      {
        accuracy: r.accuracy,
        macro: r.macro,
        weighted: r.weighted,
        perClass: r.perClass,
        confusionMatrix: r.confusionMatrix,
        rocAuc: metrics.rocAuc ?? null,
        missedFindings: metrics.missedFindings ?? null,
        loss: metrics.loss ?? null,
        tta: metrics.tta ?? 1,
        ...(metrics.ttaFlips ? { ttaFlips: metrics.ttaFlips } : {}),
        temperature: metrics.temperature ?? null,
        ...(review ? { review: reviewJson(review, metrics) } : {}),
      },
      null,
      2,
    )}\n`,
  );
  const charts: Record<string, string> = {};
  const files: WrittenEvaluation['files'] = [];
  const chart = async (name: string, spec: ChartSpec, base: string) => {
    const f = await writeChart(spec, join(dir, base));
    files.push(f);
    charts[name] = f.png;
  };
  await chart('confusion', confusionMatrixChart(r.confusionMatrix, { classNames }), 'confusion-matrix');
  await chart(
    'confusionNormalized',
    confusionMatrixChart(r.confusionMatrix, { classNames, normalize: true }),
    'confusion-matrix-normalized',
  );
  if (metrics.probabilities)
    await chart('roc', rocChart(metrics.yTrue, metrics.probabilities, { classNames }), 'roc');
  let predictions: string | undefined;
  let worstCases: WrittenEvaluation['worstCases'];
  if (review) {
    const o = review.operatingPoint;
    if (o?.roc)
      await chart(
        'operatingPoint',
        operatingPointRocChart(o.roc, {
          point: {
            fpr: 1 - o.result.specificity,
            tpr: o.result.sensitivity,
            label: `threshold ${o.result.threshold.toPrecision(3)}`,
          },
          title: `Abnormal vs normal (AUC ${o.roc.auc.toFixed(3)}), operating point marked`,
        }),
        'roc-operating-point',
      );
    if (o)
      await chart(
        'confusionAtThreshold',
        confusionMatrixChart(o.confusionMatrix, {
          classNames,
          title: `At the operating point (threshold ${o.result.threshold.toPrecision(3)})`,
        }),
        'confusion-matrix-operating-point',
      );
    const c = review.calibration;
    await chart(
      'reliability',
      reliabilityChart(
        [
          ...(c.before ? [{ name: `model (ECE ${c.before.ece.toFixed(3)})`, bins: c.before.bins }] : []),
          {
            name: c.before
              ? `temperature ${c.temperature?.toFixed(2)} (ECE ${c.ece.toFixed(3)})`
              : `model (ECE ${c.ece.toFixed(3)})`,
            bins: c.bins,
          },
        ],
        { title: 'Reliability diagram (10 bins)' },
      ),
      'reliability',
    );
    const names = { maxProbability: 'top probability', entropy: 'entropy' } as const;
    await chart(
      'coverage',
      coverageChart(
        review.referral.curves.map((curve) => ({ name: names[curve.by], curve })),
        {
          marks: review.referral.rules.map((rule) => ({
            name: names[rule.by],
            coverage: rule.coverage,
            accuracy: rule.accuracy,
          })),
        },
      ),
      'coverage',
    );
    if (metrics.cases) {
      predictions = join(dir, 'predictions.csv');
      const op = review.operatingPoint;
      await writeFileAtomic(
        predictions,
        predictionsCsv(metrics.cases, classNames, {
          ...(normal !== undefined ? { normalClass: normal } : {}),
          ...(op ? { threshold: op.result.threshold } : {}),
        }),
      );
    }
    if (options.gradCam && review.worst.length)
      worstCases = await writeWorstCasesGrid(review.worst, join(dir, 'worst-cases.png'), {
        ...options.gradCam,
        classNames,
      });
  }
  return {
    text,
    files,
    charts,
    ...(review ? { review } : {}),
    ...(predictions ? { predictions } : {}),
    ...(worstCases ? { worstCases } : {}),
    dir,
  };
}

/** Writes a Grad-CAM overlay PNG (heat map blended over the image). */
export async function writeGradCamPng(
  image: tf.Tensor3D,
  heatmap: tf.Tensor2D,
  path: string,
  options: { alpha?: number; scale?: number } = {},
) {
  const [h, w] = image.shape;
  const rgb = gradCamOverlay(image, heatmap, options);
  const scale = options.scale ?? Math.max(1, Math.round(256 / Math.max(h, w)));
  const png = await sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } })
    .resize(w * scale, h * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
  await writeFileAtomic(path, png);
  return path;
}
