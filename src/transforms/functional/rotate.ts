import * as tf from '@tensorflow/tfjs-core';
import { ROTATE_NEAREST_KERNEL, type RotateNearestAttrs } from '../../backend/kernel-names.js';
import { checkNumber } from '../../util/errors.js';
import { gatherRotated, rotationSourceIndex } from '../../util/geometry.js';
import { type Image, imageSize, mapBatch } from './_image.js';

export interface RotateOptions {
  /** Degrees, counter-clockwise, about the centre (torchvision's convention). */
  angle: number;
  /** Value outside the rotated image. Default 0. */
  fill?: number;
}

/** Backends whose tensors live in this process's memory, where reading one back is a copy. */
const HOST_BACKENDS = new Set(['cpu', 'wasm', 'tensorflow']);
let onHost = true;

/**
 * Turns the host paths off (`false`: the tensor ops every backend runs, as on WebGL) or on again:
 * the heap kernel where the backend registers {@link ROTATE_NEAREST_KERNEL} (wasm), else the
 * JavaScript gather for the backends that hold tensors in this process; the same values on all.
 */
export function setHostRotation(on: boolean): void {
  onHost = on;
}

/**
 * Rotates about the image centre by `angle` degrees counter-clockwise, nearest-neighbour,
 * same size (torchvision's `F.rotate` with `expand=False`). Works on every backend (a gather).
 */
export function rotate<T extends Image>(image: T, options: RotateOptions): T {
  const op = 'rotate';
  const angle = checkNumber(options?.angle, op, 'angle');
  const fill = checkNumber(options.fill ?? 0, op, 'fill');
  const { height, width } = imageSize(image);
  return mapBatch(op, image, (batch) => {
    if (angle % 360 === 0) return batch.clone();
    if (onHost && batch.dtype === 'float32' && tf.getKernel(ROTATE_NEAREST_KERNEL, tf.getBackend())) {
      // One loop on the heap for the batch (wasm): 0.34-0.47 -> 0.13-0.20 ms per 128x128 image.
      const attrs: RotateNearestAttrs = { angle, fill };
      return tf
        .engine()
        .runKernel(ROTATE_NEAREST_KERNEL, { x: batch }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    }
    const source = rotationSourceIndex(height, width, angle);
    const [n, , , c] = batch.shape;
    const pixels = height * width;
    if (onHost && HOST_BACKENDS.has(tf.getBackend())) {
      // The gather in JavaScript, with the same values as the tensor ops below (index upload,
      // fill, concat and gather kernels): one 128x128 image on wasm 0.9-1.2 -> 0.25-0.5 ms.
      const out = new Float32Array(batch.size);
      gatherRotated(batch.dataSync() as Float32Array, 0, out, 0, n, c, source, fill);
      return tf.tensor4d(out, [n, height, width, c]);
    }
    // One gather from the image with a fill pixel appended: outside pixels read that one.
    const index = source.map((from) => (from >= 0 ? from : pixels));
    const flat = tf.reshape(batch, [n, pixels, c]);
    const withFill = tf.concat([flat, tf.fill([n, 1, c], fill, batch.dtype)], 1);
    const gathered = tf.gather(withFill, tf.tensor1d(index, 'int32'), 1);
    return tf.reshape(gathered, [n, height, width, c]);
  });
}
