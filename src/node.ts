/**
 * Node-only entry of medimg-classify: file system, image decoding, chart rendering and CLI
 * helpers. Everything from the package root is re-exported here too.
 * @packageDocumentation
 */
export * from './index.js';
export { defaultCacheDir, type FetchWeightsOptions, fetchWeights, md5 } from './models/download.js';
// --- Keras HDF5 model and weight loading ---
export { loadKerasModel, loadKerasWeights, readKerasWeights } from './models/keras-h5.js';
export { loadLayersWeights, readLayersWeights } from './models/tfjs-format.js';
// --- Reports: charts rendered to SVG and PNG ---
export { type RenderedChart, renderChart, writeChart, writeFileAtomic } from './report/render.js';
