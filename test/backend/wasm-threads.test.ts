import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleRequires, workerPrelude } from '../../src/backend/wasm-threads.node.js';
import { relaxedSimdSupported, setupBackend } from '../../src/index.js';

const child = join(import.meta.dirname, 'scripts', 'wasm-threads-child.ts');

interface ChildResult {
  threads: number;
  gray: { count: number; sha256: string; sample: number[] };
  heapThreads: number;
  wino: { count: number; sha256: string; sample: number[] };
  pointwise: { count: number; sha256: string; sample: number[] };
  elementwise: { wrong: number; count: number };
  split: number[];
  balanced: { wrong: number; fixedSame: boolean };
  note?: string;
  conv: number[];
  weights: number[];
  relaxedSimd: boolean;
  relaxedSwitch: string;
}

function run(threads: string, cache = 'tmp', fused?: 'fused' | 'unfused', flags: string[] = []): ChildResult {
  const r = spawnSync(
    process.execPath,
    [...flags, '--import', 'tsx', child, threads, cache, ...(fused ? [fused] : [])],
    {
      encoding: 'utf8',
      // A pthread pool that kept the process alive would hit this timeout.
      timeout: 60_000,
    },
  );
  expect(r.status, `${r.signal} ${r.stderr.slice(-2000)} ${r.stdout.slice(0, 300)}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as ChildResult;
}

describe('wasm threads in Node', () => {
  it("finds the Node built-ins the threaded factory expects in tfjs-backend-wasm's bundle", () => {
    const bundle = readFileSync(
      createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'),
      'utf8',
    );
    const names = bundleRequires(bundle);
    expect([...names.values()].sort()).toEqual(expect.arrayContaining(['fs', 'os', 'path']));
    // Every require$$N the inlined Emscripten factory uses is defined by the worker prelude.
    const used = new Set(bundle.match(/require\$\$\d+/g));
    for (const name of used) expect(names.has(name), name).toBe(true);
    const prelude = workerPrelude(names, '/tmp/x/main.js');
    expect(prelude).toContain('globalThis.commonjsGlobal = globalThis;');
    expect(prelude).toContain('URL.createObjectURL = () => "/tmp/x/main.js";');
  });

  it('runs the threaded build and the heap pool on every core by default, and gives bit-identical results to 1 thread', () => {
    const one = run('1');
    const all = run('default');
    const two = run('2');
    expect(one.threads).toBe(1);
    expect(all.threads).toBe(Math.min(8, availableParallelism()));
    expect(two.threads).toBe(2);
    // The heap loops' pool (heap-pool.node.ts) has as many threads, and splits by output rows too.
    expect(one.heapThreads).toBe(1);
    expect(two.heapThreads).toBe(2);
    // XNNPACK splits work by output tiles, never the reduction: the sums are the same.
    expect(two.conv).toEqual(one.conv);
    // The grayscale first layer's heap loop computes each output whole on one thread.
    expect(two.gray).toEqual(one.gray);
    expect(one.gray.count).toBe(5 * 20 * 19 * 32);
    // Winograd's tiles split over threads; its filter gradient sums fixed chunks in a fixed order.
    expect(two.wino).toEqual(one.wino);
    expect(one.wino.count).toBe(2 * 4 * 30 * 30 * 16 + 9 * 16 * 16);
    expect(two.pointwise).toEqual(one.pointwise);
    expect(one.pointwise.count).toBe(
      4 * 24 * 24 * 24 + 4 * 24 * 24 * 16 + 16 * 24 + 4 * 23 * 23 * 16 + 9 * 16,
    );
    expect(two.elementwise).toEqual({ wrong: 0, count: 70001 });
    expect(one.elementwise).toEqual({ wrong: 0, count: 70001 });
    // The balanced pool ran every group once, with each thread's own argument, and gives the same
    // bits as fixed shares.
    expect(two.balanced).toEqual({ wrong: 0, fixedSame: true });
    expect(one.balanced).toEqual({ wrong: 0, fixedSame: true });
    expect(two.weights).toEqual(one.weights);
    expect(one.weights.length).toBe(17723);
    expect(two.note).toBeUndefined();
    // Loops over fewer values than the pooled minimum (2^21) stay on the caller.
    expect(two.split).toEqual([1, 2, 2]);
    expect(one.split).toEqual([1, 1, 1]);
  }, 300_000);

  it("fuses the product loops' multiply-adds with relaxed SIMD: the same bits on 1 and 2 threads, within float32 rounding of the unfused loops", () => {
    // Node 20 runs relaxed SIMD behind a flag; Node 22 and later by default.
    const flags = relaxedSimdSupported() ? [] : ['--experimental-wasm-relaxed-simd'];
    const one = run('1', 'tmp', 'fused', flags);
    const two = run('2', 'tmp', 'fused', flags);
    const unfused = run('2', 'tmp', 'unfused', flags);
    expect([one.relaxedSimd, two.relaxedSimd, unfused.relaxedSimd]).toEqual([true, true, false]);
    expect(two.threads).toBe(2);
    // Fused: the Winograd tiles and GEMMs, the grayscale first layer and the 1x1 loops on the
    // pool give the bits they give on one thread.
    for (const key of ['wino', 'gray', 'pointwise'] as const) expect(two[key], key).toEqual(one[key]);
    expect(two.conv).toEqual(one.conv);
    expect(two.weights).toEqual(one.weights);
    // And they are fused: each product rounds once, so the bits differ from the unfused loops'
    // (and XNNPACK's), by float32 rounding.
    for (const key of ['wino', 'gray', 'pointwise'] as const)
      expect(two[key].sha256, key).not.toBe(unfused[key].sha256);
    const worst = (a: number[], b: number[]) => {
      expect(a.length).toBe(b.length);
      return Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number)))) / Math.max(...b.map(Math.abs));
    };
    for (const key of ['wino', 'gray', 'pointwise'] as const) {
      const drift = worst(two[key].sample, unfused[key].sample);
      expect(drift, key).toBeGreaterThan(0);
      expect(drift, key).toBeLessThan(1e-5);
    }
    // A convolution XNNPACK runs (8 input channels: not Winograd's): unchanged.
    expect(worst(two.conv, unfused.conv)).toBe(0);
    // Two AdaBelief steps of a small SimpleCNN from the same seed: the weights within rounding.
    expect(worst(two.weights, unfused.weights)).toBeLessThan(1e-4);
    // The loops are loaded once per process, for the caller and the pool's workers alike.
    expect(two.relaxedSwitch).toMatch(
      /setRelaxedSimd\(false\) comes after the heap loops were loaded with fused multiply-adds; call it before setupBackend/,
    );
  }, 300_000);

  it('falls back to one thread, with a note, when the worker scripts cannot be written', () => {
    const r = run('2', 'unwritable');
    expect(r.threads).toBe(1);
    expect(r.note).toMatch(
      /single-threaded: the worker scripts cannot be written to .*wasm-threads-child\.ts\/cache \(ENOTDIR\)/,
    );
  }, 120_000);

  it('rejects a thread count that is not a positive integer', async () => {
    await expect(setupBackend('wasm', { threads: 0 })).rejects.toThrow(
      /threads must be a positive integer, got 0/,
    );
    await expect(setupBackend('wasm', { threads: 1.5 })).rejects.toThrow(/got 1\.5/);
  });
});
