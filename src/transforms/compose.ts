import * as tf from '@tensorflow/tfjs-core';
import { check } from '../util/errors.js';
import type { RandomState } from '../util/random.js';
import {
  checkProbability,
  type Drawn,
  type ImageSize,
  RandomTransform,
  reseedChildren,
  runSteps,
  Transform,
  type TransformJSON,
} from './base.js';
import type { Image } from './functional/_image.js';

function checkChildren(op: string, transforms: unknown): Transform[] {
  check(
    Array.isArray(transforms) && transforms.every((t) => t instanceof Transform),
    op,
    'expects an array of transforms',
  );
  return transforms;
}

function childStates(children: readonly Transform[]): RandomState[] {
  return children.flatMap((c) => c.getState());
}

/** Variant keys of steps in order, joined; null if one of them has none. */
const joinKeys = (keys: (string | null)[]): string | null => (keys.includes(null) ? null : keys.join('|'));

/** The children's variants joined, or null if one of them has none. */
function childVariants(children: readonly Transform[]): string | null {
  return joinKeys(children.map((c) => c.variant()));
}

/** The size after `children` in order, or null where one of them does not say. */
function chainSize(children: readonly Transform[], size: ImageSize): ImageSize | null {
  let out: ImageSize | null = size;
  for (const child of children) {
    out = child.outputSize(out);
    if (!out) return null;
  }
  return out;
}

const sameSize = (a: ImageSize, b: ImageSize) =>
  a.height === b.height && a.width === b.width && a.channels === b.channels;

/**
 * Draws `children` in order for an image of `size`: their draws, joined variant and output size;
 * null (nothing drawn) where one of them cannot draw ahead.
 */
function drawChain(
  children: readonly Transform[],
  size: ImageSize,
): { steps: Drawn[]; variant: string | null; size: ImageSize } | null {
  if (!chainSize(children, size)) return null;
  const steps: Drawn[] = [];
  let at = size;
  for (const child of children) {
    const step = child.draw(at) as Drawn;
    steps.push(step);
    at = step.size;
  }
  return { steps, variant: joinKeys(steps.map((d) => d.variant)), size: at };
}

function setChildStates(children: readonly Transform[], states: RandomState[]): void {
  let offset = 0;
  for (const child of children) {
    const n = child.getState().length;
    child.setState(states.slice(offset, offset + n));
    offset += n;
  }
}

/**
 * Runs transforms in order. Compose owns its children's generators: each child is reseeded
 * with a seed derived from Compose's `seed` (MONAI's `set_random_state`), so a pipeline is
 * reproducible and siblings draw independently.
 *
 * @example
 * const augment = new Compose([
 *   new Letterbox({ height: 224, width: 224 }),
 *   new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
 *   new RandomErasing({ p: 0.5 }),
 *   new Rescale({ scale: 1 / 255 }),
 *   new Normalize({ mean: [0.5], std: [0.5] }),
 * ], { seed: 42 });
 * const x = augment.apply(image);
 */
export class Compose extends Transform {
  readonly name = 'Compose';
  readonly transforms: readonly Transform[];
  private seed: number;
  constructor(transforms: Transform[], options: { seed?: number } = {}) {
    super();
    this.transforms = checkChildren(this.name, transforms);
    this.seed = options.seed ?? 0;
    reseedChildren(this.transforms, this.seed);
  }
  apply<T extends Image>(image: T): T {
    return runSteps(this.name, this.transforms, image);
  }
  override variant(): string | null {
    return childVariants(this.transforms);
  }
  override outputSize(size: ImageSize): ImageSize | null {
    return chainSize(this.transforms, size);
  }
  override draw(size: ImageSize): Drawn | null {
    const chain = drawChain(this.transforms, size);
    return (
      chain && {
        name: this.name,
        variant: chain.variant,
        size: chain.size,
        apply: (image) => runSteps(this.name, chain.steps, image),
      }
    );
  }
  override reseed(seed: number): void {
    this.seed = seed;
    reseedChildren(this.transforms, seed);
  }
  override getState(): RandomState[] {
    return childStates(this.transforms);
  }
  override setState(states: RandomState[]): void {
    setChildStates(this.transforms, states);
  }
  getConfig(): { seed: number; transforms: TransformJSON[] } {
    return { seed: this.seed, transforms: this.transforms.map((t) => t.toJSON()) };
  }
}

/** A random transform that holds children: reseeds them with derived seeds and carries their generator states. */
abstract class RandomContainer<P> extends RandomTransform<P> {
  readonly transforms: readonly Transform[];
  constructor(op: string, transforms: Transform[], seed: number | undefined) {
    super(seed);
    this.transforms = checkChildren(op, transforms);
    reseedChildren(this.transforms, this.seed);
  }
  override reseed(seed: number): void {
    super.reseed(seed);
    reseedChildren(this.transforms, seed);
  }
  override getState(): RandomState[] {
    return [...super.getState(), ...childStates(this.transforms)];
  }
  override setState(states: RandomState[]): void {
    super.setState(states.slice(0, 1));
    setChildStates(this.transforms, states.slice(1));
  }
}

/** Applies all of `transforms` with probability `p` (decided per image). */
export class RandomApply extends RandomContainer<boolean> {
  readonly name = 'RandomApply';
  private readonly p: number;
  constructor(transforms: Transform[], options: { p?: number; seed?: number } = {}) {
    super('RandomApply', transforms, options.seed);
    this.p = checkProbability(this.name, options.p ?? 0.5);
  }
  sampleParams(_size: ImageSize): boolean {
    return this.rng.next() < this.p;
  }
  applyParams<T extends Image>(image: T, applyIt: boolean): T {
    return applyIt ? runSteps(this.name, this.transforms, image) : (tf.clone(image) as T);
  }
  protected override paramsKey(applied: boolean): string | null {
    const children = applied ? childVariants(this.transforms) : '';
    return children === null ? null : applied ? `(${children})` : '-';
  }
  /** The input's size, where the children keep it (else applied and skipped images would differ). */
  override outputSize(size: ImageSize): ImageSize | null {
    const out = chainSize(this.transforms, size);
    return out && sameSize(out, size) ? size : null;
  }
  override draw(size: ImageSize): Drawn | null {
    if (!this.outputSize(size)) return null;
    const applied = this.sampleParams(size);
    if (!applied) return { name: this.name, variant: '-', size, apply: (image) => tf.clone(image) };
    const chain = drawChain(this.transforms, size) as NonNullable<ReturnType<typeof drawChain>>;
    return {
      name: this.name,
      variant: chain.variant === null ? null : `(${chain.variant})`,
      size,
      apply: (image) => runSteps(this.name, chain.steps, image),
    };
  }
  getConfig() {
    return { p: this.p, seed: this.seed, transforms: this.transforms.map((t) => t.toJSON()) };
  }
}

/** Applies one of `transforms`, picked per image (uniformly, or by `weights`). */
export class OneOf extends RandomContainer<number> {
  readonly name = 'OneOf';
  private readonly weights: number[];
  constructor(transforms: Transform[], options: { weights?: number[]; seed?: number } = {}) {
    super('OneOf', transforms, options.seed);
    check(this.transforms.length > 0, this.name, 'needs at least one transform');
    const weights = options.weights ?? this.transforms.map(() => 1);
    check(
      weights.length === this.transforms.length && weights.every((w) => Number.isFinite(w) && w >= 0),
      this.name,
      `weights must be ${this.transforms.length} non-negative numbers, got ${JSON.stringify(weights)}`,
    );
    const total = weights.reduce((a, b) => a + b, 0);
    check(total > 0, this.name, 'weights must not all be 0');
    this.weights = weights;
  }
  sampleParams(_size: ImageSize): number {
    const total = this.weights.reduce((a, b) => a + b, 0);
    let u = this.rng.next() * total;
    for (let i = 0; i < this.weights.length; i++) {
      u -= this.weights[i] as number;
      if (u < 0) return i;
    }
    return this.weights.length - 1;
  }
  applyParams<T extends Image>(image: T, index: number): T {
    return runSteps(this.name, [this.transforms[index] as Transform], image);
  }
  protected override paramsKey(index: number): string | null {
    const child = (this.transforms[index] as Transform).variant();
    return child === null ? null : `${index}(${child})`;
  }
  /** The size every child gives, or null where they differ or one does not say. */
  override outputSize(size: ImageSize): ImageSize | null {
    const sizes = this.transforms.map((t) => t.outputSize(size));
    const [first] = sizes;
    return first && sizes.every((s) => s && sameSize(s, first)) ? first : null;
  }
  override draw(size: ImageSize): Drawn | null {
    if (!this.outputSize(size)) return null;
    const index = this.sampleParams(size);
    const step = (this.transforms[index] as Transform).draw(size) as Drawn;
    return {
      name: this.name,
      variant: step.variant === null ? null : `${index}(${step.variant})`,
      size: step.size,
      apply: (image) => runSteps(this.name, [step], image),
    };
  }
  getConfig() {
    return {
      weights: [...this.weights],
      seed: this.seed,
      transforms: this.transforms.map((t) => t.toJSON()),
    };
  }
}
