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
    // The rectangle as a small [1, H, W, 1] mask built in JS: one multiply-add over the image.
    const maskData = new Float32Array(H * W);
    for (let r = top; r < top + h; r++) maskData.fill(1, r * W + left, r * W + left + w);
    const mask = tf.tensor4d(maskData, [1, H, W, 1]);
    const keep = tf.sub(1, mask);
    let fill: tf.Tensor;
    if (value instanceof tf.Tensor) {
      fill = tf.pad(value, [
        [top, H - top - h],
        [left, W - left - w],
        [0, 0],
      ]);
    } else fill = tf.mul(mask, perChannel(op, 'value', value, channels));
    if (value instanceof tf.Tensor) fill = tf.mul(fill, mask);
    return tf.add(tf.mul(batch, keep), fill);
  });
}
