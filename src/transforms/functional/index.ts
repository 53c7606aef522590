export { type Image, imageSize } from './_image.js';
export { adjustBrightness, adjustContrast } from './color.js';
export { type CropToForegroundOptions, cropToForeground, foregroundBox } from './crop-to-foreground.js';
export { type EraseOptions, erase } from './erase.js';
export { hflip, vflip } from './flip.js';
export { type GaussianBlurOptions, gaussianBlur, gaussianKernel1d } from './gaussian-blur.js';
export { type GrayscaleOptions, grayscale, LUMA_WEIGHTS } from './grayscale.js';
export { type LetterboxGeometry, type LetterboxOptions, letterbox, letterboxGeometry } from './letterbox.js';
export { type NormalizeOptions, normalize } from './normalize.js';
export { type RescaleOptions, rescale } from './rescale.js';
export { type Interpolation, type ResizeOptions, resize } from './resize.js';
export { type RotateOptions, rotate } from './rotate.js';
export {
  type ImageWindow,
  minMaxWindow,
  type VoiFunction,
  type WindowOptions,
  windowFunction,
  windowImage,
} from './window.js';
