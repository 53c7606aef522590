/**
 * Node-only entry of medimg-classify: file system, image decoding, chart rendering and CLI
 * helpers. Everything from the package root is re-exported here too.
 * @packageDocumentation
 */

// setupBackend with the threaded wasm build on every core (overrides the root's re-export).
export { setupBackend } from './backend/setup.node.js';
export { setWasmThreading, type WasmThreading } from './backend/threading.js';
export { type NodeWasmThreadingOptions, nodeWasmThreading } from './backend/wasm-threads.node.js';
// --- Data on disk: decoding, class-per-folder datasets, duplicates ---
export { type DecodedPixels, type DecodeOptions, decodeImage, decodePixels } from './data/decode.node.js';
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
} from './data/dicom.node.js';
export {
  type DicomImage,
  type DicomSummary,
  formatDicomSummary,
  isDicomFile,
  readDicom,
  summarizeDicom,
} from './data/dicom-file.node.js';
export {
  classCounts,
  type DatasetListing,
  type DuplicateReport,
  type FolderSample,
  type FolderSourceOptions,
  findDuplicates,
  folderSource,
  hashSamples,
  IMAGE_EXTENSIONS,
  type ImageFolder,
  type ImageFolderOptions,
  imageFolder,
  type ListingSkip,
  perceptualHash,
  SKIP_REASONS,
  type SkippedFile,
  type SkipReason,
  summarizeSkipped,
  type ValidateSamplesOptions,
  validateSamples,
} from './data/folder.node.js';
export { IMAGE_ISSUES, type ImageInspection, type ImageIssue, inspectImages } from './data/inspect.node.js';
// --- CSV manifests (path,label[,split]) as an alternative to class folders ---
export {
  type CsvRecord,
  type Dataset,
  type DatasetSample,
  type ManifestOptions,
  parseCsv,
  readDataset,
  readManifest,
  SPLIT_NAMES,
  type SplitName,
} from './data/manifest.node.js';
export * from './index.js';
export { loadClassifier, NodeClassifier, saveClassifier } from './inference/classifier.node.js';
export {
  defaultCacheDir,
  type FetchResponse,
  type FetchWeightsOptions,
  fetchWeights,
  md5,
} from './models/download.node.js';
// --- Keras HDF5 model and weight loading ---
export { loadKerasModel, loadKerasWeights, readKerasWeights } from './models/keras-h5.node.js';
export { loadPretrained } from './models/pretrained.node.js';
export { loadLayersWeights, readLayersWeights } from './models/tfjs-format.node.js';
export {
  type EvaluateAndSaveOptions,
  type EvaluateAndSaveResult,
  evaluateAndSave,
  metricsSummary,
  rulesFromChoices,
} from './report/evaluate-and-save.node.js';
export {
  historyPoints,
  type WriteEvaluationOptions,
  type WrittenEvaluation,
  writeEvaluation,
  writeGradCamPng,
  writeTrainingCurves,
} from './report/evaluation.node.js';
export {
  type ReportPageOptions,
  type ReportPageSplit,
  reportPageHtml,
  writeReportPage,
} from './report/page.node.js';
// --- Reports: charts rendered to SVG and PNG ---
export { type RenderedChart, renderChart, writeChart } from './report/render.node.js';
export { type WorstCasesGridOptions, writeWorstCasesGrid } from './report/worst-cases.node.js';
// --- Training on disk: checkpoints, classifier folders, reports ---
export { fileCheckpointStore } from './train/checkpoints.node.js';
export { writeFileAtomic } from './util/atomic-write.node.js';
