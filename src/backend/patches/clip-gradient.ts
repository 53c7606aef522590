import * as tf from '@tensorflow/tfjs-core';
import { CLIP_GRAD_KERNEL } from '../kernel-names.js';

/**
 * The gradients of ClipByValue (ReLU6 in MobileNetV2) and Relu through {@link CLIP_GRAD_KERNEL}
 * where the backend has it, else tfjs's composites. 35 ReLU6 layers spent 1.7 s per MobileNetV2
 * training step at batch 32 in the composite's compares, logical and, and select on wasm; Relu's,
 * dy * cast(step(x)), is three passes over the activation (SimpleCNN's first layer at batch 32:
 * 5 + 1-100 + 7.5 ms, the cast's fresh 64 MB output page-faulting when the heap moved).
 */
let installed = false;

/** The smallest positive float32: x >= it exactly where x > 0. */
export const MIN_POSITIVE = 2 ** -149;

/**
 * dy where lo <= x <= hi, else 0, through {@link CLIP_GRAD_KERNEL} where the backend has it (and
 * x is float32), else through `composite` (tfjs's own gradient).
 */
export function maskedGradient(
  x: tf.Tensor,
  dy: tf.Tensor,
  lo: number,
  hi: number,
  composite: () => tf.Tensor,
): tf.Tensor {
  if (!tf.getKernel(CLIP_GRAD_KERNEL, tf.getBackend()) || x.dtype !== 'float32') return composite();
  return tf
    .engine()
    .runKernel(CLIP_GRAD_KERNEL, { x, dy }, { clipValueMin: lo, clipValueMax: hi }) as tf.Tensor;
}

/** Registers the ClipByValue and Relu gradients above (idempotent). */
export function registerClipByValueGradient(): void {
  if (installed) return;
  installed = true;
  tf.registerGradient({
    kernelName: 'ClipByValue',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const grad = dy as tf.Tensor;
      const [x] = saved as [tf.Tensor];
      const { clipValueMin: lo, clipValueMax: hi } = attrs as unknown as {
        clipValueMin: number;
        clipValueMax: number;
      };
      return {
        x: () =>
          maskedGradient(x, grad, lo, hi, () =>
            tf.where(tf.logicalAnd(tf.greaterEqual(x, lo), tf.lessEqual(x, hi)), grad, tf.zerosLike(grad)),
          ),
      };
    },
  });
  // Relu: dy where x > 0, else 0; tfjs's dy * step(x) gives the same values except where x is
  // NaN (NaN there, 0 here) and the sign of the zeros.
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const grad = dy as tf.Tensor;
      const [x] = saved as [tf.Tensor];
      return {
        x: () =>
          maskedGradient(x, grad, MIN_POSITIVE, Number.POSITIVE_INFINITY, () =>
            tf.mul(grad, tf.cast(tf.step(x), 'float32')),
          ),
      };
    },
  });
}
