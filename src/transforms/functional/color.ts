import * as tf from '@tensorflow/tfjs-core';
import { checkNumber } from '../../util/errors.js';
import { type Image, mapBatch } from './_image.js';
import { grayscale } from './grayscale.js';

/** Upper bound of pixel values in this library's convention. */
const MAX_VALUE = 255;

/**
 * Multiplies intensities by `factor` and clips to [0, 255], as torchvision's
 * `adjust_brightness` (0 gives black, 1 the original).
 */
export function adjustBrightness<T extends Image>(image: T, options: { factor: number }): T {
  const op = 'adjustBrightness';
  const factor = checkNumber(options?.factor, op, 'factor', { min: 0 });
  return mapBatch(op, image, (batch) => tf.clipByValue(tf.mul(batch, factor), 0, MAX_VALUE));
}

/**
 * Blends each image with the mean of its grayscale version and clips to [0, 255], as
 * torchvision's `adjust_contrast` (0 gives a uniform gray image, 1 the original).
 */
export function adjustContrast<T extends Image>(image: T, options: { factor: number }): T {
  const op = 'adjustContrast';
  const factor = checkNumber(options?.factor, op, 'factor', { min: 0 });
  return mapBatch(op, image, (batch) => {
    const mean = tf.mean(batch.shape[3] === 1 ? batch : grayscale(batch), [1, 2, 3], true);
    return tf.clipByValue(tf.add(tf.mul(batch, factor), tf.mul(mean, 1 - factor)), 0, MAX_VALUE);
  });
}
