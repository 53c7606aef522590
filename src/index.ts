/**
 * medimg-classify: train and evaluate medical image classifiers on TensorFlow.js.
 *
 * This entry is browser-safe: it imports no Node built-ins. File-system helpers, image
 * decoding and the CLI live behind `medimg-classify/node`.
 * @packageDocumentation
 */

// --- Backends ---
export { setFusedAdam } from './backend/patches/adam-update.js';
export { setEarlyGradientRelease } from './backend/patches/early-gradient-release.js';
export { setBatchNormFolding } from './backend/patches/fold-batchnorm.js';
export { setFusedConvTraining } from './backend/patches/fused-conv-training.js';
export { setSkipUnusedInputGradients } from './backend/patches/unused-input-gradient.js';
export type { BackendInfo, BackendName, PackageImporter, SetupBackendOptions } from './backend/setup.js';
export { availableBackends, BACKEND_NAMES, setupBackend } from './backend/setup.js';
export { setDirectConv, setPointwiseForward } from './backend/wasm/direct-conv.js';
export { setBalancedPool } from './backend/wasm/heap-parallel.js';
export { relaxedSimdSupported, setRelaxedSimd, usesRelaxedSimd } from './backend/wasm/heap-simd.js';
export { setWinograd } from './backend/wasm/winograd.js';
// --- Data: splits, batching, synthetic phantoms (no file system) ---
export * from './data/index.js';
// --- Inference: saved classifiers, serialization, Grad-CAM ---
export * from './inference/index.js';
// --- Metrics: scikit-learn-exact numbers and clinical views ---
export * from './metrics/index.js';
// --- Models: builders, trainability, weights by name ---
export * from './models/index.js';
// --- Optimizers and learning-rate schedules ---
export * from './optimizers/index.js';
// --- Training ---
export * from './train/index.js';
// --- Transforms: functional core and seeded, serializable classes ---
export * from './transforms/index.js';
// --- Utilities ---
export { MedimgError } from './util/errors.js';
export type { RandomState } from './util/random.js';
export { deriveSeed, Random } from './util/random.js';
export { VERSION } from './version.js';
