import * as tf from '@tensorflow/tfjs-core';
import { check } from '../../util/errors.js';
import { type Image, mapBatch } from './_image.js';

export interface GrayscaleOptions {
  /** 1 (default) or 3 identical channels, e.g. to feed an ImageNet backbone. */
  outputChannels?: 1 | 3;
}

/** ITU-R 601-2 luma weights, as torchvision's `rgb_to_grayscale`. */
export const LUMA_WEIGHTS = [0.2989, 0.587, 0.114] as const;

/**
 * Converts RGB (or RGBA, alpha ignored) to grayscale with torchvision's weights; a
 * 1-channel image passes through. `outputChannels: 3` repeats the gray channel.
 */
export function grayscale<T extends Image>(image: T, options: GrayscaleOptions = {}): T {
  const op = 'grayscale';
  const outputChannels = options.outputChannels ?? 1;
  check(
    outputChannels === 1 || outputChannels === 3,
    op,
    `outputChannels must be 1 or 3, got ${outputChannels}`,
  );
  return mapBatch(op, image, (batch) => {
    const [n, h, w, c] = batch.shape;
    check(c !== 2, op, 'image has 2 channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)');
    let gray: tf.Tensor;
    if (c === 1) gray = batch.clone();
    else {
      // One matrix product over [pixels, channels]: much faster than splitting the channel axis.
      const weights = tf.tensor2d(c === 4 ? [...LUMA_WEIGHTS, 0] : [...LUMA_WEIGHTS], [c, 1]);
      gray = tf.reshape(tf.matMul(tf.reshape(batch, [n * h * w, c]), weights), [n, h, w, 1]);
    }
    return outputChannels === 3 ? tf.tile(gray, [1, 1, 1, 3]) : gray;
  });
}
