import * as tf from '@tensorflow/tfjs-core';
import { type Image, mapBatch } from './_image.js';

/** Mirrors left-right. */
export function hflip<T extends Image>(image: T): T {
  return mapBatch('hflip', image, (batch) => tf.reverse(batch, 2));
}

/** Mirrors top-bottom. */
export function vflip<T extends Image>(image: T): T {
  return mapBatch('vflip', image, (batch) => tf.reverse(batch, 1));
}
