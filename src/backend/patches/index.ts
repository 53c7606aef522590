/**
 * Every change this library makes to tfjs's behaviour, one file each. The README's "How this
 * library changes tfjs" section lists them with why and how to switch each off (a test keeps that
 * list complete).
 *
 * Global, installed by {@link installPatches} from `setupBackend`:
 * - `early-gradient-release.ts`: frees each node's gradient inputs and saved tensors during
 *   the backward pass (`setEarlyGradientRelease(false)` switches it off);
 * - `adam-update.ts`: `tf.train.adam` updates each variable with one kernel where the backend
 *   has one (wasm), with tfjs's numbers (`setFusedAdam(false)` switches it off);
 * - `unused-input-gradient.ts`: no input gradient for a first convolution whose input no
 *   variable depends on (`setSkipUnusedInputGradients(false)` switches it off);
 * - `fused-conv-training.ts`: a tfjs-layers `Conv2D` layer with a ReLU trains as one fused
 *   convolution with tfjs's fused gradient (`setFusedConvTraining(false)` switches it off; wasm);
 * - `batchnorm-gradient.ts`, `clip-gradient.ts`, `mean-gradient.ts`: FusedBatchNorm, ClipByValue,
 *   Relu and Mean gradients without the full-size `Tile`, the five-op select, the step-cast-multiply
 *   and the tensor of ones (wasm only).
 * Per model or per call, applied where they are needed:
 * - `fold-batchnorm.ts`: BatchNormalization in inference mode folded into the convolution before
 *   it, by `finalizeModel`;
 * - `keras-batchnorm.ts` (+ `compile-guard.ts`): Keras semantics of frozen BatchNormalization,
 *   by `finalizeModel` in every builder and by `loadKerasModel`;
 * - `relu-max.ts`: ReLU6 layers in one pass, by `finalizeModel`;
 * - `nested-trainable.ts`: the trainable flag of nested models, by `freeze`/`unfreeze`;
 * - `dropout-seeds.ts`: a seeded dropout mask per step, by `train`;
 * - `cpu-banner.ts`: no "install tfjs-node" banner, by the CLI.
 * The wasm kernels this library registers (`../wasm/`) add or replace kernels; they change
 * speed, not results (Winograd convolutions round differently, within ~1e-6: `setWinograd`), and
 * are parity-tested against the cpu backend.
 */
import { installFusedAdam } from './adam-update.js';
import { registerBatchNormGradient } from './batchnorm-gradient.js';
import { registerClipByValueGradient } from './clip-gradient.js';
import { installEarlyGradientRelease } from './early-gradient-release.js';
import { installFusedConvTraining } from './fused-conv-training.js';
import { registerMeanGradient } from './mean-gradient.js';
import { installSkipUnusedInputGradients } from './unused-input-gradient.js';

/** Installs the global patches (idempotent). `wasm`: the backend being set up is wasm. */
export function installPatches(options: { wasm: boolean }): void {
  if (options.wasm) {
    registerBatchNormGradient();
    registerClipByValueGradient();
    registerMeanGradient();
    installFusedAdam();
    installFusedConvTraining();
  }
  installSkipUnusedInputGradients();
  // Last, so that the gradients registered above are wrapped too.
  installEarlyGradientRelease();
}
