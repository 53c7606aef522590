/**
 * Node-only entry of medimg-classify: file system, image decoding, chart rendering and CLI
 * helpers. Everything from the package root is re-exported here too.
 * @packageDocumentation
 */
export * from './index.js';
// --- Keras HDF5 model and weight loading ---
export { loadKerasModel, loadKerasWeights, readKerasWeights } from './models/keras-h5.js';
// --- Reports: charts rendered to SVG and PNG ---
export { type RenderedChart, renderChart, writeChart, writeFileAtomic } from './report/render.js';
