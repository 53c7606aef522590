import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

/**
 * Theoretical single-precision peaks from /proc/cpuinfo (Linux).
 * - AVX2 + FMA: two 8-lane FMAs per cycle (32 FLOP/cycle/core).
 * - AVX-512, which oneDNN (PyTorch's convolutions) uses where the CPU has it: two 16-lane FMAs
 *   per cycle on Intel server cores and AMD Zen 5 (family 26), i.e. 64 FLOP/cycle/core. Zen 4
 *   (family 25) splits each 512-bit FMA into two 256-bit halves, so it stays at 32.
 * - wasm's 128-bit SIMD has no FMA (relaxed SIMD is off in Node 20), so XNNPACK issues separate
 *   4-lane multiplies and adds: AMD Zen cores (family 23 and later) run two multiplies and two
 *   adds per cycle (16 FLOP/cycle/core), most Intel cores two of either (8). XNNPACK's forward
 *   convolutions measured ~40 GFLOP/s on 2 Zen cores, above the 8-FLOP figure.
 */
export function peaks(): {
  mhz: number;
  nativeGflops: number | null;
  avx512Gflops: number | null;
  wasmGflops: number;
} | null {
  if (!existsSync('/proc/cpuinfo')) return null;
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? Number.NaN);
  if (!Number.isFinite(mhz)) return null;
  const flags = /flags\s*:(.*)/.exec(info)?.[1]?.split(' ') ?? [];
  const amd = /AuthenticAMD/.test(info);
  const family = Number(/cpu family\s*:\s*(\d+)/.exec(info)?.[1] ?? 0);
  const zen = amd && family >= 23;
  const ghzCores = (mhz / 1000) * cpus().length;
  return {
    mhz,
    nativeGflops: flags.includes('avx2') && flags.includes('fma') ? ghzCores * 32 : null,
    avx512Gflops: flags.includes('avx512f') ? ghzCores * (amd && family < 26 ? 32 : 64) : null,
    wasmGflops: ghzCores * (zen ? 16 : 8),
  };
}

/** The best native peak the CPU offers (AVX-512 where present, else AVX2 + FMA). */
export function nativePeak(p: ReturnType<typeof peaks>): { gflops: number; isa: string } | null {
  if (!p) return null;
  if (p.avx512Gflops) return { gflops: p.avx512Gflops, isa: 'AVX-512' };
  return p.nativeGflops ? { gflops: p.nativeGflops, isa: 'AVX2+FMA' } : null;
}

/**
 * The environment both sides of a comparison run in. glibc hands blocks over 128 KiB to mmap and
 * returns them on free, so every large tensor PyTorch allocates page-faults afresh; in the
 * firecracker VMs these benchmarks run in a fault costs microseconds, and PyTorch ran 5-8x below
 * its speed (SimpleCNN step: 14 images/s with glibc's defaults, 120 with freed memory kept).
 * `MALLOC_MMAP_MAX_=0` keeps large blocks on the heap and a huge trim threshold keeps freed
 * memory mapped, as jemalloc/tcmalloc (PyTorch's CPU tuning guides' advice) would. Node's side
 * is unaffected (its wasm heap is allocated once) but gets the same settings, so the two run
 * alike. `--torch-malloc=default` leaves glibc's defaults, to see what an untuned install gets.
 */
export function benchEnv(threads: number, args: string[]): NodeJS.ProcessEnv {
  const tuned = !args.includes('--torch-malloc=default');
  return {
    ...process.env,
    OMP_NUM_THREADS: String(threads),
    ...(tuned ? { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 40) } : {}),
  };
}

/**
 * The V8 flags the bench gives the Node processes it times: Node 22 and later run WebAssembly's
 * relaxed SIMD by default (the library's heap product loops then fuse their multiply-adds, see
 * `setRelaxedSimd`); Node 20 runs it behind `--experimental-wasm-relaxed-simd`, which the bench
 * passes there so that it measures what a supported Node gives. `--no-relaxed-simd` measures
 * without it (the unfused loops, XNNPACK's bits), as Node 20 runs by default.
 */
export function relaxedSimdFlags(args: string[]): { flags: string[]; note: string } {
  if (args.includes('--no-relaxed-simd'))
    return { flags: [], note: 'off (--no-relaxed-simd): unfused heap loops' };
  // The library's own check, in a child with and without the flag.
  const heapSimd = join(import.meta.dirname, '../src/backend/wasm/heap-simd.ts');
  const probe = (flags: string[]) =>
    spawnSync(process.execPath, [
      ...flags,
      '--import',
      'tsx',
      '-e',
      `import(${JSON.stringify(heapSimd)}).then((m) => process.exit(m.relaxedSimdSupported() ? 0 : 3))`,
    ]).status === 0;
  if (probe([])) return { flags: [], note: 'on (this Node runs relaxed SIMD by default)' };
  const flag = '--experimental-wasm-relaxed-simd';
  if (probe([flag]))
    return {
      flags: [flag],
      note: `on (${flag}, as Node 22 and later run by default; --no-relaxed-simd: off)`,
    };
  return { flags: [], note: 'off (this Node has no relaxed SIMD)' };
}
