import { checkNumber } from '../util/errors.js';
import {
  checkProbability,
  checkRange,
  DeterministicTransform,
  type ImageSize,
  RandomTransform,
} from './base.js';
import type { Image } from './functional/_image.js';
import { type CropToForegroundOptions, cropToForeground } from './functional/crop-to-foreground.js';
import { hflip, vflip } from './functional/flip.js';
import { type LetterboxOptions, letterbox } from './functional/letterbox.js';
import { type ResizeOptions, resize } from './functional/resize.js';
import { rotate } from './functional/rotate.js';

/** Aspect-preserving resize with padding. See {@link letterbox}. */
export class Letterbox extends DeterministicTransform {
  readonly name = 'Letterbox';
  override outputSize(size: ImageSize): ImageSize {
    return { height: this.options.height, width: this.options.width, channels: size.channels };
  }
  constructor(private readonly options: LetterboxOptions) {
    super();
    letterboxCheck(options);
  }
  apply<T extends Image>(image: T): T {
    return letterbox(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

function letterboxCheck(o: LetterboxOptions): void {
  checkNumber(o?.height, 'Letterbox', 'height', { integer: true, min: 1 });
  checkNumber(o.width, 'Letterbox', 'width', { integer: true, min: 1 });
}

/** Plain resize to a fixed size. See {@link resize}. */
export class Resize extends DeterministicTransform {
  readonly name = 'Resize';
  override outputSize(size: ImageSize): ImageSize {
    return { height: this.options.height, width: this.options.width, channels: size.channels };
  }
  constructor(private readonly options: ResizeOptions) {
    super();
    checkNumber(options?.height, 'Resize', 'height', { integer: true, min: 1 });
    checkNumber(options.width, 'Resize', 'width', { integer: true, min: 1 });
  }
  apply<T extends Image>(image: T): T {
    return resize(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

/** Crops to the bright foreground. See {@link cropToForeground}. */
export class CropToForeground extends DeterministicTransform {
  readonly name = 'CropToForeground';
  constructor(private readonly options: CropToForegroundOptions = {}) {
    super();
  }
  apply<T extends Image>(image: T): T {
    return cropToForeground(image, this.options);
  }
  getConfig() {
    return { ...this.options };
  }
}

/** Options of the random flips. */
export interface RandomFlipOptions {
  /** Probability of flipping. Default 0.5. */
  p?: number;
  seed?: number;
}

abstract class RandomFlip extends RandomTransform<boolean> {
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  protected readonly p: number;
  constructor(options: RandomFlipOptions = {}) {
    super(options.seed);
    this.p = checkProbability(this.constructor.name, options.p ?? 0.5);
  }
  sampleParams(): boolean {
    return this.rng.next() < this.p;
  }
  protected override paramsKey(flip: boolean): string {
    return flip ? 'flipped' : '';
  }
  getConfig() {
    return { p: this.p, seed: this.seed };
  }
}

/** Mirrors left-right with probability `p`. */
export class RandomHorizontalFlip extends RandomFlip {
  readonly name = 'RandomHorizontalFlip';
  applyParams<T extends Image>(image: T, flip: boolean): T {
    return flip ? hflip(image) : (image.clone() as T);
  }
}

/** Mirrors top-bottom with probability `p`. */
export class RandomVerticalFlip extends RandomFlip {
  readonly name = 'RandomVerticalFlip';
  applyParams<T extends Image>(image: T, flip: boolean): T {
    return flip ? vflip(image) : (image.clone() as T);
  }
}

export interface RandomRotationOptions {
  /** Angle range in degrees: `d` means `[-d, d]`, as torchvision. */
  degrees: number | [number, number];
  fill?: number;
  seed?: number;
}

/** Rotates by an angle drawn uniformly from `degrees`. See {@link rotate}. */
export class RandomRotation extends RandomTransform<number> {
  readonly name = 'RandomRotation';
  override outputSize(size: ImageSize): ImageSize {
    return size;
  }
  private readonly degrees: [number, number];
  private readonly fill: number;
  constructor(options: RandomRotationOptions) {
    super(options?.seed);
    const d = options?.degrees;
    if (typeof d === 'number') {
      checkNumber(d, this.name, 'degrees', { min: 0 });
      this.degrees = [-d, d];
    } else this.degrees = checkRange(this.name, 'degrees', d);
    this.fill = checkNumber(options.fill ?? 0, this.name, 'fill');
  }
  sampleParams(_size: ImageSize): number {
    return this.rng.uniform(this.degrees[0], this.degrees[1]);
  }
  applyParams<T extends Image>(image: T, angle: number): T {
    return rotate(image, { angle, fill: this.fill });
  }
  getConfig() {
    return { degrees: [...this.degrees], fill: this.fill, seed: this.seed };
  }
}
