import * as tf from '@tensorflow/tfjs-core';
import { checkNumber } from '../../util/errors.js';
import { channelPair, type Image, mapBatch } from './_image.js';

export interface RescaleOptions {
  /** Multiplier, e.g. `1/255` or `1/127.5`. */
  scale: number;
  /** Added after scaling, e.g. `-1` for the `x / 127.5 - 1` of Keras's ResNet50V2 and MobileNetV2. */
  offset?: number;
}

/** `x * scale + offset`. */
export function rescale<T extends Image>(image: T, options: RescaleOptions): T {
  const op = 'rescale';
  const scale = checkNumber(options?.scale, op, 'scale');
  const offset = checkNumber(options.offset ?? 0, op, 'offset');
  return mapBatch(op, image, (batch) => {
    const c = batch.shape[3];
    return (
      channelPair(batch, 'mul-add', Array(c).fill(scale), Array(c).fill(offset)) ??
      tf.add(tf.mul(batch, scale), offset)
    );
  });
}
