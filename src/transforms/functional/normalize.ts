import * as tf from '@tensorflow/tfjs-core';
import { check } from '../../util/errors.js';
import { type Image, imageSize, mapBatch, perChannel } from './_image.js';

export interface NormalizeOptions {
  mean: number | readonly number[];
  std: number | readonly number[];
}

/**
 * `(x - mean) / std` per channel, as torchvision's `Normalize`. Note the scale: images are
 * 0-255 here, so either give 0-255 statistics or {@link rescale} by 1/255 first.
 */
export function normalize<T extends Image>(image: T, options: NormalizeOptions): T {
  const op = 'normalize';
  const { channels } = imageSize(image);
  const stds = typeof options?.std === 'number' ? [options.std] : (options?.std ?? []);
  for (const s of stds) check(s !== 0, op, 'std must not contain 0 (division by zero)');
  return mapBatch(op, image, (batch) =>
    tf.div(
      tf.sub(batch, perChannel(op, 'mean', options.mean, channels)),
      perChannel(op, 'std', options.std, channels),
    ),
  );
}
