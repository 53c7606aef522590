/**
 * Heap-SIMD loops on more than one thread. XNNPACK's kernels use tfjs's own thread pool; the loops
 * of heap-simd.wat run on the calling thread unless an environment installs a pool of its own on
 * the same shared memory (the Node entry does, with worker threads: `heap-pool.node.ts`). Callers
 * split their work into calls that write disjoint outputs, so that the numbers are the same on
 * any number of threads.
 */
import type { TensorInfo } from './common.js';
import type { HeapSimd } from './heap-simd.js';

/** Functions of the heap-SIMD modules that a pool runs (by index); all their parameters are i32. */
export const PARALLEL_FUNCTIONS = [
  'conv_filter_grad',
  'wino_forward',
  'wino_filter_grad',
  'maxpool_grad_2x2',
  'column_sums',
  'column_moments',
  'centered_affine',
  'gemm',
  'gemm_tn',
  'depthwise_input_grad',
  'depthwise_filter_grad',
  'clip_grad',
  'affine_channels',
  'conv1_forward',
  'sub_div_channels',
  'pointwise_forward',
] as const;
export type ParallelFunction = (typeof PARALLEL_FUNCTIONS)[number];

/** The most calls a pool takes per thread in one job (`heap-pool.node.ts`). */
export const MAX_CALLS = 64;

/** The most groups of calls a pool balances in one job ({@link runBalanced}), and calls in all. */
export const MAX_GROUPS = 256;
export const MAX_GROUP_CALLS = 1024;

/**
 * Chunks per thread that {@link runShares} cuts work into: enough that the last one taken ends
 * close to the others (on SimpleCNN's step, 8 per thread left the caller waiting ~1.5 ms per
 * Winograd call for the worker's last chunk, and the step ran 2-7% slower than fixed halves).
 */
export const BALANCE = 32;

/** A per-thread argument: argument `arg` of every call is `values[t]` on thread t (0: the caller's). */
export interface PerThread {
  arg: number;
  values: number[];
}

/**
 * Part `i` of `parts` of the range [0, total) as [from, to): contiguous, in order, boundaries
 * on multiples of `unit` (which must divide `total`).
 */
export function share(total: number, parts: number, i: number, unit = 1): [number, number] {
  const units = total / unit;
  return [unit * Math.floor((i * units) / parts), unit * Math.floor(((i + 1) * units) / parts)];
}

export interface HeapParallel {
  /** Threads, the caller's included. */
  readonly threads: number;
  /**
   * Runs `calls[t]` on thread t (t = 0 is the caller's, with `simd`) and returns once every
   * thread has finished; each call is `fn(...args)`, at most 16 arguments.
   */
  run(fn: ParallelFunction, simd: HeapSimd, calls: number[][][]): void;
  /**
   * Runs every group of `groups`, each group's calls in order on one thread, the groups taken in
   * order by whichever thread is free next (the caller's included), and returns once all have run;
   * with `perThread`, a call's argument `perThread.arg` is the running thread's value (its scratch,
   * say); only the first `threads` threads (default: all) take part. See {@link runBalanced}.
   */
  runBalanced(
    fn: ParallelFunction,
    simd: HeapSimd,
    groups: number[][][],
    perThread?: PerThread,
    threads?: number,
  ): void;
}

const pools = new WeakMap<WebAssembly.Memory, HeapParallel>();
let enabled = true;

/** Installs (or, with null, removes) the pool for the heap `memory`. */
export function setHeapParallel(memory: WebAssembly.Memory, pool: HeapParallel | null): void {
  if (pool) pools.set(memory, pool);
  else pools.delete(memory);
}

/** Turns the pools off or on (tests compare the numbers on one thread and on several). */
export function setHeapParallelEnabled(on: boolean): void {
  enabled = on;
}

/** The pool on `backend`'s heap, or null (none installed, or switched off). */
export function heapParallel(backend: unknown): HeapParallel | null {
  if (!enabled) return null;
  const wasm = (backend as { wasm?: { wasmMemory?: unknown } }).wasm;
  const memory = wasm?.wasmMemory;
  return memory instanceof WebAssembly.Memory ? (pools.get(memory) ?? null) : null;
}

/**
 * Values a memory-bound heap loop must touch (read and written) before it is split over the pool.
 * Waking the pool's worker costs ~0.1-0.3 ms on 2 cores, most of all right after an XNNPACK
 * operator, whose own threads spin a while before they sleep; a loop over fewer values runs faster
 * on the caller alone. On the brain recipe's step (`blocks-13`: 26 BatchNorm passes of 0.1-2 M
 * values, 9 ReLU6 gradients), this minimum against none, switched between steps in one process:
 * 0.96 and 0.95 of the time (2^19: 1.02, 2^23: 1.03); SimpleCNN's step 0.96.
 */
let minPooledValues = 1 << 21;

/**
 * Sets the values from which memory-bound heap loops are split over the pool (default 2^21;
 * 0 splits every loop, as the thread-count tests do). Returns the previous setting.
 */
export function setMinPooledValues(values: number): number {
  const previous = minPooledValues;
  minPooledValues = values;
  return previous;
}

/**
 * How many threads to split work of `units` independent parts over on `backend`'s heap: the
 * pool's threads, at most `units`; 1 without a pool, or when a memory-bound loop touches fewer
 * than the pooled minimum of `values` (see {@link setMinPooledValues}; compute-bound loops pass none).
 */
export function threadsFor(backend: unknown, units: number, values = Number.POSITIVE_INFINITY): number {
  if (values < minPooledValues) return 1;
  return Math.max(1, Math.min(heapParallel(backend)?.threads ?? 1, units));
}

/** Runs every call of `calls` on this thread, in order. */
export function runHere(fn: ParallelFunction, simd: HeapSimd, calls: number[][][]): void {
  const f = simd[fn] as (...a: number[]) => void;
  for (const list of calls) for (const args of list) f(...args);
}

/** A call's arguments as thread `t` runs it: `perThread`'s argument replaced by its value for t. */
export function onThread(args: number[], t: number, perThread?: PerThread): number[] {
  if (!perThread) return args;
  const out = args.slice();
  out[perThread.arg] = perThread.values[t] as number;
  return out;
}

/** Runs every group of `groups` on this thread, in order, with thread 0's value of `perThread`. */
export function runGroupsHere(
  fn: ParallelFunction,
  simd: HeapSimd,
  groups: number[][][],
  perThread?: PerThread,
): void {
  const f = simd[fn] as (...a: number[]) => void;
  for (const group of groups) for (const args of group) f(...onThread(args, 0, perThread));
}

/**
 * Runs `groups` of calls on `backend`'s pool, balanced: every thread takes the next group not yet
 * taken until none is left, so a thread that starts late (a worker waking from its sleep takes
 * 0.1-0.3 ms here) or runs slow (a core shared with another thread) takes fewer. A group's calls
 * run in order on one thread, and no call may depend on which thread runs it, only on
 * `perThread`'s value for it (scratch that each call fills before it reads): the numbers are then
 * the same on any number of threads. At most `threads` threads take part (default: the pool's;
 * and no more than `perThread` has values for). Without a pool, all of them run here.
 */
export function runBalanced(
  backend: unknown,
  fn: ParallelFunction,
  simd: HeapSimd,
  groups: number[][][],
  perThread?: PerThread,
  threads?: number,
): void {
  const pool = groups.length > 1 && (threads ?? 2) > 1 ? heapParallel(backend) : null;
  if (!pool) runGroupsHere(fn, simd, groups, perThread);
  else if (balanced) pool.runBalanced(fn, simd, groups, perThread, threads);
  else {
    // Fixed shares: thread t runs the t-th run of consecutive groups.
    const taking = Math.min(
      pool.threads,
      groups.length,
      threads ?? pool.threads,
      perThread?.values.length ?? pool.threads,
    );
    const calls = Array.from({ length: taking }, (_, t) => {
      const [from, to] = share(groups.length, taking, t);
      return groups
        .slice(from, to)
        .flat()
        .map((args) => onThread(args, t, perThread));
    });
    pool.run(fn, simd, calls);
  }
}

let balanced = true;

/**
 * Turns the balanced pool off (each thread runs a fixed share of the groups, as before the tenth
 * session) or back on; for benchmarks that compare the two. The numbers are the same either way.
 */
export function setBalancedPool(on: boolean): void {
  balanced = on;
}

/**
 * Runs `call(from, to)` over [0, total) on `threads` threads ({@link threadsFor}): cut into up to
 * {@link BALANCE} chunks per thread (boundaries on multiples of `unit`, which must divide `total`)
 * that the threads take as they come free ({@link runBalanced}), or, with the balanced pool off,
 * one share per thread. For loops whose chunks write disjoint outputs, each value computed the
 * same way whatever chunk it falls in: the numbers are then the same on any number of threads.
 */
export function runShares(
  backend: unknown,
  fn: ParallelFunction,
  simd: HeapSimd,
  threads: number,
  total: number,
  unit: number,
  call: (from: number, to: number) => number[],
  perThread?: PerThread,
): void {
  const units = total / unit;
  const most = threads * BALANCE;
  const chunks =
    threads <= 1 ? 1 : balanced ? Math.min(units, Math.max(threads, Math.min(most, MAX_GROUPS))) : threads;
  const groups = Array.from({ length: chunks }, (_, i) => [call(...share(total, chunks, i, unit))]);
  runBalanced(backend, fn, simd, groups, perThread, threads);
}

/**
 * Fixed shares over panels, for {@link runSpread}: thread t takes share t of [0, total) (on
 * multiples of `unit`) and makes one call per panel of [0, length), `panel` at a time, in order:
 * `call(from, to, start, size)`. For products whose share takes each panel of an operand while
 * it is in cache, and whose panels a balanced chunk would read from memory again.
 */
export function panelShares(
  threads: number,
  total: number,
  unit: number,
  length: number,
  panel: number,
  call: (from: number, to: number, start: number, size: number) => number[],
): number[][][] {
  return Array.from({ length: threads }, (_, t) => {
    const [from, to] = share(total, threads, t, unit);
    const list: number[][] = [];
    for (let start = 0; start < length; start += panel)
      list.push(call(from, to, start, Math.min(panel, length - start)));
    return list;
  });
}

/** Runs `calls[t]` on thread t of `backend`'s pool (see {@link threadsFor}), or all here. */
export function runSpread(backend: unknown, fn: ParallelFunction, simd: HeapSimd, calls: number[][][]): void {
  const pool = calls.length > 1 ? heapParallel(backend) : null;
  if (pool) pool.run(fn, simd, calls);
  else runHere(fn, simd, calls);
}

/** Bytes in a cache line: what threads writing side by side keep apart. */
export const CACHE_LINE = 64;

/** `bytes` rounded up to whole cache lines. */
export const wholeLines = (bytes: number) => Math.ceil(bytes / CACHE_LINE) * CACHE_LINE;

/**
 * A scratch tensor with room for `bytes` from a cache-line boundary, and that boundary's byte
 * offset: per-thread regions cut at whole lines then share none (a line written by two threads
 * moves between their cores on every write; two threads' float64 column accumulators sharing
 * one made the pooled column sums twice as slow as one thread).
 */
export function alignedScratch(
  b: { makeOutput(shape: number[], dtype: 'float32'): TensorInfo; getMemoryOffset(dataId: object): number },
  bytes: number,
): { scratch: TensorInfo; at: number } {
  const scratch = b.makeOutput([(bytes + CACHE_LINE) / 4], 'float32');
  return { scratch, at: wholeLines(b.getMemoryOffset(scratch.dataId)) };
}
