import * as tf from '@tensorflow/tfjs-core';
import { CHANNEL_PAIR_KERNEL, type ChannelPairAttrs, CLIP_GRAD_KERNEL } from '../kernel-names.js';
import { floatBits, type HeapBackend, type KernelArgs, original, type TensorInfo } from './common.js';
import { type ParallelFunction, runShares, threadsFor } from './heap-parallel.js';
import { type HeapSimd, heapSimd } from './heap-simd.js';

/**
 * Identity without a copy: the result shares the input's buffer and holds a reference of its
 * own, as on the cpu backend (tensors are immutable). While gradients are recorded, tfjs clones
 * every tensor a gradient will need, and wasm's shipped Identity copied each one: 662 copies,
 * ~0.4 s of a 4 s ResNet50V2 step.
 */
export function identity({ inputs, backend }: KernelArgs): TensorInfo {
  const { x } = inputs as { x: TensorInfo };
  const b = backend as HeapBackend & { incRef?(dataId: object): void };
  if (x.dtype === 'string' || typeof b.incRef !== 'function') return original('Identity', b, { x });
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * A permutation as the fewest axes: size-1 axes dropped and runs of axes that stay adjacent
 * merged, e.g. [N, H, W, C] with perm [3, 0, 1, 2] is [N*H*W, C] with perm [1, 0].
 */
export function collapsePermutation(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const groups: number[][] = [];
  for (const axis of perm) {
    if (shape[axis] === 1) continue;
    const last = groups.at(-1);
    if (last && (last.at(-1) as number) + 1 === axis) last.push(axis);
    else groups.push([axis]);
  }
  const inInputOrder = [...groups].sort((g, h) => (g[0] as number) - (h[0] as number));
  return {
    shape: inInputOrder.map((g) => g.reduce((p, a) => p * (shape[a] as number), 1)),
    perm: groups.map((g) => inInputOrder.indexOf(g)),
  };
}

/**
 * Transposes that {@link collapsePermutation} reduces to a (batched) 2D transpose, an outer/inner
 * swap around a middle axis ([N, H, W, C] -> [C, H, W, N]) or a swap of whole rows
 * ([N, H, W, C] -> [H, W, N, C]) run on the heap in SIMD: 4x4 blocks, or 16-byte row copies.
 * wasm's generic kernel took ~9 ns per value on [32768, 128].
 */
export function transpose({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { perm } = attrs as { perm: number[] };
  const simd = heapSimd(b);
  const collapsed = collapsePermutation(x.shape, perm);
  const p = collapsed.perm.join(',');
  if (
    !simd ||
    (x.dtype !== 'float32' && x.dtype !== 'int32') ||
    !['1,0', '0,2,1', '2,1,0', '1,0,2'].includes(p)
  )
    return original('Transpose', b, { x }, attrs);
  const out = b.makeOutput(
    perm.map((a) => x.shape[a] as number),
    x.dtype,
  );
  const [src, dst] = [b.getMemoryOffset(x.dataId), b.getMemoryOffset(out.dataId)];
  const [d0, d1, d2 = 1] = collapsed.shape as [number, number, number?];
  if (p === '1,0') simd.transpose_2d(src, dst, 1, d0, d1);
  else if (p === '0,2,1') simd.transpose_2d(src, dst, d0, d1, d2);
  else if (p === '2,1,0') simd.transpose_210(src, dst, d0, d1, d2);
  else simd.swap_rows_102(src, dst, d0, d1, d2);
  return out;
}

/**
 * Runs an elementwise heap loop over `n` values: split over the heap pool in chunks of whole cache
 * lines (`runShares`) when the `touched` values (reads and writes) reach the pooled minimum
 * (`threadsFor`), else on this thread; `call(i0, count)` gives each call.
 * Each value is computed alone, so any split gives the same numbers.
 */
function runElementwise(
  b: HeapBackend,
  fn: ParallelFunction,
  simd: HeapSimd,
  n: number,
  touched: number,
  call: (i0: number, count: number) => number[],
): void {
  const lines = Math.ceil(n / 16);
  runShares(b, fn, simd, threadsFor(b, n, touched), lines, 1, (l0, l1) => {
    const i0 = l0 * 16;
    return call(i0, Math.min(n, l1 * 16) - i0);
  });
}

/**
 * Add of a per-channel vector ([C] or [1, ..., 1, C]) to a float32 [..., C] tensor (a layer's bias,
 * either order) on the heap, as x * 1 + b with `affine_channels` (x * 1 is x exactly, so the sums
 * are Add's), rows split over the heap pool: wasm's broadcasting Add took 8.5 ms on
 * [32, 128, 128, 32] (a user-built CNN's first convolution). Every other Add is the shipped one.
 */
export function add({ inputs, backend }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { a, b: bb } = inputs as { a: TensorInfo; b: TensorInfo };
  const simd = heapSimd(b);
  const vector = (v: TensorInfo, c: number) =>
    v.shape.at(-1) === c && v.shape.slice(0, -1).every((d) => d === 1) && v.shape.length >= 1;
  const big = tf.util.sizeFromShape(a.shape) >= tf.util.sizeFromShape(bb.shape) ? a : bb;
  const small = big === a ? bb : a;
  const c = big.shape.at(-1) ?? 0;
  const n = tf.util.sizeFromShape(big.shape);
  if (
    !simd ||
    a.dtype !== 'float32' ||
    bb.dtype !== 'float32' ||
    big.shape.length < 2 ||
    c === 0 ||
    n === c ||
    small.shape.length > big.shape.length ||
    !vector(small, c)
  )
    return original('Add', b, { a, b: bb });
  // x * 1 is x exactly, so the sums are Add's.
  return channelPass(
    b,
    simd,
    'affine_channels',
    big,
    new Array(c).fill(1),
    Array.from(b.typedArrayFromHeap(small)),
  );
}

/**
 * `affine_channels` (x * a[j] + b[j]) or `sub_div_channels` ((x - a[j]) / b[j]) over the float32
 * [..., C] tensor x, a and b one value per channel, into a new tensor: rows of lcm(4, C) values,
 * so that 3 channels stay in whole vectors, the values repeated to that width and a last partial
 * row taking their prefix; the rows split over the heap pool for large tensors. Each value is
 * computed alone, so any split gives the same numbers.
 */
function channelPass(
  b: HeapBackend,
  simd: HeapSimd,
  fn: 'affine_channels' | 'sub_div_channels',
  x: TensorInfo,
  a: readonly number[],
  bv: readonly number[],
): TensorInfo {
  const c = a.length;
  const n = tf.util.sizeFromShape(x.shape);
  const out = b.makeOutput([...x.shape], 'float32');
  const width = c % 4 === 0 ? c : c % 2 === 0 ? 2 * c : 4 * c;
  const params = b.makeOutput([2 * width], 'float32');
  const pv = b.typedArrayFromHeap(params);
  for (let j = 0; j < width; j++) {
    pv[j] = a[j % c] as number;
    pv[width + j] = bv[j % c] as number;
  }
  const [px, pout, pa] = [x, out, params].map((t) => b.getMemoryOffset(t.dataId)) as [number, number, number];
  const rows = Math.floor(n / width);
  runShares(b, fn, simd, threadsFor(b, rows, 2 * n), rows, 1, (r0, r1) => [
    px + r0 * width * 4,
    pout + r0 * width * 4,
    pa,
    pa + width * 4,
    r1 - r0,
    width,
  ]);
  const tail = n - rows * width;
  if (tail > 0) simd[fn](px + rows * width * 4, pout + rows * width * 4, pa, pa + width * 4, 1, tail);
  b.disposeData(params.dataId);
  return out;
}

/**
 * dx = lo <= x <= hi ? dy : 0 in one pass (tfjs composes 5 ops: 2 compares, and, zeros, select),
 * split over the heap pool for large tensors (SimpleCNN's [32, 128, 128, 32]: 10.4 -> 7.3 ms).
 */
export function clipByValueGrad({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { clipValueMin: lo, clipValueMax: hi } = attrs as { clipValueMin: number; clipValueMax: number };
  const n = tf.util.sizeFromShape(x.shape);
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || tf.util.sizeFromShape(dy.shape) !== n)
    throw new Error(
      `medimg-classify: ${CLIP_GRAD_KERNEL} needs float32 x and dy of one size; got x ${x.dtype} [${x.shape}], dy ${dy.dtype} [${dy.shape}]`,
    );
  const out = b.makeOutput(x.shape, 'float32');
  const simd = heapSimd(b);
  if (simd) {
    const [px, pdy, pout] = [x, dy, out].map((t) => b.getMemoryOffset(t.dataId)) as number[];
    const [loBits, hiBits] = floatBits(lo, hi);
    runElementwise(b, 'clip_grad', simd, n, 3 * n, (i0, count) => [
      (px as number) + i0 * 4,
      (pdy as number) + i0 * 4,
      (pout as number) + i0 * 4,
      count,
      loBits as number,
      hiBits as number,
    ]);
    return out;
  }
  // Views after makeOutput: allocating may grow (and move) the heap.
  const vx = b.typedArrayFromHeap(x);
  const vdy = b.typedArrayFromHeap(dy);
  const vout = b.typedArrayFromHeap(out);
  const [flo, fhi] = [Math.fround(lo), Math.fround(hi)];
  for (let i = 0; i < n; i++) {
    const v = vx[i] as number;
    vout[i] = v >= flo && v <= fhi ? (vdy[i] as number) : 0;
  }
  return out;
}

/**
 * {@link CHANNEL_PAIR_KERNEL}: Rescale's `x * a + b` (`affine_channels`) or Normalize's
 * `(x - a) / b` (`sub_div_channels`) per channel in one pass over the image, where the two
 * shipped ops made two (a 224x224x3 image: ~0.1 ms each). The same float32 operations in the same
 * order, so the same bits ({@link channelPass}). Without the heap loops, the same arithmetic in
 * JavaScript (Math.fround after each operation).
 */
export function channelPair({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { op, a, b: bv } = attrs as unknown as ChannelPairAttrs;
  const c = x.shape.at(-1) ?? 0;
  if (
    x.dtype !== 'float32' ||
    c === 0 ||
    a.length !== c ||
    bv.length !== c ||
    (op !== 'mul-add' && op !== 'sub-div')
  )
    throw new Error(
      `medimg-classify: ${CHANNEL_PAIR_KERNEL} needs a float32 [..., C] tensor and C values of a and b for 'mul-add' or 'sub-div'; got ${x.dtype} [${x.shape}], ${a.length} and ${bv.length} values, op '${String(op)}'`,
    );
  const simd = heapSimd(b);
  if (simd) return channelPass(b, simd, op === 'mul-add' ? 'affine_channels' : 'sub_div_channels', x, a, bv);
  const n = tf.util.sizeFromShape(x.shape);
  const out = b.makeOutput([...x.shape], 'float32');
  const src = b.typedArrayFromHeap(x);
  const dst = b.typedArrayFromHeap(out);
  const [fa, fb] = [a, bv].map((v) => v.map(Math.fround)) as [number[], number[]];
  for (let i = 0; i < n; i++) {
    const j = i % c;
    const v = src[i] as number;
    dst[i] =
      op === 'mul-add'
        ? Math.fround(v * (fa[j] as number)) + (fb[j] as number)
        : Math.fround(v - (fa[j] as number)) / (fb[j] as number);
  }
  return out;
}
