export {
  type CheckpointStore,
  decodeCheckpoint,
  type EpochLog,
  encodeCheckpoint,
  type LoadedCheckpoint,
  memoryCheckpointStore,
  type TrainingState,
} from './checkpoint.js';
export { type EvaluateOptions, evaluate } from './evaluate.js';
export { FrozenFeatureCache, type FrozenFeatureStats, FrozenSplit, frozenSplit } from './frozen-features.js';
export { type ProgressOptions, progressCallback } from './progress.js';
export { type RecalibrateOptions, recalibrateBatchNorm } from './recalibrate.js';
export {
  evaluateSource,
  type TrainCallbacks,
  TrainingError,
  type TrainOptions,
  type TrainResult,
  train,
  weightedCrossEntropy,
} from './train.js';
export { isRandomTransform, type TransferLearnOptions, transferLearn } from './transfer-learn.js';
