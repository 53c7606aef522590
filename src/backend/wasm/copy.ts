import * as tf from '@tensorflow/tfjs-core';
import {
  ERASE_RECT_KERNEL,
  type EraseRectAttrs,
  PIXELS_TO_FLOAT_KERNEL,
  type PixelsToFloatAttrs,
} from '../kernel-names.js';
import { type HeapBackend, type KernelArgs, normAxes, original, type TensorInfo } from './common.js';
import { type HeapSimd, heapSimd } from './heap-simd.js';

/** Copies `n` values from `src[s..]` to `dst[d..]`: a loop for short runs, `set` for long ones. */
function copyRun(dst: Words, d: number, src: Words, s: number, n: number): void {
  if (n >= 64) dst.set(src.subarray(s, s + n), d);
  else for (let j = 0; j < n; j++) dst[d + j] = src[s + j] as number;
}

const heapDtypes = new Set<tf.DataType>(['float32', 'int32', 'bool']);

/** A tensor's values on the heap as the integers of its bytes: copies move bits, not numbers. */
type Words = Int32Array | Uint8Array;

/**
 * `t`'s values on the heap as 4-byte integers (float32 and int32) or bytes (bool): a copy through
 * them moves bits, whatever the values (NaN payloads included), with one array type per dtype size.
 */
function words(b: HeapBackend, t: TensorInfo): Words {
  const v = b.typedArrayFromHeap(t) as tf.TypedArray;
  return t.dtype === 'bool' ? (v as Uint8Array) : new Int32Array(v.buffer, v.byteOffset, v.length);
}

/** Row-major strides of `shape`, in values (the last axis has stride 1). */
function stridesOf(shape: readonly number[]): number[] {
  return shape.map((_, a) => shape.slice(a + 1).reduce((p, d) => p * d, 1));
}

/** Calls `visit(o, index)` for each multi-index of an index space of shape `dims`, row-major. */
function forEachIndex(dims: readonly number[], visit: (o: number, index: readonly number[]) => void): void {
  const count = dims.reduce((p, d) => p * d, 1);
  const index = new Array<number>(dims.length).fill(0);
  for (let o = 0; o < count; o++) {
    visit(o, index);
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++(index[a] as number) < (dims[a] as number)) break;
      index[a] = 0;
    }
  }
}

/**
 * Reverse on the heap: the axes after the last reversed one stay contiguous and are copied as
 * runs, the outer positions are walked with the reversed ones mirrored. A pure copy (the
 * values are bit-identical to the shipped kernel's). The shipped kernel computes each value's
 * coordinates apart: ~60 ns per value, 9 ms to mirror one 224x224x3 image (`RandomHorizontalFlip`
 * at every training step) and 106 ms for a 3x3x512x512 filter.
 */
export function reverse({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { dims } = attrs as { dims: number | number[] };
  if (!heapDtypes.has(x.dtype) || typeof b.typedArrayFromHeap !== 'function')
    return original('Reverse', b, { x }, attrs);
  const shape = x.shape;
  const axes = normAxes(dims, shape.length).filter((a) => (shape[a] as number) > 1);
  const out = b.makeOutput([...shape], x.dtype);
  // Views after makeOutput: allocating may grow (and move) the heap.
  const src = words(b, x);
  const dst = words(b, out);
  if (axes.length === 0) {
    dst.set(src);
    return out;
  }
  const last = axes.at(-1) as number;
  const run = shape.slice(last + 1).reduce((p, d) => p * d, 1);
  // Rows: the axes before the last reversed one, walked with the reversed ones mirrored; in each
  // row the last reversed axis is read backwards, one run per position.
  const rows = shape.slice(0, last);
  const mirrored = rows.map((_, a) => axes.includes(a));
  const len = shape[last] as number;
  // Short runs of 4-byte values (a flip of HWC images: runs of C) by the heap loop.
  const loops = run < 64 ? shortRunLoops(b, x) : null;
  const [srcAt, dstAt] = [x, out].map((t) => b.getMemoryOffset(t.dataId)) as [number, number];
  const rowStrides = rows.map((_, a) => shape.slice(a + 1, last + 1).reduce((p, d) => p * d, 1));
  let d = 0;
  forEachIndex(rows, (_, index) => {
    let from = 0;
    for (let a = 0; a < rows.length; a++) {
      const i = index[a] as number;
      from += (mirrored[a] ? (rows[a] as number) - 1 - i : i) * (rowStrides[a] as number);
    }
    if (loops) loops.reverse_runs(srcAt + from * run * 4, dstAt + d * 4, len, run * 4);
    else for (let i = len - 1; i >= 0; i--) copyRun(dst, d + (len - 1 - i) * run, src, (from + i) * run, run);
    d += len * run;
  });
  return out;
}

/**
 * The heap loops that copy runs of 4-byte values (heap-simd-train.wat), for `x`'s dtype, or null
 * (bool, or no SIMD module). JavaScript moves short runs at ~1.5-3 ns a value: 0.6 ms to flip one
 * 224x224x3 image, runs of 3.
 */
function shortRunLoops(b: HeapBackend, x: TensorInfo): HeapSimd | null {
  return x.dtype === 'bool' ? null : heapSimd(b);
}

/**
 * GatherV2 (batchDims 0) on the heap: for each outer position and each index, one contiguous run
 * of the inner axes. Indices out of range go to the shipped kernel, which defines what they do.
 * The shipped kernel took ~60 ns per value (9 ms for one 224x224x3 `RandomRotation`).
 */
export function gatherV2({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
  const { axis, batchDims = 0 } = attrs as { axis: number; batchDims?: number };
  if (
    !heapDtypes.has(x.dtype) ||
    indices.dtype !== 'int32' ||
    batchDims !== 0 ||
    typeof b.typedArrayFromHeap !== 'function'
  )
    return original('GatherV2', b, { x, indices }, attrs);
  const rank = x.shape.length;
  const ax = tf.util.parseAxisParam(axis, x.shape)[0] as number;
  const size = x.shape[ax] as number;
  const idx = b.typedArrayFromHeap(indices);
  for (let j = 0; j < idx.length; j++) {
    const v = idx[j] as number;
    if (v < 0 || v >= size) return original('GatherV2', b, { x, indices }, attrs);
  }
  const outer = x.shape.slice(0, ax).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(ax + 1, rank).reduce((p, d) => p * d, 1);
  const out = b.makeOutput([...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)], x.dtype);
  const src = words(b, x);
  const dst = words(b, out);
  const ids = b.typedArrayFromHeap(indices);
  const n = ids.length;
  const loops = inner < 64 ? shortRunLoops(b, x) : null;
  if (loops) {
    const at = (t: TensorInfo) => b.getMemoryOffset(t.dataId);
    loops.gather_runs(at(x), at(indices), at(out), outer, size, n, inner * 4);
    return out;
  }
  let d = 0;
  for (let o = 0; o < outer; o++) {
    const base = o * size;
    if (inner === 1) for (let j = 0; j < n; j++) dst[d++] = src[base + (ids[j] as number)] as number;
    else
      for (let j = 0; j < n; j++, d += inner)
        copyRun(dst, d, src, (base + (ids[j] as number)) * inner, inner);
  }
  return out;
}

/**
 * Slice on the heap: the axes after the last one cut are taken whole, so each output row is one
 * contiguous run of the input. A pure copy. The shipped kernel took 435 ms to crop a
 * [32, 114, 114, 48] activation to [32, 113, 113, 48] (MobileNetV2's stride-2 depthwise gradient):
 * ~5 ns per value.
 */
export function slice({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { begin: beginAttr, size: sizeAttr } = attrs as { begin: number | number[]; size: number | number[] };
  if (!heapDtypes.has(x.dtype) || typeof b.typedArrayFromHeap !== 'function')
    return original('Slice', b, { x }, attrs);
  const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, beginAttr, sizeAttr) as [
    number[],
    number[],
  ];
  tf.slice_util.assertParamsValid(x as unknown as tf.Tensor, begin, size);
  const shape = x.shape;
  const rank = shape.length;
  const out = b.makeOutput([...size], x.dtype);
  if (size.some((d) => d === 0)) return out;
  const src = words(b, x);
  const dst = words(b, out);
  if (rank === 0) {
    dst[0] = src[0] as number;
    return out;
  }
  // The last axis that is cut: every axis after it is whole, so a run spans it and them.
  let cut = rank - 1;
  while (cut > 0 && begin[cut] === 0 && size[cut] === shape[cut]) cut--;
  const strides = stridesOf(shape);
  const run = (size[cut] as number) * (strides[cut] as number);
  const first = (begin[cut] as number) * (strides[cut] as number);
  forEachIndex(size.slice(0, cut), (o, index) => {
    let from = first;
    for (let a = 0; a < cut; a++)
      from += ((begin[a] as number) + (index[a] as number)) * (strides[a] as number);
    copyRun(dst, o * run, src, from, run);
  });
  return out;
}

/**
 * PadV2 (constant padding) on the heap: the output is filled with the constant, then the input
 * is copied in runs that span the axes after the last padded one. The shipped kernel moved a
 * 3-channel image one value at a time (16 ms to pad a [32, 224, 224, 3] batch by one row and
 * column, MobileNetV2's stem; 8 ms here); its paths for more channels are faster than this one
 * and are kept.
 */
export function padV2({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { paddings, constantValue } = attrs as { paddings: [number, number][]; constantValue: number };
  const shape = x.shape;
  const rank = shape.length;
  let last = rank - 1;
  while (last >= 0 && paddings[last]![0] === 0 && paddings[last]![1] === 0) last--;
  const srcStrides = stridesOf(shape);
  // The shipped kernel is fast (about twice this loop's speed) where the last axis holds more
  // than 4 values; it is slow only for images' 1-4 channels.
  if (
    !heapDtypes.has(x.dtype) ||
    typeof b.typedArrayFromHeap !== 'function' ||
    last < 0 ||
    (shape[rank - 1] as number) > 4 ||
    (shape[last] as number) * (srcStrides[last] as number) < 16 ||
    shape.some((d) => d === 0)
  )
    return original('PadV2', b, { x }, attrs);
  const outShape = shape.map((d, a) => d + paddings[a]![0] + paddings[a]![1]);
  const out = b.makeOutput(outShape, x.dtype);
  // The padding value as the output's dtype (the word views below would store its integer part).
  b.typedArrayFromHeap(out).fill(constantValue);
  const src = words(b, x);
  const dst = words(b, out);
  const dstStrides = stridesOf(outShape);
  const run = (shape[last] as number) * (srcStrides[last] as number);
  const first = paddings[last]![0] * (dstStrides[last] as number);
  forEachIndex(shape.slice(0, last), (o, index) => {
    let to = first;
    for (let a = 0; a < last; a++) to += ((index[a] as number) + paddings[a]![0]) * (dstStrides[a] as number);
    copyRun(dst, to, src, o * run, run);
  });
  return out;
}

/**
 * Tile (and `broadcastTo`, which tfjs runs as Tile) on the heap: the axes after the last repeated
 * one are one contiguous block of the input, copied `reps` times per outer position. The shipped
 * kernel computes every value's coordinates apart: 225 ms to broadcast a [32, 1, 1, 1280] gradient
 * over MobileNetV2's 7x7 map (the average pooling's gradient).
 */
export function tile({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { reps } = attrs as { reps: number[] };
  const shape = x.shape;
  if (!heapDtypes.has(x.dtype) || typeof b.typedArrayFromHeap !== 'function' || reps.length !== shape.length)
    return original('Tile', b, { x }, attrs);
  const out = b.makeOutput(
    shape.map((d, a) => d * (reps[a] as number)),
    x.dtype,
  );
  if (out.shape.some((d) => d === 0)) return out;
  const src = words(b, x);
  const dst = words(b, out);
  let last = shape.length - 1;
  while (last >= 0 && reps[last] === 1) last--;
  if (last < 0) {
    dst.set(src);
    return out;
  }
  // The repeated axis and the ones after it: a block of the input, laid down reps[last] times.
  const block = shape.slice(last).reduce((p, d) => p * d, 1);
  const times = reps[last] as number;
  const strides = stridesOf(shape);
  const outer = out.shape.slice(0, last);
  let d = 0;
  forEachIndex(outer, (_, index) => {
    let from = 0;
    for (let a = 0; a < last; a++)
      from += ((index[a] as number) % (shape[a] as number)) * (strides[a] as number);
    for (let t = 0; t < times; t++, d += block) copyRun(dst, d, src, from, block);
  });
  return out;
}

/**
 * {@link PIXELS_TO_FLOAT_KERNEL} on the heap: the bytes are written to a scratch buffer as they
 * are and widened to float32 by a SIMD loop (`bytes_to_float`), else by a JavaScript loop. A
 * 224x224x3 image: ~0.35 ms as Float32Array.from plus a 600 KB copy, ~0.05 ms here.
 */
export function pixelsToFloat({ backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { pixels, shape } = attrs as unknown as PixelsToFloatAttrs;
  if (!(pixels instanceof Uint8Array) || tf.util.sizeFromShape(shape) !== pixels.length)
    throw new Error(
      `medimg-classify: ${PIXELS_TO_FLOAT_KERNEL} needs a Uint8Array of [${shape}] values; got ${pixels?.length}`,
    );
  const out = b.makeOutput([...shape], 'float32');
  const simd = heapSimd(b);
  if (!simd || pixels.length === 0) {
    b.typedArrayFromHeap(out).set(pixels);
    return out;
  }
  const scratch = b.makeOutput([Math.ceil(pixels.length / 4)], 'float32');
  const bytes = b.typedArrayFromHeap(scratch);
  new Uint8Array(bytes.buffer, bytes.byteOffset, pixels.length).set(pixels);
  simd.bytes_to_float(b.getMemoryOffset(scratch.dataId), b.getMemoryOffset(out.dataId), pixels.length);
  b.disposeData(scratch.dataId);
  return out;
}

/**
 * {@link ERASE_RECT_KERNEL} on the heap: the images copied whole, then each row of the rectangle
 * overwritten from `block`, where `erase` built the result from four slices, the block and two
 * concatenations (~0.2 ms per erased 224x224x3 image).
 */
export function eraseRect({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x, block } = inputs as { x: TensorInfo; block: TensorInfo };
  const { top, left } = attrs as unknown as EraseRectAttrs;
  const [n, H, W, C] = x.shape as [number, number, number, number];
  const [h, w, c] = block.shape as [number, number, number];
  if (
    x.shape.length !== 4 ||
    block.shape.length !== 3 ||
    x.dtype !== 'float32' ||
    block.dtype !== 'float32' ||
    c !== C ||
    !Number.isInteger(top) ||
    !Number.isInteger(left) ||
    top < 0 ||
    left < 0 ||
    top + h > H ||
    left + w > W
  )
    throw new Error(
      `medimg-classify: ${ERASE_RECT_KERNEL} needs float32 images [n, H, W, C] and a block [h, w, C] inside them at (top, left); got ${x.dtype} [${x.shape}], ${block.dtype} [${block.shape}] at (${top}, ${left})`,
    );
  const out = b.makeOutput([n, H, W, C], 'float32');
  // Views after makeOutput: allocating may grow (and move) the heap.
  const dst = b.typedArrayFromHeap(out);
  const values = b.typedArrayFromHeap(block);
  dst.set(b.typedArrayFromHeap(x));
  const row = w * C;
  for (let i = 0; i < n; i++)
    for (let r = 0; r < h; r++)
      dst.set(values.subarray(r * row, (r + 1) * row), ((i * H + top + r) * W + left) * C);
  return out;
}
