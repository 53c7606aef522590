export {
  Classifier,
  type ClassifierContents,
  type ClassifierMeta,
  type ClassifierRules,
  checkClassifierRules,
  classifierChoices,
  classifierMeta,
  type DecodeSpec,
  describePrediction,
  loadClassifierFromUrl,
  loadClassifierFromUrl as loadClassifier,
  type Prediction,
  type PredictOptions,
  type SavedOperatingPoint,
  type SavedReferral,
} from './classifier.js';
export { type GradCamResult, gradCam, gradCamOverlay } from './gradcam.js';
export { type ModelArtifacts, modelArtifacts, modelFromArtifacts } from './serialize.js';
export {
  checkTta,
  checkTtaFlips,
  DEFAULT_TTA_FLIPS,
  describeTta,
  predictWithTta,
  TTA_VIEWS,
  type TtaFlip,
  type TtaViews,
  trainingFlips,
  ttaViews,
  withTta,
} from './tta.js';
