import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { gradCamOverlay } from '../inference/gradcam.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import { confusionMatrixChart, type HistoryPoint, rocChart, trainingCurvesChart } from '../metrics/charts.js';
import type { EpochLog } from '../train/checkpoint.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { writeChart } from './render.node.js';

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

/**
 * Writes an evaluation to a folder: `report.txt` (scikit-learn layout), `report.md`,
 * `metrics.json`, and confusion matrices (counts and row-normalised) and ROC curves as SVG + PNG.
 */
export async function writeEvaluation(
  metrics: EvaluationMetrics,
  dir: string,
  options: { classNames: string[]; title?: string },
) {
  const { classNames } = options;
  const r = metrics.report;
  let text = r.toString();
  if (metrics.rocAuc) text += `\nROC-AUC (one-vs-rest, macro): ${metrics.rocAuc.macro.toFixed(4)}\n`;
  if (metrics.missedFindings) {
    const m = metrics.missedFindings;
    text += `\nMissed findings (abnormal called normal): ${m.count} of ${m.abnormal}${m.perClass.length ? ` (${m.perClass.map((p) => `${p.className ?? p.trueClass}: ${p.count}/${p.of}`).join(', ')})` : ''}\n`;
  }
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
      },
      null,
      2,
    )}\n`,
  );
  const files = [
    await writeChart(confusionMatrixChart(r.confusionMatrix, { classNames }), join(dir, 'confusion-matrix')),
    await writeChart(
      confusionMatrixChart(r.confusionMatrix, { classNames, normalize: true }),
      join(dir, 'confusion-matrix-normalized'),
    ),
  ];
  if (metrics.probabilities)
    files.push(
      await writeChart(rocChart(metrics.yTrue, metrics.probabilities, { classNames }), join(dir, 'roc')),
    );
  return { text, files };
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
