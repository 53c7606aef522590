import type * as tfl from '@tensorflow/tfjs-layers';
import { guardCompile } from '../backend/patches/compile-guard.js';
import { installKerasBatchNorm } from '../backend/patches/keras-batchnorm.js';
import { syncContainers } from '../backend/patches/nested-trainable.js';
import { check } from '../util/errors.js';
import { flattenLayers } from './layers.js';
import { BACKBONES } from './registry.js';

export { flattenLayers, guardCompile, installKerasBatchNorm };

/** Freezes every layer (nested ones too). Compile again before training. */
export function freeze(model: tfl.LayersModel): tfl.LayersModel {
  for (const layer of flattenLayers(model)) layer.trainable = false;
  syncContainers(model);
  return model;
}

/**
 * Names of the blocks of any registered backbone (nested or not), in order, as its
 * `BackboneSpec.blockPattern` finds them: `convS_blockB` (ResNet50V2's residual blocks,
 * DenseNet121's dense layers), `block_N` / `expanded_conv` (MobileNetV2), `blockSx`
 * (EfficientNetB0's `block1a` ... `block7a`).
 */
export function blockNames(model: tfl.LayersModel): string[] {
  const patterns = Object.values(BACKBONES).map((b) => b.blockPattern);
  const names: string[] = [];
  for (const layer of flattenLayers(model)) {
    for (const pattern of patterns) {
      const m = pattern.exec(layer.name);
      if (!m) continue;
      if (names.at(-1) !== m[1]) names.push(m[1] as string);
      break;
    }
  }
  return names;
}

/**
 * What fine-tuning does with the BatchNormalization layers it unfreezes.
 *
 * - `{ momentum }` (default `{ momentum: 0.9 }`, PyTorch's 0.1 in its convention): they train, and
 *   their moving statistics follow the batches with this momentum. Keras builds MobileNetV2 with
 *   0.999 and ResNet50V2 with 0.99: after a few hundred fine-tuning steps such averages still
 *   describe the pretrained network, not the one being trained, so inference (which uses them)
 *   scores far below training. 0.9 tracks the weights within ~20 steps.
 * - `'train'`: they train with the momentum the model was built with (plain Keras behaviour).
 * - `'frozen'`: they stay in inference mode with their pretrained statistics, gamma and beta
 *   fixed (Keras's own fine-tuning advice); the convolutions around them still train.
 *
 * Whatever the policy, `recalibrateBatchNorm` can recompute the moving statistics afterwards.
 */
export type BatchNormPolicy = 'frozen' | 'train' | { momentum: number };

/** Which layers {@link unfreeze} trains, and the BatchNormalization policy for them. */
export type UnfreezeOptions = ({ from: string } | { lastBlocks: number } | { all: true }) & {
  batchNorm?: BatchNormPolicy;
};

/** Momentum that {@link unfreeze} gives unfrozen BatchNormalization layers by default. */
export const DEFAULT_FINE_TUNE_BN_MOMENTUM = 0.9;

/**
 * Sets which layers train: every layer from `from` (a layer name) onward, or from the start of
 * the last `lastBlocks` blocks (`convS_blockB` in ResNet50V2 and DenseNet121, `block_N` in
 * MobileNetV2, `block7a`, `block6d`, ... in EfficientNetB0), trains; earlier layers are frozen.
 * Frozen BatchNormalization layers run in inference mode; unfrozen ones follow `batchNorm` (see
 * {@link BatchNormPolicy}; default: train with momentum 0.9, which is what lets a fine-tuned
 * Keras backbone score in inference as it trained).
 * Compile again with a fresh optimizer before training (enforced).
 *
 * @example
 * unfreeze(model, { from: 'conv5_block1_preact_bn' }); // fine-tune conv5 and the head
 * unfreeze(model, { lastBlocks: 1, batchNorm: 'frozen' }); // keep BatchNorm in inference mode
 * model.compile({ optimizer: adaBelief({ learningRate: 1e-5 }), loss: 'categoricalCrossentropy' });
 */
export function unfreeze(model: tfl.LayersModel, options: UnfreezeOptions): tfl.LayersModel {
  const layers = flattenLayers(model);
  const policy = options.batchNorm ?? { momentum: DEFAULT_FINE_TUNE_BN_MOMENTUM };
  if (typeof policy === 'object') {
    const m = policy.momentum;
    check(
      typeof m === 'number' && m >= 0 && m < 1,
      'unfreeze',
      `batchNorm.momentum must be in [0, 1), got ${String(m)}`,
    );
  } else
    check(
      policy === 'frozen' || policy === 'train',
      'unfreeze',
      `batchNorm must be 'frozen', 'train' or { momentum }, got ${JSON.stringify(policy)}`,
    );
  let start: number;
  if ('all' in options) start = 0;
  else if ('from' in options) {
    start = layers.findIndex((l) => l.name === options.from);
    check(start >= 0, 'unfreeze', `no layer named '${options.from}'`);
  } else {
    const blocks = blockNames(model);
    const n = options.lastBlocks;
    check(
      Number.isInteger(n) && n >= 1 && n <= blocks.length,
      'unfreeze',
      `lastBlocks must be 1..${blocks.length}, got ${n}`,
    );
    const first = blocks[blocks.length - n] as string;
    start = layers.findIndex((l) => l.name.startsWith(`${first}_`));
  }
  layers.forEach((layer, i) => {
    const isBn = layer.getClassName() === 'BatchNormalization';
    layer.trainable = i >= start && !(isBn && policy === 'frozen');
    if (isBn && i >= start && typeof policy === 'object')
      (layer as unknown as { momentum: number }).momentum = policy.momentum;
  });
  syncContainers(model);
  return model;
}
