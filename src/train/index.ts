export {
  type CheckpointStore,
  decodeCheckpoint,
  type EpochLog,
  encodeCheckpoint,
  type LoadedCheckpoint,
  memoryCheckpointStore,
  type TrainingState,
} from './checkpoint.js';
export {
  Classifier,
  type ClassifierMeta,
  classifierMeta,
  type DecodeSpec,
  describePrediction,
  loadClassifierFromUrl,
  loadClassifierFromUrl as loadClassifier,
  type Prediction,
} from './classifier.js';
export { evaluate } from './evaluate.js';
export { type GradCamResult, gradCam, gradCamOverlay } from './gradcam.js';
export { type ProgressOptions, progressCallback } from './progress.js';
export { type RecalibrateOptions, recalibrateBatchNorm } from './recalibrate.js';
export { type ModelArtifacts, modelArtifacts, modelFromArtifacts } from './serialize.js';
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
