export {
  DeterministicTransform,
  type Drawn,
  type ImageSize,
  RandomTransform,
  Transform,
  type TransformJSON,
} from './base.js';
export { Compose, OneOf, RandomApply } from './compose.js';
export * from './functional/index.js';
export {
  CropToForeground,
  Letterbox,
  type RandomFlipOptions,
  RandomHorizontalFlip,
  RandomRotation,
  type RandomRotationOptions,
  RandomVerticalFlip,
  Resize,
} from './geometric.js';
export {
  ColorJitter,
  type ColorJitterOptions,
  type ErasingParams,
  erasingAttempt,
  GaussianBlur,
  type GaussianBlurTransformOptions,
  Grayscale,
  Normalize,
  RandomErasing,
  type RandomErasingOptions,
  Rescale,
  Window,
} from './intensity.js';
export { registeredTransforms, registerTransform, transformFromJSON } from './serialization.js';
