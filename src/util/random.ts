import { checkNumber } from './errors.js';

/** Serializable state of a {@link Random} generator. */
export interface RandomState {
  s: [number, number, number, number];
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * A small, fast, seedable generator (xoshiro128**). Every random operation in this
 * library draws from one of these, so the same seed always gives the same result.
 *
 * @example
 * const rng = new Random(42);
 * rng.uniform(0, 1); // same value on every run
 */
export class Random {
  private s: [number, number, number, number];

  constructor(seed: number) {
    checkNumber(seed, 'Random', 'seed', { integer: true });
    const next = splitmix32(seed);
    this.s = [next(), next(), next(), next()];
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform float in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.next();
  }

  /** Uniform integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low));
  }

  /** Standard normal sample (Box-Muller). */
  normal(mean = 0, std = 1): number {
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher-Yates shuffle; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** A 31-bit integer seed for a child generator. */
  nextSeed(): number {
    return this.nextUint32() >>> 1;
  }

  getState(): RandomState {
    return { s: [...this.s] };
  }

  setState(state: RandomState): void {
    this.s = [...state.s];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Derives a distinct, reproducible seed for child `index` of a parent seed. */
export function deriveSeed(seed: number, index: number): number {
  const next = splitmix32((seed ^ Math.imul(index + 1, 0x27d4eb2d)) >>> 0);
  next();
  return next() >>> 1;
}
