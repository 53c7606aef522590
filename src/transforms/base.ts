import * as tf from '@tensorflow/tfjs-core';
import { check, MedimgError } from '../util/errors.js';
import { deriveSeed, Random, type RandomState } from '../util/random.js';
import { checkImage, type Image, imageSize } from './functional/_image.js';

/** JSON form of a transform: its class name and constructor options. */
export interface TransformJSON {
  name: string;
  config: Record<string, unknown>;
}

/** Size of one image, handed to {@link RandomTransform.sampleParams}. */
export interface ImageSize {
  height: number;
  width: number;
  channels: number;
}

/**
 * One image's random choices, made by {@link Transform.draw} before its pixels are at hand, and
 * how to apply exactly those choices.
 */
export interface Drawn {
  /** The name of the transform that drew (errors name the step). */
  readonly name: string;
  /** The key of these choices, as {@link Transform.variant} gives it after `apply`. */
  readonly variant: string | null;
  /** The size of the output. */
  readonly size: ImageSize;
  /** Applies these choices to an H x W x C image of the size drawn for; never disposes it. */
  apply<T extends Image>(image: T): T;
}

/**
 * A preprocessing or augmentation step. Images are float32 tensors H x W x C or N x H x W x C,
 * values 0-255 unless a step rescales them. `apply` never disposes its input and leaks nothing.
 */
export abstract class Transform {
  /** Class name used in JSON (`transformFromJSON`). */
  abstract readonly name: string;
  /** Applies the transform; a batch is transformed image by image. */
  abstract apply<T extends Image>(image: T): T;
  /** Constructor options that rebuild this transform. */
  abstract getConfig(): Record<string, unknown>;

  /** Serializes to `{ name, config }`. */
  toJSON(): TransformJSON {
    return { name: this.name, config: this.getConfig() };
  }

  /** Gives this transform (and its children) a new seed; deterministic transforms ignore it. */
  reseed(_seed: number): void {}

  /** Generator states of this transform and its children, for checkpoints. */
  getState(): RandomState[] {
    return [];
  }

  /** Restores what {@link getState} returned. */
  setState(_states: RandomState[]): void {}

  /**
   * What the last `apply` to one image (H x W x C) chose, as a key: two applications with the
   * same key turn the same input into the same output. `''` for a deterministic transform; `null`
   * where the choice has no such key (a continuous parameter such as an angle, a batch, or a
   * transform that does not say: the default). `train` caches the features of a frozen backbone
   * per image and key (`frozenFeatures`), so a pipeline of flips and deterministic steps computes
   * the frozen layers once per image and flip instead of once per epoch.
   */
  variant(): string | null {
    return null;
  }

  /**
   * The output's size for an H x W x C input of `size`, or null where it depends on the pixels
   * (`CropToForeground`) or the transform does not say (the default). Only transforms that say
   * can {@link draw}.
   */
  outputSize(_size: ImageSize): ImageSize | null {
    return null;
  }

  /**
   * Makes the random choices of one `apply` to an H x W x C image of `size` now, without its
   * pixels, and returns them with their {@link variant} key and a function that applies exactly
   * them. Drawing then applying gives what `apply` gives and leaves the generators where `apply`
   * leaves them. Null exactly where {@link outputSize} is null; then nothing was drawn.
   * `batches` draws ahead when its consumer can skip images: `train` neither loads nor transforms
   * an image whose frozen features it keeps for the variant drawn (`frozenFeatures`).
   *
   * This default, for transforms that give {@link outputSize} but do not draw ahead, defers the
   * whole `apply` (random choices included) to the returned function and gives no key, so such
   * an image is never skipped and its choices are still made in order.
   */
  draw(size: ImageSize): Drawn | null {
    const out = this.outputSize(size);
    return out && { name: this.name, variant: null, size: out, apply: (image) => this.apply(image) };
  }
}

/** Base of transforms without randomness: the same input always gives the same output. */
export abstract class DeterministicTransform extends Transform {
  override variant(): string {
    return '';
  }
  override draw(size: ImageSize): Drawn | null {
    const out = this.outputSize(size);
    return out && { name: this.name, variant: '', size: out, apply: (image) => this.apply(image) };
  }
}

/** Base of random transforms: each owns a seeded generator and samples parameters per image. */
export abstract class RandomTransform<P> extends Transform {
  protected seed: number;
  protected rng: Random;
  /** The parameters of the last `apply` to one image, for {@link variant}; undefined after a batch. */
  private last: { params: P } | undefined;

  constructor(seed = 0) {
    super();
    this.seed = seed;
    this.rng = new Random(seed);
  }

  /** Draws this transform's parameters for one image of the given size. */
  abstract sampleParams(size: ImageSize): P;

  /** Applies the transform with fixed parameters (deterministic; replays a sample). */
  abstract applyParams<T extends Image>(image: T, params: P): T;

  /**
   * The key of one draw of parameters for {@link variant}: equal keys must mean equal outputs.
   * Default `null` (no key: continuous parameters); transforms with a few discrete outcomes
   * (a flip) override it.
   */
  protected paramsKey(_params: P): string | null {
    return null;
  }

  override variant(): string | null {
    return this.last ? this.paramsKey(this.last.params) : null;
  }

  override draw(size: ImageSize): Drawn | null {
    const out = this.outputSize(size);
    if (!out) return null;
    const params = this.sampleParams(size);
    return {
      name: this.name,
      variant: this.paramsKey(params),
      size: out,
      apply: (image) => {
        checkImage(this.name, image);
        return this.applyParams(image, params);
      },
    };
  }

  apply<T extends Image>(image: T): T {
    checkImage(this.name, image);
    const size = imageSize(image);
    this.last = undefined;
    if (image.rank === 3) {
      const params = this.sampleParams(size);
      this.last = { params };
      return this.applyParams(image, params);
    }
    return tf.tidy(() => {
      const images = tf.unstack(image) as tf.Tensor3D[];
      return tf.stack(images.map((one) => this.applyParams(one, this.sampleParams(size)))) as T;
    });
  }

  override reseed(seed: number): void {
    this.seed = seed;
    this.rng = new Random(seed);
  }

  override getState(): RandomState[] {
    return [this.rng.getState()];
  }

  override setState(states: RandomState[]): void {
    const [state] = states;
    check(state !== undefined, this.name, 'setState needs one generator state');
    this.rng.setState(state);
  }
}

/** Checks a probability. */
export function checkProbability(op: string, p: unknown): number {
  check(typeof p === 'number' && p >= 0 && p <= 1, op, `p must be a probability in [0, 1], got ${String(p)}`);
  return p;
}

/** Checks a `[min, max]` range with min <= max. */
export function checkRange(op: string, name: string, value: unknown, min = -Infinity): [number, number] {
  check(
    Array.isArray(value) &&
      value.length === 2 &&
      value.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= min) &&
      value[0] <= value[1],
    op,
    () =>
      `${name} must be [min, max] with ${min === -Infinity ? '' : `${min} <= `}min <= max, got ${JSON.stringify(value)}`,
  );
  return [value[0], value[1]];
}

/** Runs `steps` in order, disposing intermediates and naming the step that fails. */
export function runSteps<T extends Image>(
  owner: string,
  steps: readonly Pick<Transform | Drawn, 'name' | 'apply'>[],
  image: T,
): T {
  let current = image;
  steps.forEach((step, index) => {
    let next: T;
    try {
      next = step.apply(current);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new MedimgError(owner, `step ${index} (${step.name}) failed: ${message}`);
    }
    if (current !== image) current.dispose();
    current = next;
  });
  return current === image ? (tf.clone(image) as T) : current;
}

/** Reseeds children with seeds derived from the parent's. */
export function reseedChildren(children: readonly Transform[], seed: number): void {
  children.forEach((child, index) => {
    child.reseed(deriveSeed(seed, index));
  });
}
