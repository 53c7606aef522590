import * as tf from '@tensorflow/tfjs-core';
import { check, checkNumber } from '../../util/errors.js';
import { channelValues, type Image, imageSize, mapBatch } from './_image.js';

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
    // The rectangle as a full-size mask built in JS and one select: erased values are replaced,
    // as torchvision's assignment does, and the rest are left untouched.
    const n = batch.shape[0];
    const C = channels;
    const inside = new Uint8Array(H * W * C);
    for (let r = top; r < top + h; r++) inside.fill(1, (r * W + left) * C, (r * W + left + w) * C);
    let fill: tf.Tensor;
    if (value instanceof tf.Tensor) {
      fill = tf.reshape(
        tf.pad(tf.cast(value, 'float32'), [
          [top, H - top - h],
          [left, W - left - w],
          [0, 0],
        ]),
        [1, H, W, C],
      );
    } else {
      const perPixel = channelValues(op, 'value', value, C);
      const data = new Float32Array(H * W * C);
      if (perPixel.length === 1) data.fill(perPixel[0] as number);
      else for (let i = 0; i < data.length; i++) data[i] = perPixel[i % C] as number;
      fill = tf.tensor4d(data, [1, H, W, C]);
    }
    const mask = tf.tensor4d(inside, [1, H, W, C], 'bool');
    const tile = (t: tf.Tensor) => (n === 1 ? t : tf.tile(t, [n, 1, 1, 1]));
    return tf.where(tile(mask), tile(fill), batch);
  });
}
