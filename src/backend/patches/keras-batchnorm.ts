/**
 * Patch: Keras 2's BatchNormalization semantics on tfjs-layers, per model. tfjs-layers runs a
 * BatchNormalization in training mode during `fit` even when the layer is frozen; Keras runs a
 * frozen one in inference mode. The layer's `call` is replaced on each instance (nothing global):
 * frozen layers use and keep their moving statistics; trainable ones train through the fused
 * closed-form `batchNormTraining`; layers being measured by `recalibrateBatchNorm` normalise with
 * batch statistics. Applied by every builder (`finalizeModel`) and by `loadKerasModel`.
 * Switch off: do not call it (a plain `tf.layers` model is left as tfjs-layers makes it).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { batchNormTraining, fusedBatchNormApplies, measuredBatchNorm } from '../../models/batchnorm.js';
import { flattenLayers, singleInput } from '../../models/layers.js';
import { guardCompile } from './compile-guard.js';
import { trainingActivation } from './fold-batchnorm.js';

type Kwargs = Record<string, unknown> | undefined;

const PATCHED = Symbol('medimg.kerasBatchNorm');

/**
 * Gives every BatchNormalization layer Keras 2's semantics: a frozen one (`trainable = false`)
 * runs in inference mode, using its moving statistics and leaving them unchanged during `fit`.
 * tfjs-layers would otherwise keep normalising with batch statistics and updating them.
 * A trainable one trains through {@link batchNormTraining}: same values and updates as
 * tfjs-layers, with a closed-form gradient that takes a few passes instead of ~15; and where a
 * ReLU or ReLU6 follows it in the model's graph (and the backend has the kernel), applies that too
 * (`trainingActivation` in fold-batchnorm.ts).
 */
/**
 * Whether `layer` is a BatchNormalization with the Keras semantics installed: frozen, it runs in
 * inference mode even while the model trains. tfjs-layers' own uses batch statistics whenever the
 * model trains, frozen or not.
 */
export function hasKerasBatchNorm(layer: tfl.layers.Layer): boolean {
  return (layer as unknown as { [PATCHED]?: true })[PATCHED] === true;
}

export function installKerasBatchNorm(model: tfl.LayersModel): void {
  for (const layer of flattenLayers(model)) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const target = layer as unknown as {
      call: (inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs) => tf.Tensor;
      [PATCHED]?: true;
    };
    if (target[PATCHED]) continue;
    const original = target.call.bind(layer);
    target.call = (inputs, kwargs) => {
      const training = kwargs?.training === true && layer.trainable;
      const x = singleInput(inputs);
      const measured = x ? measuredBatchNorm(layer, x) : null;
      if (measured) return measured;
      if (training && x && fusedBatchNormApplies(layer, x)) {
        // A ReLU or ReLU6 right after it applied in the same kernel, where the backend can.
        const act = trainingActivation(layer);
        if (!act) return batchNormTraining(layer, x);
        const y = batchNormTraining(layer, x, act.fn);
        act.handOn(y);
        return y;
      }
      return original(inputs, { ...(kwargs ?? {}), training });
    };
    target[PATCHED] = true;
  }
  guardCompile(model);
}
