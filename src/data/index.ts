export { type BrowserDecodeOptions, type BrowserImageSource, imageFromBrowser } from './browser.js';
export { arraySource, type Batch, type BatchOptions, batches, type SampleSource } from './loader.js';
export {
  classWeights,
  findLeaks,
  type LabeledSample,
  stratifiedKFold,
  stratifiedSplit,
  withoutLeaks,
} from './split.js';
export {
  SYNTHETIC_CLASSES,
  SYNTHETIC_NORMAL_CLASS,
  type SyntheticDataset,
  type SyntheticKind,
  type SyntheticSample,
  syntheticDataset,
} from './synthetic.js';
