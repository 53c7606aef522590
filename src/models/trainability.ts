import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { check, MedimgError } from '../util/errors.js';
import { batchNormTraining, fusedBatchNormApplies, measuredBatchNorm } from './batchnorm.js';

type Layer = tfl.layers.Layer;
type Kwargs = Record<string, unknown> | undefined;

/** All layers of a model, nested models' layers included, in topological order. */
export function flattenLayers(model: tfl.LayersModel): Layer[] {
  const out: Layer[] = [];
  const visit = (layers: Layer[]) => {
    for (const layer of layers) {
      const inner = (layer as unknown as { layers?: Layer[] }).layers;
      if (Array.isArray(inner)) visit(inner);
      else out.push(layer);
    }
  };
  visit(model.layers);
  return out;
}

const PATCHED = Symbol('medimg.kerasBatchNorm');

/**
 * Gives every BatchNormalization layer Keras 2's semantics: a frozen one (`trainable = false`)
 * runs in inference mode, using its moving statistics and leaving them unchanged during `fit`.
 * tfjs-layers would otherwise keep normalising with batch statistics and updating them.
 * A trainable one trains through {@link batchNormTraining}: same values and updates as
 * tfjs-layers, with a closed-form gradient that takes a few passes instead of ~15.
 */
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
      // tfjs hands a single input either bare or as a one-element list.
      const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
      const measured = x ? measuredBatchNorm(layer, x) : null;
      if (measured) return measured;
      if (training && x && fusedBatchNormApplies(layer, x)) return batchNormTraining(layer, x);
      return original(inputs, { ...(kwargs ?? {}), training });
    };
    target[PATCHED] = true;
  }
  guardCompile(model);
}

interface CompileState {
  compiledWith: string | null;
  optimizer: unknown;
}
const states = new WeakMap<tfl.LayersModel, CompileState>();

function trainability(model: tfl.LayersModel): string {
  return flattenLayers(model)
    .map((l) => (l.trainable ? '1' : '0'))
    .join('');
}

/**
 * Makes it impossible to train after a change of which layers train without compiling again:
 * tfjs-layers collects the trainable weights at `compile`, so newly unfrozen layers would
 * silently stay frozen. `fit`, `fitDataset` and `trainOnBatch` then throw until `compile` is
 * called again with a fresh optimizer (the old one holds state for the old weight set).
 */
export function guardCompile(model: tfl.LayersModel): void {
  if (states.has(model)) return;
  const state: CompileState = { compiledWith: null, optimizer: undefined };
  states.set(model, state);
  const m = model as unknown as Record<string, (...args: unknown[]) => unknown>;
  const compile = m.compile!.bind(model);
  m.compile = (args: unknown) => {
    const optimizer = (args as { optimizer?: unknown })?.optimizer;
    const changed = state.compiledWith !== null && state.compiledWith !== trainability(model);
    if (changed && typeof optimizer === 'object' && optimizer !== null && optimizer === state.optimizer) {
      throw new MedimgError(
        'compile',
        'the trainable layers changed since the last compile: pass a fresh optimizer (the old one holds state for the previous weights)',
      );
    }
    const out = compile(args);
    state.compiledWith = trainability(model);
    state.optimizer = model.optimizer;
    return out;
  };
  for (const name of ['fit', 'fitDataset', 'trainOnBatch']) {
    const original = m[name]!.bind(model);
    m[name] = (...args: unknown[]) => {
      if (state.compiledWith !== null && state.compiledWith !== trainability(model)) {
        // These methods are async: reject rather than throw.
        return Promise.reject(
          new MedimgError(
            name,
            'which layers train changed (freeze/unfreeze) since the model was compiled: call model.compile again with a fresh optimizer',
          ),
        );
      }
      return original(...args);
    };
  }
}

/** Freezes every layer (nested ones too). Compile again before training. */
export function freeze(model: tfl.LayersModel): tfl.LayersModel {
  for (const layer of flattenLayers(model)) layer.trainable = false;
  syncContainers(model);
  return model;
}

/**
 * Block prefixes: `convS_blockB` (ResNet50V2's residual blocks, DenseNet121's dense layers),
 * `block_N` / `expanded_conv` (MobileNetV2), `blockSx` (EfficientNet's `block1a` ... `block7a`).
 */
const BLOCK = /^(conv\d+_block\d+|block_\d+|expanded_conv|block\d+[a-z])_/;

/**
 * Names of the blocks of a ResNet50V2, MobileNetV2, DenseNet121 or EfficientNetB0 (nested or
 * not), in order.
 */
export function blockNames(model: tfl.LayersModel): string[] {
  const names: string[] = [];
  for (const layer of flattenLayers(model)) {
    const m = BLOCK.exec(layer.name);
    if (m && names.at(-1) !== m[1]) names.push(m[1] as string);
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

/** A nested model counts as trainable when any of its layers is (tfjs reads the flag on the container). */
function syncContainers(model: tfl.LayersModel): void {
  const visit = (layers: Layer[]): boolean => {
    let any = false;
    for (const layer of layers) {
      const inner = (layer as unknown as { layers?: Layer[] }).layers;
      if (Array.isArray(inner)) {
        const anyInner = visit(inner);
        // Set the field, not the setter: the setter would overwrite every child's flag.
        (layer as unknown as { trainable_: boolean }).trainable_ = anyInner;
        any ||= anyInner;
      } else any ||= layer.trainable;
    }
    return any;
  };
  visit(model.layers);
}
