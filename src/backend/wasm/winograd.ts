/**
 * 3x3 stride-1 convolutions by Winograd's minimal filtering, F(4x4, 3x3) (Lavin & Gray 2016): per
 * 4x4 output tile, 36 multiplies per input/output channel pair instead of 144. XNNPACK's direct
 * convolutions already run near the wasm SIMD128 peak (no FMA, 4 lanes), so fewer multiplies is
 * the way past it. The forward pass, the input gradient (the same convolution of dy with the
 * flipped, transposed filter) and the filter gradient are two heap loops
 * (`heap-simd-winograd.wat`) that take 32 tiles at a time through every step while they are in
 * cache:
 *   forward: V = B^T d B per 6x6 input tile, M_p = V_p . U_p for the 36 positions p (U = G g G^T,
 *   computed here once per call), y = A^T M A per 4x4 output tile with the bias and ReLU/ReLU6;
 *   filter gradient: dU_p += V_p^T . (A dy A^T)_p, then dW = G^T dU G here.
 * The loops read x in place as if zero-padded: a tile's 6x6 window inside x directly, one at its
 * border gathered with its zeros into the thread's scratch (no padded copy of x or dy per call).
 * Written through whole-tensor buffers instead (V and M for all tiles, XNNPACK for the products),
 * the transforms cost more than the products saved: at ~3-4 GB/s they moved 100-150 MB per
 * convolution. The forward pass splits by tiles; the filter gradient sums four fixed chunks of
 * tiles in a fixed order; so the numbers are the same on any thread count.
 * The rounding differs from a direct convolution (relative error ~1e-6 for typical activations);
 * `setWinograd(false)` restores XNNPACK's direct path.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { type Backend, call, type HeapBackend, type Shape4, type TensorInfo } from './common.js';
import { ACTIVATION, type Activation, type ConvForward } from './conv-geometry.js';
import { alignedScratch, runBalanced, runShares, share, threadsFor, wholeLines } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

/** G, the filter transform of F(4x4, 3x3) (6x3). */
const G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
] as const;

let enabled = true;

/**
 * Turns Winograd convolutions off (XNNPACK's direct convolutions everywhere, exactly as tfjs
 * rounds) or back on. On by default on wasm.
 */
export function setWinograd(on: boolean): void {
  enabled = on;
}

/**
 * Whether a convolution runs as Winograd F(4x4, 3x3): a 3x3 filter at stride 1 and dilation 1,
 * float32, input channels a multiple of 4 and output channels of 8 (the heap loops' vector
 * widths), padding of at most 2 on each side, and enough work to pay for the transforms: at least
 * 16 input and 16 output channels and 256 output tiles of 4x4 (below that, ResNet50V2's conv4 at
 * batch 8 with 128 tiles, the fixed costs ate the gain). Measured on 2 threads
 * (`bench/conv-grad.ts`): SimpleCNN's 32x64x64x32 -> 64 forward 70 -> 39 ms.
 */
export function useWinograd(info: tf.backend_util.Conv2DInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  return (
    enabled &&
    info.filterHeight === 3 &&
    info.filterWidth === 3 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.inChannels % 4 === 0 &&
    info.outChannels % 8 === 0 &&
    info.inChannels >= 16 &&
    info.outChannels >= 16 &&
    Math.max(top, bottom, left, right) <= 2 &&
    info.batchSize * Math.ceil(info.outHeight / 4) * Math.ceil(info.outWidth / 4) >= 256
  );
}

/** Tiles of 4x4 outputs: per image th x tw, t of them in all. */
interface Tiles {
  n: number;
  th: number;
  tw: number;
  t: number;
}

const tilesOf = (n: number, oh: number, ow: number): Tiles => {
  const th = Math.ceil(oh / 4);
  const tw = Math.ceil(ow / 4);
  return { n, th, tw, t: n * th * tw };
};

/**
 * The output gradient dy [n, oh, ow, c] zero-padded after its last row and column to whole tiles
 * [n, 4 th, 4 tw, c] for the filter gradient; dy itself where its sides are multiples of 4
 * (SimpleCNN's 64x64 and 32x32), which a copy cost 3-6 ms per filter gradient. (The loops read x
 * as if padded: nothing else is copied.)
 */
function padToTiles(b: Backend, dy: TensorInfo, tiles: Tiles): TensorInfo {
  const [, h, w] = dy.shape as Shape4;
  const bottom = 4 * tiles.th - h;
  const right = 4 * tiles.tw - w;
  if (bottom === 0 && right === 0) return dy;
  const paddings = [
    [0, 0],
    [0, bottom],
    [0, right],
    [0, 0],
  ];
  return call('PadV2', b, { x: dy }, { paddings, constantValue: 0 });
}

/**
 * Bytes of scratch per thread of the heap loops: 1152, 36 pointers, then V and M of 32 tiles per
 * position, 64 bytes apart, and a border tile's 6x6 window of x (see heap-simd-winograd.wat);
 * whole cache lines, so that threads share none.
 */
const scratchBytes = (ci: number, co: number) =>
  wholeLines(1296 + 36 * (32 * (ci + co) * 4 + 128) + 36 * ci * 4);

/**
 * JavaScript buffers the filter transforms reuse from call to call, by name: a fresh 1 MB
 * Float32Array per call cost more than the transform itself (its pages are faulted in and zeroed
 * on first touch; 7.5 ms for a 3x3x64x128 filter inside a convolution step against 1.9 ms alone).
 * They hold a few MB at most: Winograd applies where the tiles are many, so channels stay modest.
 */
const buffers = new Map<string, Float32Array>();
function reused(name: string, length: number): Float32Array {
  let buffer = buffers.get(name);
  if (!buffer || buffer.length < length) {
    buffer = new Float32Array(length);
    buffers.set(name, buffer);
  }
  return buffer.subarray(0, length);
}

/**
 * U [36, ci, co] = G g G^T of a [3, 3, ci, co] filter; with `flip`, of the input gradient's filter
 * g'[a, b, co, ci] = g[2 - a, 2 - b, ci, co] (giving [36, co, ci]). Written into `into` where
 * given (36 ci co values), else into a new array.
 */
export function filterTransform(
  g: Float32Array,
  ci: number,
  co: number,
  flip: boolean,
  into?: Float32Array,
): Float32Array {
  const k = ci * co;
  let src = g;
  if (flip) {
    src = reused('flipped', 9 * k);
    for (let tap = 0; tap < 9; tap++) {
      const from = (8 - tap) * k;
      const to = tap * k;
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) src[to + o * ci + i] = g[from + i * co + o] as number;
    }
  }
  // t[i, b] = sum_a G[i, a] g[a, b]; then u[i, j] = sum_b G[j, b] t[i, b]; each over k values.
  const t = reused('t', 18 * k);
  for (let i = 0; i < 6; i++)
    for (let col = 0; col < 3; col++)
      weightedRows(t, (i * 3 + col) * k, G[i] as readonly number[], src, col * k, 3 * k, k);
  const u = into ?? new Float32Array(36 * k);
  for (let i = 0; i < 6; i++)
    for (let j = 0; j < 6; j++)
      weightedRows(u, (i * 6 + j) * k, G[j] as readonly number[], t, i * 3 * k, k, k);
  return u;
}

/** dW [3, 3, ci, co] = G^T dU G from dU [36, ci, co]: the adjoint of {@link filterTransform}. */
export function filterTransformGrad(du: Float32Array, ci: number, co: number): Float32Array {
  const k = ci * co;
  // t[i, b] = sum_j G[j, b] dU[i, j]; then dW[a, b] = sum_i G[i, a] t[i, b].
  const t = reused('t', 18 * k);
  const column = (c: number) => G.map((r) => r[c] as number);
  for (let i = 0; i < 6; i++)
    for (let col = 0; col < 3; col++) weightedRows(t, (i * 3 + col) * k, column(col), du, i * 6 * k, k, k);
  const dw = new Float32Array(9 * k);
  for (let a = 0; a < 3; a++)
    for (let col = 0; col < 3; col++) weightedRows(dw, (a * 3 + col) * k, column(a), t, col * k, 3 * k, k);
  return dw;
}

/**
 * out[o + e] = sum over rows r of w[r] * src[s + r * step + e], for e < k, summed from 0 in row
 * order in float64 (3 or 6 rows, unrolled: the generic loop over `w` took ~3 ms per transform of
 * a 3x3x64x128 filter, twice per Winograd layer and step).
 */
function weightedRows(
  out: Float32Array,
  o: number,
  w: readonly number[],
  src: Float32Array,
  s: number,
  step: number,
  k: number,
): void {
  const [w0, w1, w2] = w as [number, number, number];
  const s1 = s + step;
  const s2 = s1 + step;
  if (w.length === 3) {
    for (let e = 0; e < k; e++)
      out[o + e] =
        0 + w0 * (src[s + e] as number) + w1 * (src[s1 + e] as number) + w2 * (src[s2 + e] as number);
    return;
  }
  const [, , , w3, w4, w5] = w as [number, number, number, number, number, number];
  const s3 = s2 + step;
  const s4 = s3 + step;
  const s5 = s4 + step;
  for (let e = 0; e < k; e++)
    out[o + e] =
      0 +
      w0 * (src[s + e] as number) +
      w1 * (src[s1 + e] as number) +
      w2 * (src[s2 + e] as number) +
      w3 * (src[s3 + e] as number) +
      w4 * (src[s4 + e] as number) +
      w5 * (src[s5 + e] as number);
}

/**
 * y [n, oh, ow, co] = the correlation of x [n, h, w, ci], zero-padded by `top` and `left`, with a
 * 3x3 filter given by its transform `u` [36, ci, co]; plus `bias` [co], then `activation`.
 * Null where the heap loops are not available.
 */
export function winogradConv(
  backend: Backend,
  x: TensorInfo,
  u: Float32Array,
  co: number,
  top: number,
  left: number,
  oh: number,
  ow: number,
  bias: TensorInfo | null = null,
  activation: Activation = 'linear',
): TensorInfo | null {
  const b = backend as HeapBackend;
  const simd = heapSimd(b);
  if (!simd) return null;
  const [n, h, w, ci] = x.shape as Shape4;
  const tiles = tilesOf(n, oh, ow);
  const ut = b.makeOutput([36, ci, co], 'float32');
  b.typedArrayFromHeap(ut).set(u);
  const y = b.makeOutput([n, oh, ow, co], 'float32');
  const threads = threadsFor(b, Math.ceil(tiles.t / 32));
  const per = scratchBytes(ci, co);
  const { scratch, at: base } = alignedScratch(b, threads * per);
  const args = [
    b.getMemoryOffset(x.dataId),
    b.getMemoryOffset(ut.dataId),
    b.getMemoryOffset(y.dataId),
    bias ? b.getMemoryOffset(bias.dataId) : 0,
    ACTIVATION[activation],
    h,
    w,
    ci,
    co,
    oh,
    ow,
    top,
    left,
  ];
  // Whole blocks of 32 tiles per chunk, taken by whichever thread is free; the argument after
  // `args` is the running thread's scratch.
  const scratches = Array.from({ length: threads }, (_, i) => base + i * per);
  runShares(
    b,
    'wino_forward',
    simd,
    threads,
    Math.ceil(tiles.t / 32),
    1,
    (from, to) => [...args, 0, 32 * from, Math.min(tiles.t, 32 * to)],
    { arg: args.length, values: scratches },
  );
  for (const t of [ut, scratch]) b.disposeData(t.dataId);
  return y;
}

/** Chunks of tiles whose filter gradients are summed separately, then in this order. */
const CHUNKS = 4;

/**
 * dx of a convolution by Winograd where {@link useWinograd} says so (else null): the correlation
 * of dy, padded by 2 - pad, with g'[a, b, co, ci] = g[2 - a, 2 - b, ci, co].
 */
export function winogradInputGrad(
  b: Backend,
  dy: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  const u = transformedFilter(b, dy, filter, info, true);
  if (!u) return null;
  const { top, left } = info.padInfo;
  return winogradConv(b, dy, u, info.inChannels, 2 - top, 2 - left, info.inHeight, info.inWidth);
}

/**
 * dW [3, 3, ci, co] of a convolution by Winograd where {@link useWinograd} says so (else null),
 * from x [n, h, w, ci] and the output gradient dy [n, oh, ow, co].
 */
export function winogradFilterGrad(
  backend: Backend,
  x: TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  const b = backend as HeapBackend;
  const simd = heapSimd(b);
  if (!simd || !useWinograd(info) || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const { top, left } = info.padInfo;
  const [n, oh, ow, co] = dy.shape as Shape4;
  const ci = x.shape[3] as number;
  const tiles = tilesOf(n, oh, ow);
  const [, h, w] = x.shape as Shape4;
  const dyp = padToTiles(b, dy, tiles);
  const k = 36 * ci * co;
  // The chunks' dU (k floats, a multiple of 16) from a cache-line boundary, then each thread's scratch.
  const threads = threadsFor(b, CHUNKS);
  const per = scratchBytes(ci, co);
  const { scratch, at: duBase } = alignedScratch(b, CHUNKS * k * 4 + threads * per);
  new Float32Array(b.typedArrayFromHeap(scratch).buffer, duBase, CHUNKS * k).fill(0);
  const base = duBase + CHUNKS * k * 4;
  const [xBase, dyBase] = [x, dyp].map((t) => b.getMemoryOffset(t.dataId)) as [number, number];
  // Each chunk sums its tiles into its own dU on whichever thread is free; the argument before the
  // tile range is the running thread's scratch.
  const groups: number[][][] = [];
  for (let c = 0; c < CHUNKS; c++)
    groups.push([
      [xBase, dyBase, duBase + c * k * 4, h, w, top, left, ci, co, oh, ow, 0, ...share(tiles.t, CHUNKS, c)],
    ]);
  const scratches = Array.from({ length: threads }, (_, i) => base + i * per);
  runBalanced(b, 'wino_filter_grad', simd, groups, { arg: 11, values: scratches });
  for (let c = 1; c < CHUNKS; c++) simd.axpy(duBase, duBase + c * k * 4, k, 1, 0);
  // A copy: JavaScript reads a shared heap's typed arrays several times slower.
  const sum = reused('dU', k);
  sum.set(new Float32Array(b.typedArrayFromHeap(scratch).buffer, duBase, k));
  if (dyp !== dy) b.disposeData(dyp.dataId);
  b.disposeData(scratch.dataId);
  const out = b.makeOutput([3, 3, ci, co], 'float32');
  b.typedArrayFromHeap(out).set(filterTransformGrad(sum, ci, co));
  return out;
}

/**
 * The filter's values as U [36, ci, co] (`flip`: the input gradient's, [36, co, ci]) where the
 * convolution runs as Winograd, else null.
 */
function transformedFilter(
  b: Backend,
  x: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo | null,
  flip = false,
): Float32Array | null {
  if (!info || x.dtype !== 'float32' || filter.dtype !== 'float32' || !useWinograd(info)) return null;
  const g = (b as HeapBackend).typedArrayFromHeap(filter);
  const k = info.inChannels * info.outChannels;
  const copy = reused('g', 9 * k);
  copy.set(g);
  return filterTransform(copy, info.inChannels, info.outChannels, flip, reused('U', 36 * k));
}

/** The forward pass by Winograd where {@link useWinograd} says so, else null. */
export const winogradForward: ConvForward = (b, x, filter, info, bias, activation) => {
  const u = transformedFilter(b, x, filter, info);
  if (!u) return null;
  const { top, left } = info.padInfo;
  return winogradConv(b, x, u, info.outChannels, top, left, info.outHeight, info.outWidth, bias, activation);
};
