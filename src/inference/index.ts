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
export { type GradCamResult, gradCam, gradCamOverlay } from './gradcam.js';
export { type ModelArtifacts, modelArtifacts, modelFromArtifacts } from './serialize.js';
