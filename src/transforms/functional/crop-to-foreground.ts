import * as tf from '@tensorflow/tfjs-core';
import { checkNumber } from '../../util/errors.js';
import { type Image, mapBatch } from './_image.js';

export interface CropToForegroundOptions {
  /** A pixel is foreground when its largest channel value exceeds this (0-255 scale). Default 10. */
  threshold?: number;
  /** Pixels of background kept around the box on each side (clipped to the image). Default 0. */
  margin?: number;
}

/** Bounding box `[top, left, height, width]` of foreground pixels, or `null` when there are none. */
export function foregroundBox(
  image: Image,
  options: CropToForegroundOptions = {},
): { top: number; left: number; height: number; width: number } | null {
  const threshold = checkNumber(options.threshold ?? 10, 'cropToForeground', 'threshold');
  const margin = checkNumber(options.margin ?? 0, 'cropToForeground', 'margin', { integer: true, min: 0 });
  const [rows, cols] = tf.tidy(() => {
    const batch = image.rank === 3 ? tf.expandDims(image, 0) : image;
    const mask = tf.greater(tf.max(batch, [0, 3]), threshold); // H x W, union over the batch
    return [tf.any(mask, 1).dataSync(), tf.any(mask, 0).dataSync()];
  });
  const first = (a: ArrayLike<number>) => Array.prototype.findIndex.call(a, (v: number) => v !== 0);
  const last = (a: ArrayLike<number>) => {
    for (let i = a.length - 1; i >= 0; i--) if (a[i] !== 0) return i;
    return -1;
  };
  const r0 = first(rows);
  if (r0 < 0) return null;
  const r1 = last(rows);
  const c0 = first(cols);
  const c1 = last(cols);
  const top = Math.max(0, r0 - margin);
  const left = Math.max(0, c0 - margin);
  const bottom = Math.min(rows.length - 1, r1 + margin);
  const right = Math.min(cols.length - 1, c1 + margin);
  return { top, left, height: bottom - top + 1, width: right - left + 1 };
}

/**
 * Crops to the bounding box of pixels brighter than `threshold` (the skull in an MRI slice,
 * the scan sector in ultrasound), plus `margin`. An all-dark image is returned unchanged.
 * On a batch the box is the union over the batch, so the batch stays rectangular.
 */
export function cropToForeground<T extends Image>(image: T, options: CropToForegroundOptions = {}): T {
  const op = 'cropToForeground';
  return mapBatch(op, image, (batch) => {
    const box = foregroundBox(batch, options);
    if (!box) return batch.clone();
    return tf.slice(batch, [0, box.top, box.left, 0], [-1, box.height, box.width, -1]);
  });
}
