/**
 * Patch: a `ReLU` layer with `maxValue` (MobileNetV2's ReLU6) in one pass. tfjs-layers computes
 * `clipByValue(relu(x), 0, maxValue)`: two passes over every activation forward and two gradient
 * kernels backward (35 layers, ~6% of a MobileNetV2 fine-tuning step on wasm).
 * `clipByValue(x, 0, maxValue)` gives the same values in one pass, and its gradient is one kernel
 * on wasm (`clip-gradient.ts`). The gradient differs only at exactly x = 0, where it passes dy
 * (tfjs's composite gives 0, TensorFlow's relu6 gives 0 too; a single point of measure zero).
 * Applied per model by `finalizeModel`; switch off: build the model without it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { flattenLayers } from '../../models/layers.js';

const PATCHED = Symbol('medimg.reluMax');

/** Replaces the `call` of every bounded ReLU layer of `model` (idempotent). */
export function installSinglePassReluMax(model: tfl.LayersModel): void {
  for (const layer of flattenLayers(model)) {
    if (layer.getClassName() !== 'ReLU') continue;
    const target = layer as unknown as {
      maxValue?: number | null;
      call: (inputs: tf.Tensor | tf.Tensor[], kwargs: unknown) => tf.Tensor;
      [PATCHED]?: true;
    };
    if (target[PATCHED] || target.maxValue == null) continue;
    const maxValue = target.maxValue;
    target.call = (inputs) => {
      const x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
      return tf.clipByValue(x, 0, maxValue);
    };
    target[PATCHED] = true;
  }
}
