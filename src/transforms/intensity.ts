import * as tf from '@tensorflow/tfjs-core';
import { check } from '../util/errors.js';
import {
  checkProbability,
  checkRange,
  DeterministicTransform,
  type ImageSize,
  RandomTransform,
} from './base.js';
import { type Image, roundHalfEven } from './functional/_image.js';
import { adjustBrightness, adjustContrast } from './functional/color.js';
import { erase } from './functional/erase.js';
import { gaussianBlur } from './functional/gaussian-blur.js';
import { type GrayscaleOptions, grayscale } from './functional/grayscale.js';
import { type NormalizeOptions, normalize } from './functional/normalize.js';
import { type RescaleOptions, rescale } from './functional/rescale.js';
import { checkWindow, type WindowOptions, windowImage } from './functional/window.js';

/** RGB to grayscale. See {@link grayscale}. */
export class Grayscale extends DeterministicTransform {
  readonly name = 'Grayscale';
  override outputSize(size: ImageSize): ImageSize {
    return { ...size, channels: this.options.outputChannels ?? 1 };
  }
  constructor(private readonly options: GrayscaleOptions = {}) {
    super();
  }
  apply<T extends Image>(image: T): T {
    return grayscale(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

/** Per-channel standardisation. See {@link normalize}. */
export class Normalize extends DeterministicTransform {
  readonly name = 'Normalize';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  constructor(private readonly options: NormalizeOptions) {
    super();
    const all = [options?.mean, options?.std].flat();
    check(
      all.every((v) => typeof v === 'number' && Number.isFinite(v)),
      this.name,
      'mean and std must be finite numbers or arrays of them',
    );
    check(![options.std].flat().includes(0), this.name, 'std must not contain 0');
  }
  apply<T extends Image>(image: T): T {
    return normalize(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

/** `x * scale + offset`. See {@link rescale}. */
export class Rescale extends DeterministicTransform {
  readonly name = 'Rescale';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  constructor(private readonly options: RescaleOptions) {
    super();
  }
  apply<T extends Image>(image: T): T {
    return rescale(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

/**
 * An intensity window (level/width) to 0-255, DICOM's linear VOI function by default. Put it
 * first in the pipeline of images decoded with `window: 'none'` (e.g. Hounsfield units) so that
 * a saved classifier carries its windowing. See {@link windowImage}.
 *
 * @example
 * const pipeline = new Compose([new Window({ center: 40, width: 400 }), new Resize({ height: 224, width: 224 })]);
 */
export class Window extends DeterministicTransform {
  readonly name = 'Window';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  private readonly options: Required<WindowOptions>;
  constructor(options: WindowOptions) {
    super();
    this.options = checkWindow(this.name, options);
  }
  apply<T extends Image>(image: T): T {
    return windowImage(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

export interface GaussianBlurTransformOptions {
  /** Odd kernel size or `[kx, ky]`. */
  kernelSize: number | [number, number];
  /** A fixed sigma, or a `[min, max]` range sampled per image (torchvision's default `[0.1, 2]`). */
  sigma?: number | [number, number];
  seed?: number;
}

/** Gaussian blur with a fixed sigma or one drawn uniformly per image, as torchvision's `GaussianBlur`. */
export class GaussianBlur extends RandomTransform<number> {
  readonly name = 'GaussianBlur';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  private readonly kernelSize: number | [number, number];
  private readonly sigma: [number, number];
  constructor(options: GaussianBlurTransformOptions) {
    super(options?.seed);
    const ks = options?.kernelSize;
    for (const k of typeof ks === 'number' ? [ks] : Array.isArray(ks) ? ks : [Number.NaN]) {
      check(
        Number.isInteger(k) && k > 0 && k % 2 === 1,
        this.name,
        `kernelSize must be odd positive integers, got ${JSON.stringify(ks)}`,
      );
    }
    this.kernelSize = ks;
    const sigma = options.sigma ?? [0.1, 2.0];
    if (typeof sigma === 'number') {
      check(Number.isFinite(sigma) && sigma > 0, this.name, `sigma must be > 0, got ${sigma}`);
      this.sigma = [sigma, sigma];
    } else {
      this.sigma = checkRange(this.name, 'sigma', sigma);
      check(this.sigma[0] > 0, this.name, `sigma must be > 0, got ${JSON.stringify(sigma)}`);
    }
  }
  sampleParams(_size: ImageSize): number {
    const [lo, hi] = this.sigma;
    return lo === hi ? lo : this.rng.uniform(lo, hi);
  }
  applyParams<T extends Image>(image: T, sigma: number): T {
    return gaussianBlur(image, { kernelSize: this.kernelSize, sigma });
  }
  getConfig() {
    const [lo, hi] = this.sigma;
    return { kernelSize: this.kernelSize, sigma: lo === hi ? lo : [lo, hi], seed: this.seed };
  }
}

/** The rectangle RandomErasing picked, or null when it leaves the image unchanged. */
export type ErasingParams = {
  top: number;
  left: number;
  height: number;
  width: number;
  noiseSeed: number;
} | null;

export interface RandomErasingOptions {
  /** Probability of erasing. Default 0.5. */
  p?: number;
  /** Range of the erased area as a fraction of the image. Default `[0.02, 0.33]`. */
  scale?: [number, number];
  /** Range of the aspect ratio (sampled log-uniformly). Default `[0.3, 3.3]`. */
  ratio?: [number, number];
  /** Fill: a number, one per channel, or `'random'` for seeded standard-normal noise. Default 0. */
  value?: number | number[] | 'random';
  seed?: number;
}

/**
 * One attempt of torchvision's `RandomErasing.get_params` with its two uniform draws given:
 * returns `[h, w]` or null when the rectangle does not fit. Exposed for testing.
 */
export function erasingAttempt(
  imageHeight: number,
  imageWidth: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  uArea: number,
  uRatio: number,
): [number, number] | null {
  const area = imageHeight * imageWidth;
  const logLo = Math.fround(Math.log(ratio[0]));
  const logHi = Math.fround(Math.log(ratio[1]));
  const eraseArea = area * (scale[0] + (scale[1] - scale[0]) * uArea);
  const aspect = Math.exp(Math.fround(logLo + Math.fround(Math.fround(logHi - logLo) * Math.fround(uRatio))));
  const h = roundHalfEven(Math.sqrt(eraseArea * aspect));
  const w = roundHalfEven(Math.sqrt(eraseArea / aspect));
  return h < imageHeight && w < imageWidth ? [h, w] : null;
}

/**
 * Erases a random rectangle with torchvision's sampling: with probability `p`, up to 10
 * attempts of an area in `scale` x H x W and a log-uniform aspect ratio in `ratio`; the image
 * is unchanged if none fits.
 */
export class RandomErasing extends RandomTransform<ErasingParams> {
  readonly name = 'RandomErasing';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  private readonly p: number;
  private readonly scale: [number, number];
  private readonly ratio: [number, number];
  private readonly value: number | number[] | 'random';
  constructor(options: RandomErasingOptions = {}) {
    super(options.seed);
    this.p = checkProbability(this.name, options.p ?? 0.5);
    this.scale = checkRange(this.name, 'scale', options.scale ?? [0.02, 0.33], 0);
    check(this.scale[1] <= 1, this.name, `scale must lie in [0, 1], got ${JSON.stringify(this.scale)}`);
    this.ratio = checkRange(this.name, 'ratio', options.ratio ?? [0.3, 3.3], 0);
    check(this.ratio[0] > 0, this.name, `ratio must be > 0, got ${JSON.stringify(this.ratio)}`);
    const value = options.value ?? 0;
    check(
      value === 'random' ||
        (typeof value === 'number' && Number.isFinite(value)) ||
        (Array.isArray(value) && value.every(Number.isFinite)),
      this.name,
      `value must be a number, an array of numbers or 'random', got ${JSON.stringify(value)}`,
    );
    this.value = value;
  }
  sampleParams(size: ImageSize): ErasingParams {
    if (this.rng.next() >= this.p) return null;
    for (let attempt = 0; attempt < 10; attempt++) {
      const hw = erasingAttempt(
        size.height,
        size.width,
        this.scale,
        this.ratio,
        this.rng.next(),
        this.rng.next(),
      );
      if (!hw) continue;
      const [height, width] = hw;
      const top = this.rng.int(0, size.height - height + 1);
      const left = this.rng.int(0, size.width - width + 1);
      return { top, left, height, width, noiseSeed: this.rng.nextSeed() };
    }
    return null;
  }
  applyParams<T extends Image>(image: T, params: ErasingParams): T {
    if (!params) return image.clone() as T;
    const { noiseSeed, ...box } = params;
    if (this.value !== 'random') return erase(image, { ...box, value: this.value });
    return tf.tidy(() => {
      const channels = image.shape[image.rank - 1] as number;
      const noise = tf.randomNormal(
        [box.height, box.width, channels],
        0,
        1,
        'float32',
        noiseSeed,
      ) as tf.Tensor3D;
      return erase(image, { ...box, value: noise });
    });
  }
  getConfig() {
    return { p: this.p, scale: [...this.scale], ratio: [...this.ratio], value: this.value, seed: this.seed };
  }
}

export interface ColorJitterOptions {
  /** Brightness jitter `b`: factor uniform in `[max(0, 1-b), 1+b]`, or an explicit `[min, max]`. */
  brightness?: number | [number, number];
  /** Contrast jitter, same form. */
  contrast?: number | [number, number];
  seed?: number;
}

type JitterParams = {
  order: ('brightness' | 'contrast')[];
  brightness: number | null;
  contrast: number | null;
};

function jitterRange(
  op: string,
  name: string,
  v: number | [number, number] | undefined,
): [number, number] | null {
  if (v === undefined || v === 0) return null;
  if (typeof v === 'number') {
    check(Number.isFinite(v) && v > 0, op, `${name} must be >= 0, got ${v}`);
    return [Math.max(0, 1 - v), 1 + v];
  }
  return checkRange(op, name, v, 0);
}

/** Random brightness and contrast in a random order, as torchvision's `ColorJitter`. */
export class ColorJitter extends RandomTransform<JitterParams> {
  readonly name = 'ColorJitter';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  private readonly brightness: [number, number] | null;
  private readonly contrast: [number, number] | null;
  constructor(options: ColorJitterOptions = {}) {
    super(options.seed);
    this.brightness = jitterRange(this.name, 'brightness', options.brightness);
    this.contrast = jitterRange(this.name, 'contrast', options.contrast);
  }
  sampleParams(): JitterParams {
    const order = this.rng.shuffle<'brightness' | 'contrast'>(['brightness', 'contrast']);
    const b = this.brightness ? this.rng.uniform(...this.brightness) : null;
    const c = this.contrast ? this.rng.uniform(...this.contrast) : null;
    return { order, brightness: b, contrast: c };
  }
  applyParams<T extends Image>(image: T, params: JitterParams): T {
    return tf.tidy(() => {
      let out: T = image;
      for (const step of params.order) {
        const factor = params[step];
        if (factor === null) continue;
        out = step === 'brightness' ? adjustBrightness(out, { factor }) : adjustContrast(out, { factor });
      }
      return out === image ? (image.clone() as T) : out;
    });
  }
  getConfig() {
    return {
      ...(this.brightness ? { brightness: [...this.brightness] } : {}),
      ...(this.contrast ? { contrast: [...this.contrast] } : {}),
      seed: this.seed,
    };
  }
}
