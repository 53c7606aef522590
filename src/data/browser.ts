import * as tf from '@tensorflow/tfjs-core';
import { check, MedimgError } from '../util/errors.js';

/** Image sources a page has: a dropped `File`/`Blob`, an `<img>`, a canvas, an `ImageBitmap` or `ImageData`. */
export type BrowserImageSource =
  | Blob
  | HTMLImageElement
  | HTMLCanvasElement
  | ImageBitmap
  | ImageData
  | OffscreenCanvas;

export interface BrowserDecodeOptions {
  channels: 1 | 3;
  /** Resize while decoding, like the Node decoder: `'contain'` letterboxes on black, `'fill'` stretches, `'cover'` crops the centre. */
  resize?: { height: number; width: number; fit?: 'contain' | 'fill' | 'cover' };
}

/** Luma weights for RGB -> gray (ITU-R 601, as `grayscale`); gray images (R = G = B) are unchanged. */
const LUMA = [0.2989, 0.587, 0.114] as const;

function makeCanvas(width: number, height: number): OffscreenCanvas | HTMLCanvasElement {
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(width, height);
  if (typeof document !== 'undefined') {
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    return c;
  }
  throw new MedimgError(
    'imageFromBrowser',
    'needs a browser (OffscreenCanvas or document); in Node use decodeImage from medimg-classify/node',
  );
}

/**
 * Decodes a browser image into the same tensor `decodeImage` gives in Node: float32
 * `H x W x channels`, values 0-255, alpha dropped (composited on black), optionally resized
 * with the same `fit` rules, so a classifier's saved preprocessing applies unchanged.
 * (The browser's resampling filter differs slightly from libvips's Lanczos.)
 *
 * @example
 * const image = await imageFromBrowser(file, classifier.meta.decode);
 * const prediction = classifier.predictTensor(image);
 */
export async function imageFromBrowser(
  source: BrowserImageSource,
  options: BrowserDecodeOptions,
): Promise<tf.Tensor3D> {
  const op = 'imageFromBrowser';
  check(
    options?.channels === 1 || options?.channels === 3,
    op,
    `channels must be 1 or 3, got ${String(options?.channels)}`,
  );
  let drawable: CanvasImageSource | ImageData = source as CanvasImageSource;
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    try {
      drawable = await createImageBitmap(source);
    } catch (error) {
      const name = (source as File).name ?? 'the file';
      throw new MedimgError(
        op,
        `${name} is not an image the browser can decode (${(error as Error).message})`,
      );
    }
  }
  const srcW = (drawable as { width: number }).width;
  const srcH = (drawable as { height: number }).height;
  check(srcW > 0 && srcH > 0, op, 'the image has no pixels (not loaded yet?)');
  const outW = options.resize?.width ?? srcW;
  const outH = options.resize?.height ?? srcH;
  const canvas = makeCanvas(outW, outH);
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
  if (!ctx) throw new MedimgError(op, 'no 2D canvas context available');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, outW, outH);
  if (typeof ImageData !== 'undefined' && drawable instanceof ImageData) {
    const tmp = makeCanvas(srcW, srcH);
    (tmp.getContext('2d') as CanvasRenderingContext2D).putImageData(drawable, 0, 0);
    drawable = tmp as CanvasImageSource;
  }
  const fit = options.resize?.fit ?? 'contain';
  let [dx, dy, dw, dh, sx, sy, sw, sh] = [0, 0, outW, outH, 0, 0, srcW, srcH];
  if (options.resize && fit === 'contain') {
    const s = Math.min(outW / srcW, outH / srcH);
    dw = Math.round(srcW * s);
    dh = Math.round(srcH * s);
    dx = Math.floor((outW - dw) / 2);
    dy = Math.floor((outH - dh) / 2);
  } else if (options.resize && fit === 'cover') {
    const s = Math.max(outW / srcW, outH / srcH);
    sw = outW / s;
    sh = outH / s;
    sx = (srcW - sw) / 2;
    sy = (srcH - sh) / 2;
  }
  ctx.imageSmoothingEnabled = true;
  (ctx as CanvasRenderingContext2D).imageSmoothingQuality = 'high';
  ctx.drawImage(drawable as CanvasImageSource, sx, sy, sw, sh, dx, dy, dw, dh);
  const rgba = ctx.getImageData(0, 0, outW, outH).data;
  const n = outW * outH;
  const out = new Float32Array(n * options.channels);
  for (let i = 0; i < n; i++) {
    const a = (rgba[i * 4 + 3] as number) / 255;
    const r = (rgba[i * 4] as number) * a;
    const g = (rgba[i * 4 + 1] as number) * a;
    const b = (rgba[i * 4 + 2] as number) * a;
    if (options.channels === 3) {
      out[i * 3] = r;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = b;
    } else out[i] = r === g && g === b ? r : Math.round(LUMA[0] * r + LUMA[1] * g + LUMA[2] * b);
  }
  return tf.tensor3d(out, [outH, outW, options.channels]);
}
