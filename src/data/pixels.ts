import * as tf from '@tensorflow/tfjs-core';
import { PIXELS_TO_FLOAT_KERNEL, type PixelsToFloatAttrs } from '../backend/kernel-names.js';

/**
 * A float32 `H x W x C` tensor (values 0-255) from decoded pixels. 8-bit pixels go to a backend
 * that registers {@link PIXELS_TO_FLOAT_KERNEL} (wasm) as bytes, widened there; elsewhere, and
 * for float pixels, as a float32 copy. Every cached image of a training set passes through here
 * once per epoch.
 */
export function pixelsTensor(data: Uint8Array | Float32Array, shape: [number, number, number]): tf.Tensor3D {
  if (data instanceof Uint8Array && tf.getKernel(PIXELS_TO_FLOAT_KERNEL, tf.getBackend())) {
    const attrs: PixelsToFloatAttrs = { pixels: data, shape };
    return tf
      .engine()
      .runKernel(PIXELS_TO_FLOAT_KERNEL, {}, attrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
  }
  return tf.tensor3d(Float32Array.from(data), shape);
}
