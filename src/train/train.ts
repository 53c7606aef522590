import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { dropoutLayers, reseedDropout } from '../backend/patches/dropout-seeds.js';
import { type Batch, batches, type SampleSource } from '../data/loader.js';
import { type EvaluationMetrics, MetricAccumulator } from '../metrics/accumulator.js';
import { classificationReport } from '../metrics/classification-report.js';
import { getLearningRate, setLearningRate } from '../optimizers/schedules.js';
import type { Transform } from '../transforms/base.js';
import { check, MedimgError } from '../util/errors.js';
import {
  type CheckpointStore,
  decodeCheckpoint,
  type EpochLog,
  encodeCheckpoint,
  type TrainingState,
} from './checkpoint.js';
import {
  FrozenFeatureCache,
  type FrozenFeatureStats,
  type FrozenSplit,
  frozenSplit,
} from './frozen-features.js';

/** Hooks called by {@link train}; `logs` hold `loss`, `accuracy`, `f1` and `val_*` after an epoch. */
export interface TrainCallbacks {
  onTrainBegin?: (info: {
    epochs: number;
    startEpoch: number;
    batchesPerEpoch: number;
  }) => Promise<void> | void;
  onEpochBegin?: (epoch: number, logs?: Record<string, number>) => Promise<void> | void;
  onBatchEnd?: (batch: number, logs: { loss: number; size: number; epoch: number }) => Promise<void> | void;
  onEpochEnd?: (epoch: number, logs?: Record<string, number>) => Promise<void> | void;
  onTrainEnd?: (result: TrainResult) => Promise<void> | void;
}

export interface TrainOptions {
  model: tfl.LayersModel;
  train: SampleSource;
  validation?: SampleSource;
  /** A fresh optimizer (its state is saved in checkpoints). */
  optimizer: tf.Optimizer;
  epochs: number;
  batchSize?: number;
  /** Training pipeline: augmentation and preprocessing, applied per image. */
  transform?: Transform;
  /** Deterministic pipeline for validation (the training one without augmentation). */
  validationTransform?: Transform;
  /** Per-class loss weights (see `classWeights`), Keras's `class_weight`. */
  classWeights?: number[];
  /** Seed of shuffling and dropout. Default 0. */
  seed?: number;
  callbacks?: TrainCallbacks[];
  /** Metric that picks the best epoch; default `val_loss` (or `loss` without validation). */
  monitor?: string;
  /** `'min'` for losses, `'max'` for accuracy and F1; default from the metric's name. */
  mode?: 'min' | 'max';
  /** Stop after this many epochs without improvement of `monitor`. */
  earlyStopping?: { patience: number; minDelta?: number };
  /** Writes `last` after every epoch and `best` on improvement, atomically. */
  checkpoints?: CheckpointStore;
  /** Continue from the `last` checkpoint in `checkpoints`. */
  resume?: boolean;
  /** Load the best epoch's weights into the model at the end. Default true when checkpoints are kept. */
  restoreBest?: boolean;
  /**
   * Compute the model's frozen first layers (a pretrained backbone's, before the first unfrozen
   * one) once per image and augmentation variant, and keep their output for the next epochs
   * (see `frozen-features.ts`): the same values, the frozen layers' time saved from the second
   * time an image comes back the same (validation images every epoch after the first; training
   * images with flips, half the time in the second epoch and more after); such an image is
   * neither loaded nor transformed. Keeps images where `transform` makes discrete choices (flips,
   * `RandomApply`/`OneOf` of deterministic steps); those of continuous ones (rotation, blur,
   * erasing) are not kept, and a batch of only such images runs the whole model. Assumes
   * callbacks do not change the frozen layers' weights (a change of which weights train is noticed
   * and starts a new cache). Default true, with at most 1 GiB held in Node (256 MiB in a browser);
   * `false` runs the whole model every step.
   */
  frozenFeatures?: boolean | { maxBytes?: number };
}

export interface TrainResult {
  history: EpochLog[];
  bestEpoch: number | null;
  best: number | null;
  stoppedEarly: boolean;
  epochsRun: number;
  /** How the frozen-feature cache did (`frozenFeatures`), per source; absent where it did not apply. */
  frozenFeatures?: { train: FrozenFeatureStats; validation?: FrozenFeatureStats };
}

/** At most 1 GiB in Node, 256 MiB in a browser tab (outside the wasm heap, in JavaScript memory). */
const DEFAULT_FROZEN_FEATURE_BYTES =
  typeof process !== 'undefined' && process.versions?.node !== undefined ? 2 ** 30 : 2 ** 28;

/** The frozen-feature caches of one `train` call, planned again if the trained weights change. */
class FrozenFeatures {
  private split: FrozenSplit | null = null;
  train: FrozenFeatureCache | null = null;
  validation: FrozenFeatureCache | null = null;
  private readonly maxBytes: number;
  constructor(private readonly options: TrainOptions) {
    const o = options.frozenFeatures;
    check(
      o === undefined || typeof o === 'boolean' || (typeof o === 'object' && o !== null),
      'train',
      `frozenFeatures must be true, false or { maxBytes }, got ${JSON.stringify(o)}`,
    );
    this.maxBytes = (typeof o === 'object' ? o.maxBytes : undefined) ?? DEFAULT_FROZEN_FEATURE_BYTES;
    check(
      typeof this.maxBytes === 'number' && this.maxBytes >= 0,
      'train',
      `frozenFeatures.maxBytes must be a number >= 0, got ${String(this.maxBytes)}`,
    );
  }
  /** Plans the split (again, if the trained weights changed since). */
  refresh(): void {
    if (this.options.frozenFeatures === false) return;
    if (this.split?.matches(this.options.model)) return;
    this.split = frozenSplit(this.options.model);
    this.train = this.split ? new FrozenFeatureCache(this.split, this.maxBytes) : null;
    this.validation =
      this.split && this.options.validation ? new FrozenFeatureCache(this.split, this.maxBytes) : null;
  }
  summary(): TrainResult['frozenFeatures'] {
    if (!this.train) return undefined;
    return {
      train: this.train.summary(),
      ...(this.validation ? { validation: this.validation.summary() } : {}),
    };
  }
}

/** Raised when training cannot go on (NaN loss, bad configuration); the last good checkpoint is kept. */
export class TrainingError extends MedimgError {
  constructor(message: string) {
    super('train', message);
    this.name = 'TrainingError';
  }
}

/**
 * Optimizer state is keyed by tfjs variable names, which differ between two builds of the same
 * model (tfjs makes them unique per process). Checkpoints store it under the layers' stable
 * weight names (`block1_conv/kernel/m`) and map it back onto the live variables on resume.
 */
function renameOptimizerWeights(
  weights: { name: string; tensor: tf.Tensor }[],
  map: Map<string, string>,
): { name: string; tensor: tf.Tensor }[] {
  return weights.map(({ name, tensor }) => {
    const cut = name.lastIndexOf('/');
    const base = cut > 0 ? name.slice(0, cut) : name;
    const renamed = map.get(base);
    return { name: renamed === undefined ? name : `${renamed}${name.slice(cut)}`, tensor };
  });
}

function stableNames(model: tfl.LayersModel, optimizer: tf.Optimizer): tf.Optimizer {
  const map = new Map(model.weights.map((w) => [(w.read() as tf.Variable).name, w.originalName]));
  return {
    getWeights: async () => renameOptimizerWeights(await optimizer.getWeights(), map),
  } as unknown as tf.Optimizer;
}

/** Keras's categorical cross-entropy with optional per-class weights: mean of w[y_i] * CE_i. */
export function weightedCrossEntropy(
  ys: tf.Tensor2D,
  probs: tf.Tensor2D,
  classWeights?: readonly number[],
): tf.Scalar {
  return tf.tidy(() => {
    const eps = 1e-7;
    const ce = tf.neg(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, eps, 1 - eps))), 1));
    if (!classWeights) return tf.mean(ce) as tf.Scalar;
    const w = tf.sum(tf.mul(ys, tf.tensor1d([...classWeights])), 1);
    return tf.mean(tf.mul(ce, w)) as tf.Scalar;
  });
}

/**
 * Trains a classifier over streamed batches: per-epoch loss, accuracy and macro F1 on both
 * splits, callbacks (progress, learning-rate schedules), early stopping, best and last
 * checkpoints written atomically with the optimizer and generator states, exact resumption,
 * and a guard that stops on a NaN or infinite loss without touching the last good checkpoint.
 * Dropout draws a new, seeded mask each step, so a run is reproducible.
 *
 * @example
 * const result = await train({ model, train: source, validation: valSource, optimizer: adaBelief(),
 *   epochs: 20, transform: augment, validationTransform: preprocess, checkpoints: fileCheckpointStore('runs/a') });
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { model } = options;
  const epochs = options.epochs;
  check(
    Number.isInteger(epochs) && epochs > 0,
    'train',
    `epochs must be a positive integer, got ${String(epochs)}`,
  );
  const batchSize = options.batchSize ?? 32;
  const callbacks = options.callbacks ?? [];
  const numClasses = options.train.numClasses;
  const outShape = model.outputs[0]?.shape;
  check(
    outShape?.[1] === numClasses,
    'train',
    `the model predicts ${outShape?.[1]} classes but the data has ${numClasses}`,
  );
  if (options.classWeights)
    check(
      options.classWeights.length === numClasses,
      'train',
      `classWeights has ${options.classWeights.length} values for ${numClasses} classes`,
    );
  const monitor = options.monitor ?? (options.validation ? 'val_loss' : 'loss');
  const mode = options.mode ?? (/loss/.test(monitor) ? 'min' : 'max');
  const better = (a: number, b: number) =>
    mode === 'min'
      ? a < b - (options.earlyStopping?.minDelta ?? 0)
      : a > b + (options.earlyStopping?.minDelta ?? 0);
  const store = options.checkpoints;

  const resumed = options.resume ? await resumeRun(options) : null;
  const history: EpochLog[] = resumed?.history ?? [];
  const startEpoch = resumed?.startEpoch ?? 0;
  let best: TrainingState['best'] = resumed?.best ?? null;
  let wait = resumed?.wait ?? 0;
  const dropouts = dropoutLayers(model);
  const batchesPerEpoch = Math.ceil(options.train.length / batchSize);
  const frozen = new FrozenFeatures(options);
  for (const cb of callbacks) await cb.onTrainBegin?.({ epochs, startEpoch, batchesPerEpoch });
  let stoppedEarly = false;
  let epoch = startEpoch;
  for (; epoch < epochs; epoch++) {
    for (const cb of callbacks) await cb.onEpochBegin?.(epoch);
    frozen.refresh();
    const logs = await trainEpoch(options, epoch, dropouts, frozen.train);
    if (options.validation) {
      const v = await evaluateSource(model, options.validation, {
        batchSize,
        ...(options.validationTransform ? { transform: options.validationTransform } : {}),
        ...(frozen.validation ? { frozenFeatures: frozen.validation } : {}),
      });
      logs.val_loss = v.loss;
      logs.val_accuracy = v.accuracy;
      logs.val_f1 = v.f1;
    }
    history.push(logs);
    const value = logs[monitor];
    if (value === undefined)
      throw new TrainingError(`monitored metric '${monitor}' is not among ${Object.keys(logs).join(', ')}`);
    const improved = best === null || better(value, best.value);
    if (improved) {
      best = { metric: monitor, value, epoch };
      wait = 0;
    } else wait++;
    for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs);
    if (store) await saveCheckpoints(options, { epoch, history, best, wait }, improved);
    if (options.earlyStopping && wait >= options.earlyStopping.patience) {
      stoppedEarly = true;
      epoch++;
      break;
    }
  }
  if (store && (options.restoreBest ?? true) && best) await restoreBest(model, store);
  const result: TrainResult = {
    history,
    bestEpoch: best?.epoch ?? null,
    best: best?.value ?? null,
    stoppedEarly,
    epochsRun: epoch - startEpoch,
  };
  const cached = frozen.summary();
  if (cached) result.frozenFeatures = cached;
  for (const cb of callbacks) await cb.onTrainEnd?.(result);
  return result;
}

/** Where a resumed run continues: the `last` checkpoint's weights, optimizer and generator states. */
async function resumeRun(options: TrainOptions): Promise<{
  history: EpochLog[];
  startEpoch: number;
  best: TrainingState['best'];
  wait: number;
} | null> {
  const { model, optimizer } = options;
  const store = options.checkpoints;
  check(store, 'train', 'resume needs checkpoints');
  const bytes = await store.read('last');
  if (!bytes) return null;
  const ckpt = await decodeCheckpoint(bytes, store.describe('last'));
  model.setWeights(ckpt.model.getWeights());
  ckpt.model.dispose();
  await optimizer.setWeights(
    renameOptimizerWeights(
      ckpt.optimizerWeights,
      new Map(model.weights.map((w) => [w.originalName, (w.read() as tf.Variable).name])),
    ),
  );
  setLearningRate(optimizer, ckpt.state.learningRate);
  options.transform?.setState(ckpt.state.transformState);
  return {
    history: ckpt.state.history,
    startEpoch: ckpt.state.epoch + 1,
    best: ckpt.state.best,
    wait: ckpt.state.earlyStopping?.wait ?? 0,
  };
}

/** One epoch over the training source: a step per batch, then loss, accuracy and macro F1. */
async function trainEpoch(
  options: TrainOptions,
  epoch: number,
  dropouts: ReturnType<typeof dropoutLayers>,
  frozen: FrozenFeatureCache | null,
): Promise<EpochLog> {
  const { model, optimizer } = options;
  const batchSize = options.batchSize ?? 32;
  const seed = options.seed ?? 0;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  if (!vars.length) throw new TrainingError('the model has no trainable weights (everything is frozen)');
  let lossSum = 0;
  let seen = 0;
  const yTrue: number[] = [];
  const yPred: number[] = [];
  let step = 0;
  for await (const batch of batches(options.train, {
    batchSize,
    shuffle: true,
    seed,
    epoch,
    ...(options.transform ? { transform: options.transform } : {}),
    // Images whose frozen features are kept are neither loaded nor transformed.
    ...(frozen ? { skip: (index: number, variant: string) => frozen.has(index, variant) } : {}),
  })) {
    const size = batch.labels.length;
    reseedDropout(dropouts, seed, epoch, step);
    const { loss, predictions } = trainStep(options, batch, vars, epoch, step, frozen);
    lossSum += loss * size;
    seen += size;
    yTrue.push(...batch.labels);
    yPred.push(...predictions);
    for (const cb of options.callbacks ?? []) await cb.onBatchEnd?.(step, { loss, size, epoch });
    step++;
  }
  const report = classificationReport(yTrue, yPred, { numClasses: options.train.numClasses });
  return {
    epoch,
    loss: lossSum / seen,
    accuracy: report.accuracy,
    f1: report.macro.f1,
    lr: getLearningRate(optimizer),
  };
}

/**
 * One optimizer step on a batch (disposed here). Out of memory becomes a TrainingError that says
 * what to change; a NaN or infinite loss (or output) stops training without touching the last
 * good checkpoint.
 */
function trainStep(
  options: TrainOptions,
  batch: Batch,
  vars: tf.Variable[],
  epoch: number,
  step: number,
  frozen: FrozenFeatureCache | null,
): { loss: number; predictions: number[] } {
  const { model, optimizer } = options;
  const size = batch.labels.length;
  let preds: tf.Tensor | undefined;
  let nonFinite: tf.Tensor | undefined;
  let cut: tf.Tensor | null = null;
  let loss: number;
  try {
    cut = frozen?.features(batch) ?? null;
    const cost = optimizer.minimize(
      () => {
        const p = (
          cut ? frozen?.split.suffix(cut, true) : model.apply(batch.xs, { training: true })
        ) as tf.Tensor2D;
        preds = tf.keep(tf.argMax(p, 1));
        // The loss clips probabilities, which would hide NaN outputs: count them separately.
        nonFinite = tf.keep(tf.sum(tf.cast(tf.logicalNot(tf.isFinite(p)), 'int32')));
        return weightedCrossEntropy(batch.ys, p, options.classWeights);
      },
      true,
      vars,
    ) as tf.Scalar;
    loss = cost.dataSync()[0] as number;
    cost.dispose();
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    if (
      /Aborted\(|out of memory|OOM|Cannot enlarge memory|RangeError: Array buffer allocation failed/i.test(
        message,
      )
    ) {
      throw new TrainingError(
        `the ${tf.getBackend()} backend ran out of memory at epoch ${epoch + 1}, batch ${step + 1} (batch of ${size}` +
          `${tf.getBackend() === 'wasm' ? '; WebAssembly has a 4 GB heap, and a wasm module that aborted cannot be used again in this process' : ''}). ` +
          'Lower batchSize or the image size, train fewer layers, or install @tensorflow/tfjs-node.',
      );
    }
    throw error;
  } finally {
    tf.dispose([batch.xs, batch.ys, ...(cut ? [cut] : [])]);
  }
  const predictions = Array.from((preds as tf.Tensor).dataSync());
  const bad = (nonFinite as tf.Tensor).dataSync()[0] as number;
  tf.dispose([preds as tf.Tensor, nonFinite as tf.Tensor]);
  if (bad > 0) loss = Number.NaN;
  if (!Number.isFinite(loss)) {
    const store = options.checkpoints;
    const where = store ? ` The last good checkpoint is kept at ${store.describe('last')}.` : '';
    throw new TrainingError(
      `the loss became ${loss} at epoch ${epoch + 1}, batch ${step + 1}: stopped (lower the learning rate?).${where}`,
    );
  }
  return { loss, predictions };
}

/** Writes `last` (and `best` when the monitored metric improved), atomically. */
async function saveCheckpoints(
  options: TrainOptions,
  progress: { epoch: number; history: EpochLog[]; best: TrainingState['best']; wait: number },
  improved: boolean,
): Promise<void> {
  const { model, optimizer } = options;
  const store = options.checkpoints as CheckpointStore;
  const state: TrainingState = {
    epoch: progress.epoch,
    history: progress.history,
    transformState: options.transform?.getState() ?? [],
    learningRate: getLearningRate(optimizer),
    best: progress.best,
    earlyStopping: options.earlyStopping ? { wait: progress.wait } : null,
    optimizerClass: optimizer.getClassName(),
    optimizerConfig: optimizer.getConfig() as Record<string, unknown>,
  };
  const bytes = await encodeCheckpoint(model, stableNames(model, optimizer), state);
  if (improved) await store.write('best', bytes);
  await store.write('last', bytes);
}

/** Loads the `best` checkpoint's weights into the model. */
async function restoreBest(model: tfl.LayersModel, store: CheckpointStore): Promise<void> {
  const bytes = await store.read('best');
  if (!bytes) return;
  const ckpt = await decodeCheckpoint(bytes, store.describe('best'));
  model.setWeights(ckpt.model.getWeights());
  ckpt.model.dispose();
  tf.dispose(ckpt.optimizerWeights.map((w) => w.tensor));
}

/**
 * Runs a model over a source (inference mode) and returns loss, accuracy, macro F1, and the
 * accumulator and its metrics (aggregated once; named and with missed findings when
 * `classNames` and `normalClass` are given).
 */
export async function evaluateSource(
  model: tfl.LayersModel,
  source: SampleSource,
  options: {
    batchSize?: number;
    transform?: Transform;
    classNames?: readonly string[];
    normalClass?: number;
    /** The frozen layers' outputs cached for this source (`train`'s `frozenFeatures`). */
    frozenFeatures?: FrozenFeatureCache;
  } = {},
): Promise<{
  loss: number;
  accuracy: number;
  f1: number;
  accumulator: MetricAccumulator;
  metrics: EvaluationMetrics;
}> {
  const acc = new MetricAccumulator({
    numClasses: source.numClasses,
    ...(options.classNames ? { classNames: options.classNames } : {}),
    ...(options.normalClass !== undefined ? { normalClass: options.normalClass } : {}),
  });
  const cache = options.frozenFeatures;
  for await (const batch of batches(source, {
    batchSize: options.batchSize ?? 32,
    ...(options.transform ? { transform: options.transform } : {}),
    ...(cache ? { skip: (index: number, variant: string) => cache.has(index, variant) } : {}),
  })) {
    const cut = cache?.features(batch) ?? null;
    const [probs, losses] = tf.tidy(() => {
      const p = (cut ? cache?.split.suffix(cut, false) : model.predict(batch.xs)) as tf.Tensor2D;
      const l = tf.neg(tf.sum(tf.mul(batch.ys, tf.log(tf.clipByValue(p, 1e-7, 1 - 1e-7))), 1));
      return [p, l];
    });
    acc.update(batch.labels, probs as tf.Tensor2D, (losses as tf.Tensor).dataSync());
    tf.dispose([batch.xs, batch.ys, probs, losses, ...(cut ? [cut] : [])]);
  }
  const m = acc.aggregate();
  return {
    loss: m.loss ?? Number.NaN,
    accuracy: m.report.accuracy,
    f1: m.report.macro.f1,
    accumulator: acc,
    metrics: m,
  };
}
