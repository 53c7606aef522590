import * as tf from '@tensorflow/tfjs-core';
import { check, checkNumber } from '../../util/errors.js';
import { type Image, imageSize, mapBatch, perChannel } from './_image.js';

export interface EraseOptions {
  top: number;
  left: number;
  height: number;
  width: number;
  /** A scalar, one value per channel, or a tensor of shape [height, width, C] (e.g. noise). */
  value: number | readonly number[] | tf.Tensor3D;
}

/**
 * Overwrites the rectangle `[top, top+height) x [left, left+width)` with `value`, as
 * torchvision's `F.erase`.
 */
export function erase<T extends Image>(image: T, options: EraseOptions): T {
  const op = 'erase';
  const { height: H, width: W, channels } = imageSize(image);
  const top = checkNumber(options?.top, op, 'top', { integer: true, min: 0 });
  const left = checkNumber(options.left, op, 'left', { integer: true, min: 0 });
  const h = checkNumber(options.height, op, 'height', { integer: true, min: 0 });
  const w = checkNumber(options.width, op, 'width', { integer: true, min: 0 });
  check(
    top + h <= H && left + w <= W,
    op,
    `rectangle [${top}:${top + h}, ${left}:${left + w}] exceeds the ${H}x${W} image`,
  );
  const value = options.value;
  if (value instanceof tf.Tensor) {
    check(
      value.rank === 3 && value.shape[0] === h && value.shape[1] === w && value.shape[2] === channels,
      op,
      `value tensor must have shape [${h}, ${w}, ${channels}], got [${value.shape}]`,
    );
  }
  return mapBatch(op, image, (batch) => {
    if (h === 0 || w === 0) return batch.clone();
    const rows = tf.logicalAnd(tf.greaterEqual(tf.range(0, H), top), tf.less(tf.range(0, H), top + h));
    const cols = tf.logicalAnd(tf.greaterEqual(tf.range(0, W), left), tf.less(tf.range(0, W), left + w));
    const mask = tf.reshape(tf.logicalAnd(tf.reshape(rows, [H, 1]), tf.reshape(cols, [1, W])), [1, H, W, 1]);
    let fill: tf.Tensor;
    if (value instanceof tf.Tensor) {
      fill = tf.pad(value, [
        [top, H - top - h],
        [left, W - left - w],
        [0, 0],
      ]);
    } else fill = perChannel(op, 'value', value, channels);
    return tf.where(
      tf.broadcastTo(mask, batch.shape),
      tf.broadcastTo(fill, batch.shape),
      batch,
    ) as tf.Tensor4D;
  });
}
