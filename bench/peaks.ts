import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Theoretical single-precision peaks from /proc/cpuinfo (Linux). Native code with AVX2 + FMA
 * issues two 8-lane FMAs per cycle (32 FLOP/cycle/core). wasm's 128-bit SIMD has no FMA, so
 * XNNPACK issues separate 4-lane multiplies and adds: AMD Zen cores (family 23 and later) run
 * two multiplies and two adds per cycle (16 FLOP/cycle/core), most Intel cores two of either
 * (8). XNNPACK's forward convolutions measured ~40 GFLOP/s here, above the 8-FLOP figure.
 */
export function peaks(): { mhz: number; nativeGflops: number | null; wasmGflops: number } | null {
  if (!existsSync('/proc/cpuinfo')) return null;
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  if (!Number.isFinite(mhz)) return null;
  const flags = /flags\s*:(.*)/.exec(info)?.[1]?.split(' ') ?? [];
  const zen = /AuthenticAMD/.test(info) && Number(/cpu family\s*:\s*(\d+)/.exec(info)?.[1] ?? 0) >= 23;
  const ghzCores = (mhz / 1000) * cpus().length;
  return {
    mhz,
    nativeGflops: flags.includes('avx2') && flags.includes('fma') ? ghzCores * 32 : null,
    wasmGflops: ghzCores * (zen ? 16 : 8),
  };
}
