import * as tf from '@tensorflow/tfjs-core';
import { checkNumber } from '../../util/errors.js';
import { type Image, mapBatch } from './_image.js';

/** Interpolation used when resampling. `bilinear` matches PyTorch's `align_corners=False` without antialiasing. */
export type Interpolation = 'bilinear' | 'nearest';

export interface ResizeOptions {
  height: number;
  width: number;
  interpolation?: Interpolation;
}

export function checkInterpolation(op: string, interpolation: unknown): Interpolation {
  if (interpolation === 'bilinear' || interpolation === 'nearest') return interpolation;
  throw new Error(
    `Error in ${op}: interpolation must be 'bilinear' or 'nearest', got ${String(interpolation)}`,
  );
}

/** Resamples a batch to the given size (no checks; internal). */
export function resizeBatch(
  batch: tf.Tensor4D,
  height: number,
  width: number,
  interpolation: Interpolation,
): tf.Tensor4D {
  if (batch.shape[1] === height && batch.shape[2] === width) return batch.clone();
  return interpolation === 'nearest'
    ? tf.image.resizeNearestNeighbor(batch, [height, width], false, true)
    : tf.image.resizeBilinear(batch, [height, width], false, true);
}

/**
 * Resizes an image (or batch) to `height` x `width`, ignoring aspect ratio.
 * Use {@link letterbox} to keep the aspect ratio.
 *
 * @example
 * const small = resize(image, { height: 128, width: 128 });
 */
export function resize<T extends Image>(image: T, options: ResizeOptions): T {
  const op = 'resize';
  const height = checkNumber(options?.height, op, 'height', { integer: true, min: 1 });
  const width = checkNumber(options?.width, op, 'width', { integer: true, min: 1 });
  const interpolation = checkInterpolation(op, options.interpolation ?? 'bilinear');
  return mapBatch(op, image, (b) => resizeBatch(b, height, width, interpolation));
}
