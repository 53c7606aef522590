import { type HeapBackend, type KernelArgs, normAxes, original, type TensorInfo } from './common.js';
import {
  alignedScratch,
  MAX_CALLS,
  runBalanced,
  runHere,
  runSpread,
  share,
  threadsFor,
  wholeLines,
} from './heap-parallel.js';
import { type HeapSimd, heapSimd } from './heap-simd.js';

/**
 * Sum and Mean over the leading axes (per-channel statistics of NHWC tensors, as batch
 * normalisation and its gradient compute them, and bias gradients) in one pass over the wasm
 * heap, accumulated in float64: the SIMD column sums, else a JavaScript loop adding eight rows
 * per step. wasm's own reduction transposes the tensor first (74 ms for 16.7M values here). A
 * matrix product with a ones vector on XNNPACK is slower still on fresh data: it packs
 * (transposes) its right operand first.
 */
export function leadingReduction(kind: 'Sum' | 'Mean') {
  return ({ inputs, backend, attrs }: KernelArgs) => {
    const b = backend as HeapBackend;
    const { x } = inputs as { x: TensorInfo };
    const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = normAxes(axis, rank);
    const leading = axes.length > 0 && axes.length < rank && axes.every((v, i) => v === i);
    if (x.dtype !== 'float32' || typeof b.typedArrayFromHeap !== 'function')
      return original(kind, b, { x }, attrs);
    if (!leading) {
      const inner = innerReduction(kind, b, x, axes, keepDims);
      return inner ?? original(kind, b, { x }, attrs);
    }
    const rows = axes.reduce((p, v) => p * (x.shape[v] as number), 1);
    const rest = x.shape.slice(axes.length);
    const cols = rest.reduce((p, d) => p * d, 1);
    const out = b.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, 'float32');
    const acc = columnSumsOf(b, x, rows, cols);
    const dst = b.typedArrayFromHeap(out);
    const scale = kind === 'Mean' ? 1 / rows : 1;
    for (let c = 0; c < cols; c++) dst[c] = (acc[c] as number) * scale;
    return out;
  };
}

/**
 * Sum or Mean over a run of axes between the first and the last, as a global average pooling's
 * mean over H and W of NHWC: x is [outer, rows, cols], and each of the `outer` blocks' column sums
 * is one call of the SIMD loop (in float64, rows in order), the blocks split over the heap pool's
 * threads. wasm's own reduction transposes the tensor first (MobileNetV2's head, [32, 7, 7, 1280]:
 * ~3.5-5 ms a step). Null where the loop does not apply.
 */
function innerReduction(
  kind: 'Sum' | 'Mean',
  b: HeapBackend,
  x: TensorInfo,
  axes: number[],
  keepDims: boolean,
): TensorInfo | null {
  const simd = heapSimd(b);
  const rank = x.shape.length;
  const first = axes[0] as number;
  const last = axes[axes.length - 1] as number;
  if (!simd || first === 0 || last >= rank - 1 || last - first + 1 !== axes.length) return null;
  const size = (from: number, to: number) => x.shape.slice(from, to).reduce((p, d) => p * d, 1);
  const outer = size(0, first);
  const rows = size(first, last + 1);
  const cols = size(last + 1, rank);
  if (outer * rows * cols === 0) return null;
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = b.makeOutput(keepDims ? kept : kept.filter((_, i) => !axes.includes(i)), 'float32');
  const { scratch, at } = alignedScratch(b, outer * cols * 8);
  b.typedArrayFromHeap(scratch).fill(0);
  const src = b.getMemoryOffset(x.dataId);
  const threads = threadsFor(b, outer, outer * rows * cols);
  const calls = Array.from({ length: threads }, (_, t) => {
    const [o0, o1] = share(outer, threads, t);
    const list: number[][] = [];
    for (let o = o0; o < o1; o++) list.push([src + o * rows * cols * 4, rows, cols, at + o * cols * 8]);
    return list;
  });
  // The pool takes at most MAX_CALLS calls per thread: more blocks run here, in the same order.
  if (calls.some((list) => list.length > MAX_CALLS)) runHere('column_sums', simd, calls);
  else runSpread(b, 'column_sums', simd, calls);
  const acc = new Float64Array(b.typedArrayFromHeap(scratch).buffer, at, outer * cols);
  const dst = b.typedArrayFromHeap(out);
  const scale = kind === 'Mean' ? 1 / rows : 1;
  for (let i = 0; i < outer * cols; i++) dst[i] = (acc[i] as number) * scale;
  b.disposeData(scratch.dataId);
  return out;
}

/**
 * Column sums of `x` as a row-major [rows, cols] float32 matrix, in float64: the SIMD loop with a
 * float64 accumulator on the heap, else a JavaScript loop adding eight rows per step.
 */
export function columnSumsOf(b: HeapBackend, x: TensorInfo, rows: number, cols: number): Float64Array {
  const simd = heapSimd(b);
  if (!simd) return columnSums(b.typedArrayFromHeap(x), rows, cols);
  const src = b.getMemoryOffset(x.dataId);
  return chunkedColumnSums(b, simd, 'column_sums', rows, cols, (r0, count, acc) => [
    src + r0 * cols * 4,
    count,
    cols,
    acc,
  ]);
}

/**
 * Row chunks whose float64 column sums are taken separately, then added in this order: enough for
 * the pool's threads to share them evenly as they come free (`runBalanced`; 4 left one thread a
 * quarter of the work behind when the other woke late).
 */
const SUM_CHUNKS = 16;

/**
 * float64 column sums over `rows` rows by the heap loop `fn`, in {@link SUM_CHUNKS} fixed chunks of
 * rows spread over the heap pool's threads: `args(r0, count, acc)` gives the call for rows
 * [r0, r0 + count) into a zeroed float64 accumulator of `width` x [cols] at `acc` (`width` sums per
 * column, [cols] apart, as `column_moments` keeps two). The chunks do not depend on the thread
 * count, nor the order their sums are added in, so neither do the numbers. Returns width x cols
 * sums.
 */
export function chunkedColumnSums(
  b: HeapBackend,
  simd: HeapSimd,
  fn: 'column_sums' | 'column_moments',
  rows: number,
  cols: number,
  args: (r0: number, count: number, acc: number) => number[],
  width = 1,
): Float64Array {
  const chunks = Math.max(1, Math.min(SUM_CHUNKS, rows));
  const size = width * cols;
  // Each chunk's doubles on lines of their own.
  const stride = wholeLines(size * 8);
  const { scratch, at } = alignedScratch(b, chunks * stride);
  b.typedArrayFromHeap(scratch).fill(0);
  // Values read: `width` = 2 reads a second [rows, cols] array beside the first.
  const threads = threadsFor(b, chunks, width * rows * cols);
  // Each chunk into its own accumulator, on whichever thread takes it.
  const groups = Array.from({ length: chunks }, (_, k) => {
    const [r0, r1] = share(rows, chunks, k);
    return [args(r0, r1 - r0, at + k * stride)];
  });
  runBalanced(b, fn, simd, groups, undefined, threads);
  const heap = b.typedArrayFromHeap(scratch).buffer;
  const acc = new Float64Array(heap, at, size).slice();
  for (let k = 1; k < chunks; k++) {
    const part = new Float64Array(heap, at + k * stride, size).slice();
    for (let j = 0; j < size; j++) acc[j] = (acc[j] as number) + (part[j] as number);
  }
  b.disposeData(scratch.dataId);
  return acc;
}

/** Column sums of a row-major [rows, cols] matrix, in float64. */
function columnSums(src: Float32Array, rows: number, cols: number): Float64Array {
  const acc = new Float64Array(cols);
  const c2 = 2 * cols;
  const c3 = 3 * cols;
  const c4 = 4 * cols;
  const c5 = 5 * cols;
  const c6 = 6 * cols;
  const c7 = 7 * cols;
  let r = 0;
  let o = 0;
  for (; r + 8 <= rows; r += 8, o += 8 * cols) {
    for (let c = 0; c < cols; c++) {
      const p = o + c;
      acc[c] =
        (acc[c] as number) +
        ((src[p] as number) +
          (src[p + cols] as number) +
          (src[p + c2] as number) +
          (src[p + c3] as number) +
          (src[p + c4] as number) +
          (src[p + c5] as number) +
          (src[p + c6] as number) +
          (src[p + c7] as number));
    }
  }
  for (; r < rows; r++, o += cols) {
    for (let c = 0; c < cols; c++) acc[c] = (acc[c] as number) + (src[o + c] as number);
  }
  return acc;
}
