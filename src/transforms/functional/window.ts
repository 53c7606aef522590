import * as tf from '@tensorflow/tfjs-core';
import { check, checkNumber } from '../../util/errors.js';
import { type Image, mapBatch } from './_image.js';

/** DICOM VOI LUT Function (0028,1056): how a window maps values to the output range. */
export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface WindowOptions {
  /** Window Center (level), in the image's values (e.g. Hounsfield units after Rescale). */
  center: number;
  /** Window Width; at least 1 for `LINEAR`, above 0 otherwise. */
  width: number;
  /** DICOM PS3.3 C.11.2.1.2 function. Default `'LINEAR'`, the DICOM default. */
  voiFunction?: VoiFunction;
}

/**
 * How a decoder maps high-bit-depth values (DICOM, 16-bit PNG/TIFF) to the 0-255 range:
 * `'auto'` (a DICOM file's own window, else its min-max; other images as 8-bit), `'minmax'`
 * (the image's own range), a {@link WindowOptions} window, or `'none'` (values kept as they are,
 * e.g. Hounsfield units, for a {@link windowImage} step in the pipeline).
 */
export type ImageWindow = 'auto' | 'minmax' | 'none' | WindowOptions;

const VOI_FUNCTIONS: readonly VoiFunction[] = ['LINEAR', 'LINEAR_EXACT', 'SIGMOID'];

/** Checks an {@link ImageWindow} value. */
export function checkImageWindow(op: string, window: unknown): ImageWindow {
  if (window === 'auto' || window === 'minmax' || window === 'none') return window;
  check(
    typeof window === 'object' && window !== null,
    op,
    () => `window must be 'auto', 'minmax', 'none' or { center, width }, got ${JSON.stringify(window)}`,
  );
  return checkWindow(op, window);
}

/** Validates window options and returns them with the function filled in. */
export function checkWindow(op: string, options: unknown): Required<WindowOptions> {
  check(
    typeof options === 'object' && options !== null,
    op,
    'window must be { center, width, voiFunction? }',
  );
  const o = options as WindowOptions;
  const center = checkNumber(o.center, op, 'window center');
  const voiFunction = o.voiFunction ?? 'LINEAR';
  check(
    VOI_FUNCTIONS.includes(voiFunction),
    op,
    () => `voiFunction must be one of ${VOI_FUNCTIONS.join(', ')}, got ${String(voiFunction)}`,
  );
  const width =
    voiFunction === 'LINEAR'
      ? checkNumber(o.width, op, 'window width', { min: 1 })
      : checkNumber(o.width, op, 'window width', { min: 0, minExclusive: true });
  return { center, width, voiFunction };
}

/**
 * The scalar window of DICOM PS3.3 C.11.2.1.2 (the formula of pydicom's `apply_windowing`),
 * mapping a value to [0, 1]. `LINEAR` uses `center - 0.5` and `width - 1`; a width of 1 is a step.
 *
 * @example
 * windowFunction({ center: 40, width: 401 })(40); // 0.50125
 */
export function windowFunction(options: WindowOptions): (x: number) => number {
  const { center, width, voiFunction } = checkWindow('windowFunction', options);
  if (voiFunction === 'SIGMOID') return (x) => 1 / (1 + Math.exp((-4 * (x - center)) / width));
  const c = voiFunction === 'LINEAR' ? center - 0.5 : center;
  const w = voiFunction === 'LINEAR' ? width - 1 : width;
  if (w === 0) return (x) => (x > c ? 1 : 0);
  return (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 1 : (x - c) / w + 0.5);
}

/**
 * The window of the values' own range: maps the minimum to 0 and the maximum to 1 (255).
 *
 * @example
 * const t = new Window(minMaxWindow(-1024, 3071)); // the full CT range to 0-255
 */
export function minMaxWindow(min: number, max: number): Required<WindowOptions> {
  return { center: (min + max + 1) / 2, width: max - min + 1, voiFunction: 'LINEAR' };
}

/**
 * Applies an intensity window (level/width) and scales to the library's 0-255 range: values
 * below the window become 0, above it 255, as a DICOM viewer displays them (PS3.3 C.11.2.1.2,
 * identical to pydicom's `apply_voi_lut` rescaled to 0-255). Use it on modality values such as
 * Hounsfield units, e.g. decoded with `window: 'none'`.
 *
 * @example
 * const brain = windowImage(ctInHU, { center: 40, width: 80 });
 */
export function windowImage<T extends Image>(image: T, options: WindowOptions): T {
  const op = 'windowImage';
  const { center, width, voiFunction } = checkWindow(op, options);
  return mapBatch(op, image, (batch) => {
    if (voiFunction === 'SIGMOID') {
      return tf.mul(tf.sigmoid(tf.mul(tf.sub(batch, center), 4 / width)), 255);
    }
    const c = voiFunction === 'LINEAR' ? center - 0.5 : center;
    const w = voiFunction === 'LINEAR' ? width - 1 : width;
    if (w === 0) return tf.mul(tf.cast(tf.greater(batch, c), 'float32'), 255);
    return tf.mul(tf.clipByValue(tf.add(tf.div(tf.sub(batch, c), w), 0.5), 0, 1), 255);
  });
}
