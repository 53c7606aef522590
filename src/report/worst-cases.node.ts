import { basename } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import type { SampleSource } from '../data/loader.js';
import { gradCam, gradCamOverlay } from '../inference/gradcam.js';
import type { EvaluationCase } from '../metrics/accumulator.js';
import type { Transform } from '../transforms/base.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { check, MedimgError } from '../util/errors.js';

/** Options of {@link writeWorstCasesGrid}. */
export interface WorstCasesGridOptions {
  /** The evaluated model (Grad-CAM of each case's predicted class). */
  model: tfl.LayersModel;
  /** The data the cases' `index`es refer to. */
  source: SampleSource;
  /** The deterministic pipeline the model was evaluated with. */
  transform?: Transform;
  classNames: readonly string[];
  /** Side of each picture in pixels (default 160). */
  tile?: number;
  /** Cases per row (default 3; each case is the image and its Grad-CAM overlay). */
  columns?: number;
}

const escapeXml = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string,
  );

function shorten(s: string, max: number): string {
  return s.length <= max ? s : `…${s.slice(s.length - max + 1)}`;
}

async function tilePng(rgb: Uint8Array, h: number, w: number, side: number): Promise<Buffer> {
  const upscale = side >= 2 * Math.max(h, w);
  return sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } })
    .resize(side, side, { fit: 'contain', background: '#000', kernel: upscale ? 'nearest' : 'lanczos3' })
    .png()
    .toBuffer();
}

/**
 * Draws the given cases (e.g. `topLosses(cases, 12)`) as one PNG grid: for each case the image as
 * the model saw it and its Grad-CAM overlay for the predicted class, captioned with its rank, true
 * and predicted class, the probability of the prediction, its loss and file name. Grad-CAM needs a
 * convolutional layer; for a model without one (or whose top is not a chain) the overlay is left
 * out and `gradCam` is false. Returns the path written.
 *
 * @example
 * await writeWorstCasesGrid(topLosses(metrics.cases, 9), 'out/worst-cases.png', { model, source, transform, classNames });
 */
export async function writeWorstCasesGrid(
  cases: readonly EvaluationCase[],
  path: string,
  options: WorstCasesGridOptions,
): Promise<{ path: string; gradCam: boolean; note?: string }> {
  const op = 'writeWorstCasesGrid';
  check(cases.length > 0, op, 'no cases to draw');
  const side = options.tile ?? 160;
  const columns = Math.min(options.columns ?? 3, cases.length);
  const gap = 12;
  const caption = 44;
  const cellW = 2 * side + 4;
  const cellH = side + caption;
  const rows = Math.ceil(cases.length / columns);
  const width = columns * cellW + (columns + 1) * gap;
  const height = rows * cellH + (rows + 1) * gap;
  const layers: sharp.OverlayOptions[] = [];
  let camOk = true;
  let note: string | undefined;
  for (const [k, c] of cases.entries()) {
    const image = await options.source.load(c.index);
    let plain: Uint8Array;
    let overlay: Uint8Array | undefined;
    let empty = false;
    let h: number;
    let w: number;
    try {
      const x = options.transform ? options.transform.apply(image) : image;
      try {
        // The overlay goes on the decoded image when the pipeline keeps its size, else on the model's input.
        const shown = x.shape[0] === image.shape[0] && x.shape[1] === image.shape[1] ? image : x;
        [h, w] = [shown.shape[0], shown.shape[1]];
        if (camOk) {
          try {
            const cam = gradCam(options.model, x, { classIndex: c.predicted });
            overlay = gradCamOverlay(shown, cam.heatmap);
            empty = tf.tidy(() => tf.max(cam.heatmap).dataSync()[0] as number) <= 1e-6;
            cam.heatmap.dispose();
          } catch (error) {
            if (!(error instanceof MedimgError)) throw error;
            camOk = false;
            note = `no Grad-CAM: ${error.message}`;
          }
        }
        const blank = tf.zeros([h, w], 'float32') as tf.Tensor2D;
        plain = gradCamOverlay(shown, blank, { alpha: 0 });
        blank.dispose();
      } finally {
        if (x !== image) x.dispose();
      }
    } finally {
      image.dispose();
    }
    const col = k % columns;
    const row = Math.floor(k / columns);
    const left = gap + col * (cellW + gap);
    const top = gap + row * (cellH + gap);
    layers.push({ input: await tilePng(plain, h, w, side), left, top });
    if (overlay) layers.push({ input: await tilePng(overlay, h, w, side), left: left + side + 4, top });
    const p = c.probabilities[c.predicted] as number;
    const line1 = `${k + 1}. ${options.classNames[c.yTrue]} → ${options.classNames[c.predicted]} (p ${p.toFixed(2)})`;
    const line2 = `loss ${c.loss.toFixed(2)}${empty ? ' · Grad-CAM empty' : ''} · ${shorten(basename(c.path), empty ? 22 : 38)}`;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${cellW}" height="${caption}"><style>text{font-family:sans-serif;fill:#222}</style><text x="2" y="17" font-size="14" font-weight="bold">${escapeXml(line1)}</text><text x="2" y="36" font-size="12">${escapeXml(line2)}</text></svg>`;
    layers.push({ input: Buffer.from(svg), left, top: top + side });
  }
  const png = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toBuffer();
  await writeFileAtomic(path, png);
  return { path, gradCam: camOk, ...(note ? { note } : {}) };
}
