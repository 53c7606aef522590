import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { arraySource, batches, type SampleSource } from '../data/loader.js';
import { type BatchNormPolicy, unfreeze } from '../models/trainability.js';
import { transferModel } from '../models/transfer.js';
import { adaBelief } from '../optimizers/adabelief.js';
import { RandomTransform, type Transform } from '../transforms/base.js';
import { Compose, OneOf, RandomApply } from '../transforms/compose.js';
import { check } from '../util/errors.js';
import type { CheckpointStore } from './checkpoint.js';
import { recalibrateBatchNorm } from './recalibrate.js';
import { type TrainCallbacks, type TrainResult, train } from './train.js';

/** Whether a pipeline draws random parameters (then features cannot be computed once). */
export function isRandomTransform(t: Transform | undefined): boolean {
  if (!t) return false;
  if (t instanceof RandomTransform || t instanceof RandomApply || t instanceof OneOf) return true;
  if (t instanceof Compose) return t.transforms.some(isRandomTransform);
  return false;
}

export interface TransferLearnOptions {
  /** Backbone without top, pretrained weights loaded (e.g. `mobilenetV2({ alpha: 0.35 })` + `loadKerasWeights`). */
  backbone: tfl.LayersModel;
  numClasses: number;
  train: SampleSource;
  validation?: SampleSource;
  transform?: Transform;
  validationTransform?: Transform;
  batchSize?: number;
  seed?: number;
  classWeights?: number[];
  head?: { dropout?: number; hiddenUnits?: number };
  /** Phase 1: frozen backbone, new head; `epochs: 0` skips it (the head then trains in phase 2 only). */
  phase1?: { epochs: number; optimizer?: tf.Optimizer; learningRate?: number; callbacks?: TrainCallbacks[] };
  /** Phase 2: unfreeze the last block(s) and fine-tune with a fresh optimizer at a lower rate; `epochs: 0` skips it. */
  phase2?: {
    epochs: number;
    unfreeze?: { from: string } | { lastBlocks: number };
    /** What the unfrozen BatchNormalization layers do; default `{ momentum: 0.9 }` (see `BatchNormPolicy`). */
    batchNorm?: BatchNormPolicy;
    /**
     * Recompute the moving statistics of the BatchNormalization layers that trained, over the
     * training images with the training `transform` (as `torch.optim.swa_utils.update_bn` does
     * with the training loader), once training ends (`recalibrateBatchNorm`). Default true: it
     * costs one inference pass and makes inference use statistics of the final weights.
     */
    recalibrate?: boolean;
    optimizer?: tf.Optimizer;
    learningRate?: number;
    callbacks?: TrainCallbacks[];
  };
  /** Callbacks for both phases (progress); phase-specific ones (schedules) go in `phase1`/`phase2`. */
  callbacks?: TrainCallbacks[];
  /** Checkpoint stores for the two phases. */
  checkpoints?: { phase1?: CheckpointStore; phase2?: CheckpointStore };
  /** Continue each phase from its `last` checkpoint (a finished phase is not trained again). */
  resume?: boolean;
  /** Metric that picks each phase's best epoch (see `train`). */
  monitor?: string;
  /** Stop a phase after this many epochs without improvement of `monitor`. */
  earlyStopping?: { patience: number; minDelta?: number };
  log?: (line: string) => void;
}

/**
 * The two-phase transfer-learning recipe of the brain-MRI project: (1) frozen backbone, new
 * classification head; (2) unfreeze the last block, fresh optimizer, lower learning rate,
 * fine-tune. When phase 1's pipeline has no random augmentation, the backbone's features are
 * computed once and the head is trained on them (much faster, same result).
 */
export async function transferLearn(
  options: TransferLearnOptions,
): Promise<{ model: tfl.LayersModel; phase1: TrainResult; phase2: TrainResult | null }> {
  const seed = options.seed ?? 0;
  const log = options.log ?? (() => {});
  const model = transferModel({
    backbone: options.backbone,
    numClasses: options.numClasses,
    seed,
    ...(options.head ?? {}),
  });
  const p1 = options.phase1 ?? { epochs: 10 };
  const opt1 = p1.optimizer ?? adaBelief({ learningRate: p1.learningRate ?? 1e-3 });
  const common = {
    batchSize: options.batchSize ?? 32,
    seed,
    ...(options.classWeights ? { classWeights: options.classWeights } : {}),
    ...(options.monitor ? { monitor: options.monitor } : {}),
    ...(options.earlyStopping ? { earlyStopping: options.earlyStopping } : {}),
    ...(options.resume ? { resume: true } : {}),
  };
  const callbacks = (phase?: TrainCallbacks[]) => [...(options.callbacks ?? []), ...(phase ?? [])];
  /** Trains the whole model (backbone frozen or partly unfrozen) on images. */
  const trainFull = (
    optimizer: tf.Optimizer,
    epochs: number,
    phaseCallbacks: TrainCallbacks[],
    checkpoints?: CheckpointStore,
  ) =>
    train({
      ...common,
      callbacks: phaseCallbacks,
      model,
      train: options.train,
      ...(options.validation ? { validation: options.validation } : {}),
      ...(options.transform ? { transform: options.transform } : {}),
      ...(options.validationTransform ? { validationTransform: options.validationTransform } : {}),
      optimizer,
      epochs,
      ...(checkpoints ? { checkpoints } : {}),
    });
  let phase1: TrainResult = { history: [], bestEpoch: null, best: null, stoppedEarly: false, epochsRun: 0 };
  if (p1.epochs === 0) log('phase 1 skipped: the head trains with the unfrozen layers in phase 2');
  else if (!isRandomTransform(options.transform)) {
    log('phase 1: the training pipeline is deterministic, computing backbone features once');
    const feats = async (src: SampleSource, t?: Transform) => {
      const out: { pixels: Float32Array; label: number }[] = [];
      for await (const b of batches(src, { batchSize: common.batchSize, ...(t ? { transform: t } : {}) })) {
        const f = options.backbone.predict(b.xs) as tf.Tensor;
        const per = f.size / b.labels.length;
        const data = f.dataSync();
        b.labels.forEach((label, i) =>
          out.push({ pixels: Float32Array.from(data.subarray(i * per, (i + 1) * per)), label }),
        );
        tf.dispose([f, b.xs, b.ys]);
      }
      return out;
    };
    const featShape = options.backbone.outputs[0]!.shape.slice(1) as number[];
    const [h, w, c] = featShape.length === 3 ? featShape : [1, 1, featShape[0] as number];
    const asSource = (s: { pixels: Float32Array; label: number }[]) =>
      arraySource(s, {
        height: h as number,
        width: w as number,
        channels: c as number,
        numClasses: options.numClasses,
      });
    const trainFeats = asSource(await feats(options.train, options.transform));
    const valFeats = options.validation
      ? asSource(await feats(options.validation, options.validationTransform))
      : undefined;
    // The head's layers, shared with the full model, on a feature input.
    const headInput = tfl.input({ shape: [h as number, w as number, c as number] });
    const backboneIndex = model.layers.indexOf(options.backbone);
    let x: tfl.SymbolicTensor =
      featShape.length === 3
        ? headInput
        : (tfl.layers.reshape({ targetShape: featShape }).apply(headInput) as tfl.SymbolicTensor);
    for (const layer of model.layers.slice(backboneIndex + 1)) x = layer.apply(x) as tfl.SymbolicTensor;
    const head = tfl.model({ inputs: headInput, outputs: x });
    phase1 = await train({
      ...common,
      callbacks: callbacks(p1.callbacks),
      model: head,
      train: trainFeats,
      ...(valFeats ? { validation: valFeats } : {}),
      optimizer: opt1,
      epochs: p1.epochs,
      ...(options.checkpoints?.phase1 ? { checkpoints: options.checkpoints.phase1 } : {}),
    });
  } else phase1 = await trainFull(opt1, p1.epochs, callbacks(p1.callbacks), options.checkpoints?.phase1);
  const p2 = options.phase2;
  if (!p2 || p2.epochs === 0) {
    check(p1.epochs > 0, 'transferLearn', 'phase1.epochs and phase2.epochs are both 0: nothing would train');
    return { model, phase1, phase2: null };
  }
  unfreeze(model, {
    ...(p2.unfreeze ?? { lastBlocks: 1 }),
    ...(p2.batchNorm !== undefined ? { batchNorm: p2.batchNorm } : {}),
  });
  log(`phase 2: fine-tuning ${model.trainableWeights.length} weight tensors with a fresh optimizer`);
  const opt2 = p2.optimizer ?? adaBelief({ learningRate: p2.learningRate ?? 1e-4 });
  const phase2 = await trainFull(opt2, p2.epochs, callbacks(p2.callbacks), options.checkpoints?.phase2);
  if (p2.recalibrate ?? true) {
    const r = await recalibrateBatchNorm(model, options.train, {
      batchSize: common.batchSize,
      ...(options.transform ? { transform: options.transform } : {}),
    });
    if (r.layers.length)
      log(
        `recalibrated the moving statistics of ${r.layers.length} BatchNormalization layers on ${r.images} images`,
      );
  }
  return { model, phase1, phase2 };
}
