import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { expect } from 'vitest';
import { installEarlyGradientRelease } from '../src/backend/patches/early-gradient-release.js';

/**
 * Runs `fn` and asserts that the number of live tensors is unchanged afterwards (results disposed).
 * `warmUp`: run it once before counting, for a model's first prediction, which keeps its folded
 * BatchNormalization weights with the model (`backend/patches/fold-batchnorm.ts`).
 */
export async function expectNoLeak(fn: () => unknown, options: { warmUp?: boolean } = {}): Promise<void> {
  if (options.warmUp) tf.dispose((await fn()) as tf.TensorContainer);
  const before = tf.memory().numTensors;
  const result = await fn();
  tf.dispose(result as tf.TensorContainer);
  expect(tf.memory().numTensors).toBe(before);
}

/** Largest absolute element-wise difference between a tensor and a nested array. */
export function maxAbsDiff(actual: tf.Tensor, expected: unknown): number {
  const e = tf.tensor(expected as number[]);
  try {
    expect(actual.shape).toEqual(e.shape);
    const a = actual.dataSync();
    const b = e.dataSync();
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
    return m;
  } finally {
    e.dispose();
  }
}

/** A deterministic test image with values 0..255. */
export function testImage(h: number, w: number, c: number, seed = 1): tf.Tensor3D {
  const data = new Float32Array(h * w * c);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return tf.tensor3d(data, [h, w, c]);
}

export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(name);
  await tf.ready();
  // As setupBackend does: every test that trains runs with backprop memory released early.
  installEarlyGradientRelease();
}

/** Runs the CLI in-process (`main(args)`), capturing what it writes to stdout and stderr. */
export async function runCli(...args: string[]): Promise<{ code: number; text: string }> {
  const { main } = await import('../src/cli/main.js');
  const logs: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => logs.push(String(s)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => logs.push(String(s)) > 0) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, text: logs.join('') };
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
}

/**
 * Runs `fn` offline: every `fetch` fails as without a network and downloads are cached in
 * `cacheDir` (`MEDIMG_CACHE`); both are restored afterwards.
 */
export async function withoutNetwork<T>(cacheDir: string, fn: () => Promise<T>): Promise<T> {
  const realFetch = globalThis.fetch;
  const cache = process.env.MEDIMG_CACHE;
  process.env.MEDIMG_CACHE = cacheDir;
  globalThis.fetch = (async () => {
    throw new TypeError('fetch failed');
  }) as typeof fetch;
  try {
    return await fn();
  } finally {
    globalThis.fetch = realFetch;
    if (cache === undefined) delete process.env.MEDIMG_CACHE;
    else process.env.MEDIMG_CACHE = cache;
  }
}

/** ||a - b|| / ||b||, the relative error of `a` against the reference `b`. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
