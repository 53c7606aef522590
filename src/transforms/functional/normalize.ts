import * as tf from '@tensorflow/tfjs-core';
import { check } from '../../util/errors.js';
import { channelPair, channelValues, type Image, imageSize, mapBatch } from './_image.js';

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
  const perC = (name: string, v: number | readonly number[]) => {
    const values = channelValues(op, name, v, channels);
    return Array.from({ length: channels }, (_, c) => values[values.length === 1 ? 0 : c] as number);
  };
  const [means, sds] = [perC('mean', options.mean), perC('std', options.std)];
  return mapBatch(
    op,
    image,
    (batch) =>
      channelPair(batch, 'sub-div', means, sds) ??
      tf.div(tf.sub(batch, tf.tensor1d(means)), tf.tensor1d(sds)),
  );
}
