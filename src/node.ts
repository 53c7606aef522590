/**
 * Node-only entry of medimg-classify: file system, image decoding, chart rendering and CLI
 * helpers. Everything from the package root is re-exported here too.
 * @packageDocumentation
 */

export { setWasmThreading, type WasmThreading } from './backend/threading.js';
// --- Data on disk: decoding, class-per-folder datasets, duplicates ---
export { type DecodedPixels, type DecodeOptions, decodeImage, decodePixels } from './data/decode.js';
// --- DICOM: parsing and pixel decoding (codecs load on first use), modality values, headers ---
export {
  DICOM_TRANSFER_SYNTAXES,
  type DicomEncoding,
  type DicomFile,
  type DicomFrame,
  type DicomMetadata,
  decodeDicomFrame,
  isDicom,
  parseDicom,
  type TransferSyntax,
  transferSyntax,
} from './data/dicom.js';
export {
  type DicomImage,
  type DicomSummary,
  formatDicomSummary,
  isDicomFile,
  readDicom,
  summarizeDicom,
} from './data/dicom-file.js';
export {
  classCounts,
  type DuplicateReport,
  type FolderSample,
  type FolderSourceOptions,
  findDuplicates,
  folderSource,
  hashSamples,
  IMAGE_EXTENSIONS,
  type ImageFolder,
  imageFolder,
  perceptualHash,
  type SkippedFile,
  validateSamples,
} from './data/folder.js';
export * from './index.js';
export { defaultCacheDir, type FetchWeightsOptions, fetchWeights, md5 } from './models/download.js';
// --- Keras HDF5 model and weight loading ---
export { loadKerasModel, loadKerasWeights, readKerasWeights } from './models/keras-h5.js';
export { loadLayersWeights, readLayersWeights } from './models/tfjs-format.js';
// setupBackend with the threaded wasm build on every core (overrides the root's re-export).
export { setupBackend } from './node/backend.js';
// --- Training on disk: checkpoints, classifier folders, reports ---
export { fileCheckpointStore } from './node/checkpoints.js';
export { loadClassifier, NodeClassifier, saveClassifier } from './node/classifier.js';
export { type EvaluateAndSaveOptions, evaluateAndSave, metricsSummary } from './node/finish.js';
export { historyPoints, writeEvaluation, writeGradCamPng, writeTrainingCurves } from './node/report.js';
export { type NodeWasmThreadingOptions, nodeWasmThreading } from './node/wasm-threads.js';
// --- Reports: charts rendered to SVG and PNG ---
export { type RenderedChart, renderChart, writeChart, writeFileAtomic } from './report/render.js';
