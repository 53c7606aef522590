import * as tf from '@tensorflow/tfjs-core';
import { CHANNEL_PAIR_KERNEL, type ChannelPairAttrs } from '../../backend/kernel-names.js';
import { check, MedimgError } from '../../util/errors.js';

/** An image (H x W x C) or a batch of images (N x H x W x C). */
export type Image = tf.Tensor3D | tf.Tensor4D;

/**
 * Validates an image argument and runs `fn` on it as a batch, restoring the input's rank and
 * dtype. Runs inside `tidy`, so intermediates never leak; the input is never disposed.
 */
export function mapBatch<T extends Image>(op: string, image: T, fn: (batch: tf.Tensor4D) => tf.Tensor): T {
  checkImage(op, image);
  return tf.tidy(() => {
    const batch = image.rank === 3 ? tf.expandDims(image as tf.Tensor3D, 0) : (image as tf.Tensor4D);
    const input = batch.dtype === 'float32' ? batch : tf.cast(batch, 'float32');
    let out = fn(input as tf.Tensor4D);
    if (out.dtype !== image.dtype) out = tf.cast(out, image.dtype);
    return (image.rank === 3 ? tf.squeeze(out, [0]) : out) as T;
  });
}

/** Throws a clear error unless `image` is a rank-3 or rank-4 tensor with 1..4 channels. */
export function checkImage(op: string, image: unknown): asserts image is Image {
  if (!(image instanceof tf.Tensor)) {
    throw new MedimgError(
      op,
      `image must be a tf.Tensor (H x W x C or N x H x W x C), got ${describe(image)}`,
    );
  }
  check(
    image.rank === 3 || image.rank === 4,
    op,
    () => `image must have rank 3 (H x W x C) or 4 (N x H x W x C), got rank ${image.rank} [${image.shape}]`,
  );
  check(!image.isDisposed, op, 'image tensor has been disposed');
  check(
    image.dtype === 'float32' || image.dtype === 'int32',
    op,
    `image dtype must be float32 or int32, got ${image.dtype}`,
  );
  const c = image.shape[image.rank - 1] as number;
  check(c >= 1 && c <= 4, op, `image must have 1 to 4 channels (last axis), got ${c} [${image.shape}]`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** Height, width and channels of an image or batch. */
export function imageSize(image: Image): { height: number; width: number; channels: number } {
  const o = image.rank === 4 ? 1 : 0;
  return {
    height: image.shape[o] as number,
    width: image.shape[o + 1] as number,
    channels: image.shape[o + 2] as number,
  };
}

/** Checks a scalar or per-channel value against the image's channels; returns its numbers. */
export function channelValues(
  op: string,
  name: string,
  value: number | readonly number[],
  channels: number,
): number[] {
  if (typeof value === 'number') {
    check(Number.isFinite(value), op, `${name} must be finite, got ${value}`);
    return [value];
  }
  check(Array.isArray(value), op, `${name} must be a number or an array of numbers`);
  check(
    value.length === channels || value.length === 1,
    op,
    () => `${name} has ${value.length} values but the image has ${channels} channel(s)`,
  );
  for (const v of value) check(Number.isFinite(v), op, `${name} must contain finite numbers, got ${v}`);
  return [...value];
}

/**
 * `x * a[c] + b[c]` ('mul-add') or `(x - a[c]) / b[c]` ('sub-div') per channel of a float32
 * batch, in one pass where the backend registers {@link CHANNEL_PAIR_KERNEL} (wasm) with the
 * two ops' float32 roundings; null elsewhere, where the caller runs the two ops.
 */
export function channelPair(
  batch: tf.Tensor4D,
  op: ChannelPairAttrs['op'],
  a: number[],
  b: number[],
): tf.Tensor4D | null {
  if (batch.dtype !== 'float32' || !tf.getKernel(CHANNEL_PAIR_KERNEL, tf.getBackend())) return null;
  const attrs: ChannelPairAttrs = { op, a, b };
  return tf
    .engine()
    .runKernel(CHANNEL_PAIR_KERNEL, { x: batch }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export { roundHalfEven } from '../../util/geometry.js';
