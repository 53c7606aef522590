import type * as tf from '@tensorflow/tfjs-core';
import {
  type Backend,
  type ConvAttrs,
  call,
  type HeapBackend,
  type KernelArgs,
  original,
  reshape,
  type Shape4,
  scoped,
  type TensorInfo,
} from './common.js';
import { convInfo, fullCorrelation, paddedInput, tap } from './conv-geometry.js';
import { MAX_CALLS, panelShares, runBalanced, runSpread, share, threadsFor } from './heap-parallel.js';
import { type HeapSimd, heapSimd } from './heap-simd.js';
import { gemmRows } from './matmul.js';
import { winogradFilterGrad, winogradInputGrad } from './winograd.js';

/**
 * dW as a forward convolution on XNNPACK, with the roles swapped: the batch of x becomes the
 * contracted channel axis, its channels the batch, and dy the filter.
 *   dW[kh, kw, ci, co] = sum over n, oh, ow of xp[n, oh*s + kh, ow*s + kw, ci] * dy[n, oh, ow, co]
 * is conv2d(xp^T [Ci, Hp, Wp, N], dy^T [OH, OW, N, Co]) with stride 1 and dilation s, giving
 * [Ci, KH, KW, Co]. No im2col is materialised, and strided convolutions need no strided slices.
 */
function filterGradByConv(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  x: TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo {
  const xp = paddedInput(b, keep, x, info);
  const xt = keep(call('Transpose', b, { x: xp }, { perm: [3, 1, 2, 0] }));
  const dyt = keep(call('Transpose', b, { x: dy }, { perm: [1, 2, 0, 3] }));
  const out = keep(
    call(
      'Conv2D',
      b,
      { x: xt, filter: dyt },
      {
        strides: [info.dilationHeight, info.dilationWidth],
        pad: 'valid',
        dataFormat: 'NHWC',
        dilations: [info.strideHeight, info.strideWidth],
      },
    ),
  );
  return call('Transpose', b, { x: out }, { perm: [1, 2, 0, 3] });
}

/**
 * dW = im2col(x)^T . dy as one matrix multiply. wasm's BatchMatMul is fast only without
 * transpose flags, so the transposed im2col [KH*KW*Ci, N*OH*OW] is built directly from a
 * channels-first copy of x.
 */
function filterGradByMatMul(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  x: TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  filterShape: Shape4,
): TensorInfo {
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const dy2 = keep(reshape(b, dy, [1, rows, info.outChannels]));
  const xp = paddedInput(b, keep, x, info);
  const xt = keep(call('Transpose', b, { x: xp }, { perm: [3, 0, 1, 2] })); // [Ci, N, Hp, Wp]
  const taps: TensorInfo[] = [];
  for (let kh = 0; kh < info.filterHeight; kh++) {
    for (let kw = 0; kw < info.filterWidth; kw++) taps.push(keep(tapChannelsFirst(b, xt, info, kh, kw)));
  }
  const colsT = taps.length === 1 ? (taps[0] as TensorInfo) : keep(call('Concat', b, taps, { axis: 0 }));
  const a = keep(reshape(b, colsT, [1, info.filterHeight * info.filterWidth * info.inChannels, rows]));
  const dw = keep(call('BatchMatMul', b, { a, b: dy2 }, { transposeA: false, transposeB: false }));
  return reshape(b, dw, filterShape);
}

/**
 * dW on the heap, one SIMD pass per tap (`conv_filter_grad` in heap-simd.wat): for each tap
 * (kh, kw), the [Ci, Co] block accumulates x[n, oh*s + kh - pad, ow*s + kw - pad, :]^T dy[n, oh, ow, :]
 * as outer products held in registers, reading x and dy where they lie: no padded copy, no
 * transposes, no repacking of dy (which XNNPACK did for both formulations above: 8.4 GFLOP/s on
 * SimpleCNN's 32x64x64x32 -> 64). Needs float32, Ci a multiple of 4 and Co of 8.
 */
function filterGradOnHeap(
  b: Backend,
  x: TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  filterShape: Shape4,
): TensorInfo | null {
  const simd = heapSimd(b);
  const ci = info.inChannels;
  const co = info.outChannels;
  if (!simd || x.dtype !== 'float32' || dy.dtype !== 'float32' || co % 8 !== 0) return null;
  if (ci === 1) return singleChannelFilterGrad(b, simd, x, dy, info, filterShape);
  if (ci % 4 !== 0) return null;
  const hb = b as unknown as HeapBackend;
  const out = hb.makeOutput(filterShape, 'float32');
  const [xp, dyp, outp] = [x, dy, out].map((t) => hb.getMemoryOffset(t.dataId)) as [number, number, number];
  if (isPointwise(info)) {
    pointwiseFilterGrad(hb, simd, xp, dyp, outp, info.batchSize * info.inHeight * info.inWidth, ci, co);
    return out;
  }
  hb.typedArrayFromHeap(out).fill(0);
  const { inHeight: ih, inWidth: iw, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  // With a pool, each thread takes a share of the input channels of every tap: disjoint rows of
  // the output, each summed in the same order as on one thread.
  const threads = threadsFor(b, ci / 4);
  const calls: number[][][] = Array.from({ length: threads }, () => []);
  for (let ty = 0; ty < info.filterHeight; ty++) {
    for (let tx = 0; tx < info.filterWidth; tx++) {
      // Output columns whose input column lies inside the image: 0 <= q*sw - left + tx*dw < iw.
      const shift = tx * info.dilationWidth - info.padInfo.left;
      const first = Math.max(0, Math.ceil(-shift / sw));
      const end = Math.min(ow, Math.floor((iw - 1 - shift) / sw) + 1);
      if (end <= first) continue;
      for (let t = 0; t < threads; t++) {
        const [from, to] = share(ci, threads, t, 4);
        (calls[t] as number[][]).push([
          xp + ((first * sw + shift) * ci + from) * 4,
          dyp + first * co * 4,
          outp + ((ty * info.filterWidth + tx) * ci + from) * co * 4,
          info.batchSize,
          ih,
          oh,
          ty * info.dilationHeight - info.padInfo.top,
          sh,
          iw * ci * 4,
          sw * ci * 4,
          ow * co * 4,
          end - first,
          to - from,
          co,
        ]);
      }
    }
  }
  runSpread(b, 'conv_filter_grad', simd, calls);
  return out;
}

let pointwiseGemm = true;

/**
 * Switches the heap GEMMs for 1x1 convolutions' gradients off or on (tests and benchmarks compare
 * them with the general loops).
 */
export function setPointwiseGemm(on: boolean): void {
  pointwiseGemm = on;
}

/** Positions (N*H*W) up to which a 1x1 convolution's gradients run as heap GEMMs. */
const POINTWISE_MAX_ROWS = 4096;
/**
 * Weights (Ci*Co) up to which they do: 1 MB, which each pass of the GEMMs reads or writes. Covers
 * MobileNetV2-0.35's `Conv_1` (112 x 1280 at 7x7, batch 32: filter gradient 11.4 -> 9.6 ms, input
 * gradient the same); ResNet50V2's conv5 1x1 layers (1 M weights) ran 10-40% slower this way.
 */
const POINTWISE_MAX_WEIGHTS = 1 << 18;

/**
 * Whether a convolution's gradients run as the heap GEMMs: 1x1, stride 1, no padding, few
 * positions and weights that stay in L2. These are MobileNetV2's trainable 1x1 layers at 7x7
 * (batch 32: 1568 rows), whose rows are too short for the per-tap loop, and whose fresh weights
 * XNNPACK repacks for every input gradient. The brain-MRI recipe's step (`blocks-13`, 2 threads),
 * GEMMs on against off in alternating steps of one process: 3-7% faster. Larger weights
 * (ResNet50V2's conv4 and conv5) ran slower through these GEMMs than through the loops that take
 * them, as did large maps (its conv2 1x1 layers at 56x56, 25,088 rows: 15.5 vs 12.8 ms).
 */
function isPointwise(info: tf.backend_util.Conv2DInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  return (
    pointwiseGemm &&
    info.filterHeight === 1 &&
    info.filterWidth === 1 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    top + bottom + left + right === 0 &&
    info.batchSize * info.inHeight * info.inWidth <= POINTWISE_MAX_ROWS &&
    info.inChannels * info.outChannels <= POINTWISE_MAX_WEIGHTS
  );
}

/** Bytes of x and dy rows that one pass of {@link pointwiseFilterGrad} takes through L2. */
const PANEL_BYTES = 1 << 18;

/**
 * A 1x1 filter gradient, dW [Ci, Co] = x^T [Ci, M] . dy [M, Co], as `gemm_tn` (4 x 8 blocks held
 * in registers) over panels of rows that stay in L2 while every block of dW sums them, in order.
 * Each thread takes a share of the input channels: disjoint rows of dW, summed in the same order
 * on any number of threads (the panels do not depend on it). On MobileNetV2's trainable 1x1 layers
 * at 7x7, batch 32, alone at 2 threads: 55-70 GFLOP/s against the per-tap loop's 50-60 (inside a
 * training step the loop measured ~26).
 */
function pointwiseFilterGrad(
  hb: HeapBackend,
  simd: HeapSimd,
  xp: number,
  dyp: number,
  outp: number,
  m: number,
  ci: number,
  co: number,
): void {
  const panel = Math.max(16, Math.floor(PANEL_BYTES / ((ci + co) * 4)), Math.ceil(m / MAX_CALLS));
  const threads = threadsFor(hb, ci / 4);
  const calls = panelShares(threads, ci, 4, m, panel, (i0, i1, r0, rows) => [
    xp + (r0 * ci + i0) * 4,
    dyp + r0 * co * 4,
    outp + i0 * co * 4,
    rows,
    i1 - i0,
    co,
    ci,
    r0 === 0 ? 1 : 0,
  ]);
  runSpread(hb, 'gemm_tn', simd, calls);
}

/**
 * Chunks of images whose single-channel filter gradients are summed apart, then in order: at most
 * 16, and at most 64 calls (the pool's per thread) for all filter rows, so that one thread takes
 * them all; the chunks never depend on the thread count.
 */
const FILTER_GRAD_CHUNKS = 16;

/**
 * A single-channel input (a grayscale image's first convolution) on the same loop: the four
 * lanes of one load from a zero-padded copy of x are four neighbouring columns, i.e. the taps
 * kw = 0..3 of one filter row, so each pass computes a filter row's [4, Co] block (the fourth
 * lane is dropped for 3-wide filters). SimpleCNN's 32x128x128x1 -> 32: ~98 -> ~10 ms.
 * Column dilation 1 and filters at most 4 wide.
 */
function singleChannelFilterGrad(
  b: Backend,
  simd: NonNullable<ReturnType<typeof heapSimd>>,
  x: TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  filterShape: Shape4,
): TensorInfo | null {
  const {
    outHeight: oh,
    outWidth: ow,
    strideHeight: sh,
    strideWidth: sw,
    filterHeight: kh,
    filterWidth: kw,
  } = info;
  const co = info.outChannels;
  if (kw > 4 || info.dilationWidth !== 1) return null;
  const hb = b as unknown as HeapBackend;
  const { top, left } = info.padInfo;
  const needH = (oh - 1) * sh + (kh - 1) * info.dilationHeight + 1;
  // Room for a 4-wide load at the last output column.
  const needW = (ow - 1) * sw + 4;
  const padded = call(
    'PadV2',
    b,
    { x },
    {
      paddings: [
        [0, 0],
        [top, Math.max(0, needH - info.inHeight - top)],
        [left, Math.max(0, needW - info.inWidth - left)],
        [0, 0],
      ],
      constantValue: 0,
    },
  );
  const [n, ph, pw] = padded.shape as Shape4;
  // Chunks of images x filter rows, each summed apart and then in chunk order: work for every
  // thread (rows alone gave one of 2 threads 2 of a 3x3 filter's 3), the same sums on any count.
  // A thread takes a chunk, all of its rows, then the next chunk left: a chunk's dy (4 MB for
  // SimpleCNN's 2 images) is read from memory once and from cache for its other rows.
  const chunks = Math.max(1, Math.min(FILTER_GRAD_CHUNKS, n, Math.floor(MAX_CALLS / kh)));
  const size = kh * 4 * co;
  const rows = hb.makeOutput([chunks, kh, 4, co], 'float32');
  hb.typedArrayFromHeap(rows).fill(0);
  const [xp, dyp, rowsp] = [padded, dy, rows].map((t) => hb.getMemoryOffset(t.dataId)) as [
    number,
    number,
    number,
  ];
  const threads = threadsFor(b, kh * chunks);
  // A chunk's filter rows in order on whichever thread takes it (`runBalanced`).
  const groups: number[][][] = Array.from({ length: chunks }, () => []);
  for (let c = 0; c < chunks; c++)
    for (let ty = 0; ty < kh; ty++) {
      const [b0, b1] = share(n, chunks, c);
      (groups[c] as number[][]).push([
        xp + b0 * ph * pw * 4,
        dyp + b0 * oh * ow * co * 4,
        rowsp + (c * size + ty * 4 * co) * 4,
        b1 - b0,
        ph,
        oh,
        ty * info.dilationHeight,
        sh,
        pw * 4,
        sw * 4,
        ow * co * 4,
        ow,
        4,
        co,
      ]);
    }
  runBalanced(b, 'conv_filter_grad', simd, groups, undefined, threads);
  for (let c = 1; c < chunks; c++) simd.axpy(rowsp, rowsp + c * size * 4, size, 1, 0);
  const out = hb.makeOutput(filterShape, 'float32');
  const dst = hb.typedArrayFromHeap(out);
  const src = hb.typedArrayFromHeap(rows);
  for (let ty = 0; ty < kh; ty++)
    for (let tx = 0; tx < kw; tx++)
      dst.set(src.subarray((ty * 4 + tx) * co, (ty * 4 + tx + 1) * co), (ty * kw + tx) * co);
  hb.disposeData(padded.dataId);
  hb.disposeData(rows.dataId);
  return out;
}

/**
 * Which filter-gradient formulation is faster, measured on 2 threads (`bench/conv-grad.ts`):
 * the swapped convolution wins for strided convolutions (26 vs 834 ms for 8x56x56x64, 3x3 s2:
 * wasm's StridedSlice is slow) and for 3x3 filters over several input channels (236 vs 313 ms
 * for 32x32x32x64->128, 73 vs 84 ms for ResNet's 8x7x7x512->512); the im2col matrix multiply
 * wins for 1x1 filters (21 vs 38 ms) and single-channel inputs (37 vs 181 ms, 32x128x128x1->32).
 */
export function useConvForFilterGrad(info: tf.backend_util.Conv2DInfo): boolean {
  if (filterGradStrategy !== 'auto') return filterGradStrategy === 'conv';
  if (info.strideHeight > 1 || info.strideWidth > 1) return true;
  if (info.filterHeight * info.filterWidth === 1) return false;
  return info.inChannels >= 8;
}

/**
 * Whether the heap loop ({@link filterGradOnHeap}) computes the filter gradient: wherever its
 * vector widths fit (Ci a multiple of 4, Co of 8) or the input has one channel. On the heap pool
 * it beats or ties XNNPACK's two formulations on every layer shape `bench/conv-grad.ts` times, at
 * 1 thread and at 2 (2 threads: SimpleCNN's first layer 13 vs 73 ms, ResNet50V2's conv4 and conv5
 * 25 vs 42 and 24 vs 41, its 1x1 into 2048 channels 14 vs 20, MobileNetV2's Conv_1 8 vs 8; 1
 * thread: 44 vs 74, 42 vs 75, 26 vs 26, 13 vs 12). Its first version, on one thread beside
 * XNNPACK's two, won only for Ci x Co <= 8192. The choice does not depend on the thread count,
 * so neither do the numbers.
 */
export function useHeapForFilterGrad(info: tf.backend_util.Conv2DInfo): boolean {
  if (info.outChannels % 8 !== 0) return false;
  if (info.inChannels === 1) return info.filterWidth <= 4 && info.dilationWidth === 1;
  return info.inChannels % 4 === 0;
}

let filterGradStrategy: 'auto' | 'conv' | 'matmul' | 'heap' = 'auto';

/** Forces one filter-gradient formulation (for tests and benchmarks); `'auto'` restores the choice. */
export function setFilterGradStrategy(strategy: 'auto' | 'conv' | 'matmul' | 'heap'): void {
  filterGradStrategy = strategy;
}

export function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs) {
  const b = backend as Backend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { filterShape } = attrs as { filterShape: Shape4 };
  const info = convInfo(
    'Conv2DBackpropFilter',
    x.shape as Shape4,
    filterShape,
    attrs as unknown as ConvAttrs,
    false,
  );
  const byWinograd = winogradFilterGrad(b, x, dy, info);
  if (byWinograd) return byWinograd;
  if (filterGradStrategy === 'heap' || (filterGradStrategy === 'auto' && useHeapForFilterGrad(info))) {
    const onHeap = filterGradOnHeap(b, x, dy, info, filterShape);
    if (onHeap) return onHeap;
  }
  return scoped(b, (keep) =>
    useConvForFilterGrad(info)
      ? filterGradByConv(b, keep, x, dy, info)
      : filterGradByMatMul(b, keep, x, dy, info, filterShape),
  );
}

/** Like {@link tap}, on a channels-first [C, N, Hp, Wp] copy: returns [C, N, OH, OW]. */
function tapChannelsFirst(
  b: Backend,
  xt: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  kh: number,
  kw: number,
): TensorInfo {
  const top = kh * info.dilationHeight;
  const left = kw * info.dilationWidth;
  const [c, n, hp, wp] = xt.shape as [number, number, number, number];
  const end = [
    c,
    n,
    top + (info.outHeight - 1) * info.strideHeight + 1,
    left + (info.outWidth - 1) * info.strideWidth + 1,
  ];
  if (info.strideHeight === 1 && info.strideWidth === 1) {
    if (top === 0 && left === 0 && end[2] === hp && end[3] === wp)
      return call('Reshape', b, { x: xt }, { shape: xt.shape });
    return call(
      'Slice',
      b,
      { x: xt },
      { begin: [0, 0, top, left], size: [c, n, info.outHeight, info.outWidth] },
    );
  }
  return call(
    'StridedSlice',
    b,
    { x: xt },
    {
      begin: [0, 0, top, left],
      end,
      strides: [1, 1, info.strideHeight, info.strideWidth],
      beginMask: 0,
      endMask: 0,
      ellipsisMask: 0,
      newAxisMask: 0,
      shrinkAxisMask: 0,
    },
  );
}

/** Reverses a [KH, KW, ...] filter over both spatial axes (this library's Reverse: runs of taps). */
export function flipTaps(b: Backend, filter: TensorInfo): TensorInfo {
  return call('Reverse', b, { x: filter }, { dims: [0, 1] });
}

/** dx = conv2d(dilate(dy), flip(W)^T): a forward convolution on XNNPACK. */
export function conv2DBackpropInput({ inputs, backend, attrs }: KernelArgs) {
  const b = backend as Backend;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { inputShape } = attrs as { inputShape: Shape4 };
  const info = convInfo(
    'Conv2DBackpropInput',
    inputShape,
    filter.shape as Shape4,
    attrs as unknown as ConvAttrs,
    false,
  );
  const byWinograd = winogradInputGrad(b, dy, filter, info);
  if (byWinograd) return byWinograd;
  if (pointwiseByWeightsAsA(info)) return pointwiseInputGrad(b, dy, filter, info);
  const onHeap = pointwiseInputGradOnHeap(b, dy, filter, info);
  if (onHeap) return onHeap;
  if (useMatMulForInputGrad(info) && dy.dtype === 'float32' && filter.dtype === 'float32') {
    const dx = inputGradByMatMul(b, dy, filter, info);
    if (dx) return dx;
  }
  return scoped(b, (keep) => {
    const pointwise = info.filterHeight === 1 && info.filterWidth === 1;
    const flipped = pointwise ? filter : keep(flipTaps(b, filter));
    const w = keep(call('Transpose', b, { x: flipped }, { perm: [0, 1, 3, 2] }));
    return fullCorrelation(b, keep, 'Conv2D', dy, w, info);
  });
}

/**
 * A 1x1 input gradient, dx [M, Ci] = dy [M, Co] . W^T, as the heap `gemm` over row blocks of dy
 * against the transposed weights (Ci x Co values, transposed on the heap): no packing of either
 * operand, where XNNPACK's convolution repacks the fresh weights each step. Needs M a multiple of
 * 4 and Ci of 8; null elsewhere.
 */
function pointwiseInputGradOnHeap(
  b: Backend,
  dy: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  const m = info.batchSize * info.inHeight * info.inWidth;
  const ci = info.inChannels;
  const co = info.outChannels;
  if (!isPointwise(info) || m % 4 !== 0 || ci % 8 !== 0 || !heapSimd(b)) return null;
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const hb = b as HeapBackend;
  const w = reshape(b, filter, [ci, co]);
  const wT = call('Transpose', b, { x: w }, { perm: [1, 0] });
  const dx = hb.makeOutput([info.batchSize, info.inHeight, info.inWidth, ci], 'float32');
  const at = (t: TensorInfo) => hb.getMemoryOffset(t.dataId);
  gemmRows(hb, at(dy), at(wT), at(dx), m, co, ci, co);
  for (const t of [w, wT]) b.disposeData(t.dataId);
  return dx;
}

/**
 * For an unpadded stride-1 1x1 convolution, dx^T = W [Ci, Co] . dy^T [Co, M] is one matrix
 * product with the weights as its left operand, which XNNPACK uses as they are. The right
 * operand is transposed and packed instead, which pays off when M = N*H*W is small against the
 * channels (ResNet50V2's conv5 at batch 8: 392 rows against 2048 x 1024 weights).
 */
function pointwiseByWeightsAsA(info: tf.backend_util.Conv2DInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  if (info.filterHeight !== 1 || info.filterWidth !== 1) return false;
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || top + bottom + left + right !== 0) return false;
  const m = info.batchSize * info.inHeight * info.inWidth;
  // Elements transposed and packed: dy^T and dx^T here, the weights' transpose and packing otherwise.
  return m * (2 * info.outChannels + info.inChannels) < 2 * info.inChannels * info.outChannels;
}

function pointwiseInputGrad(
  b: Backend,
  dy: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo {
  const m = info.batchSize * info.inHeight * info.inWidth;
  const ci = info.inChannels;
  const co = info.outChannels;
  return scoped(b, (keep) => {
    const dy2 = keep(reshape(b, dy, [m, co]));
    const dyT = keep(call('Transpose', b, { x: dy2 }, { perm: [1, 0] }));
    const w = keep(reshape(b, filter, [1, ci, co]));
    const rhs = keep(reshape(b, dyT, [1, co, m]));
    const dxT = keep(original('BatchMatMul', b, { a: w, b: rhs }, { transposeA: false, transposeB: false }));
    const dxT2 = keep(reshape(b, dxT, [ci, m]));
    const dx = keep(call('Transpose', b, { x: dxT2 }, { perm: [1, 0] }));
    return reshape(b, dx, [info.batchSize, info.inHeight, info.inWidth, ci]);
  });
}

/**
 * Which input-gradient formulation is faster for a KxK filter (`bench/conv-grad.ts`, 2 threads,
 * weights fresh each call as in training): the full correlation runs XNNPACK's convolution on
 * flipped, transposed weights, which it must repack each step (~15 ns per weight); the matrix
 * product below uses the weights as they are and packs dy instead. That pays when positions are
 * few against the weights: ResNet50V2's conv5 3x3 at batch 8 (392 positions, 512x512x9
 * weights).
 */
export function useMatMulForInputGrad(info: tf.backend_util.Conv2DInfo): boolean {
  if (inputGradStrategy !== 'auto') return inputGradStrategy === 'matmul';
  const k = info.filterHeight * info.filterWidth;
  if (k === 1) return false;
  const m = info.batchSize * info.outHeight * info.outWidth;
  // Elements moved: dy^T and the [K*Ci, M] product here, three passes over the weights there.
  return m * (2 * info.outChannels + 2 * k * info.inChannels) < 3 * k * info.inChannels * info.outChannels;
}

let inputGradStrategy: 'auto' | 'conv' | 'matmul' = 'auto';

/** Forces one input-gradient formulation for KxK filters (tests, benchmarks); `'auto'` restores the choice. */
export function setInputGradStrategy(strategy: 'auto' | 'conv' | 'matmul'): void {
  inputGradStrategy = strategy;
}

/**
 * dx by "col2im": the product P = W [K*Ci, Co] . dy^T [Co, M] holds, for every tap and input
 * channel, the contribution of every output position; each is added to the input position
 * that tap reads, h = oh*stride - padTop + kh*dilation (positions the padding covers are
 * dropped). Any stride, padding and dilation. Returns null where the heap is not reachable.
 */
function inputGradByMatMul(
  b: Backend,
  dy: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  const hb = b as HeapBackend;
  if (typeof hb.typedArrayFromHeap !== 'function') return null;
  const { batchSize: n, inHeight: ih, inWidth: iw, inChannels: ci, outChannels: co } = info;
  const { outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const m = n * oh * ow;
  const k = kh * kw;
  const product = scoped(b, (keep) => {
    const dy2 = keep(reshape(b, dy, [m, co]));
    const dyT = keep(call('Transpose', b, { x: dy2 }, { perm: [1, 0] }));
    const rhs = keep(reshape(b, dyT, [1, co, m]));
    const w = keep(reshape(b, filter, [1, k * ci, co]));
    return original('BatchMatMul', b, { a: w, b: rhs }, { transposeA: false, transposeB: false });
  });
  // Where each (tap, output position) lands in dx, as an element offset, or -1 in the padding.
  const target = new Int32Array(k * m);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      const t = y * kw + x;
      for (let bi = 0; bi < n; bi++) {
        for (let r = 0; r < oh; r++) {
          const h = r * info.strideHeight - info.padInfo.top + y * info.dilationHeight;
          for (let c = 0; c < ow; c++) {
            const wpos = c * info.strideWidth - info.padInfo.left + x * info.dilationWidth;
            const inside = h >= 0 && h < ih && wpos >= 0 && wpos < iw;
            target[t * m + (bi * oh + r) * ow + c] = inside ? ((bi * ih + h) * iw + wpos) * ci : -1;
          }
        }
      }
    }
  }
  const out = hb.makeOutput([n, ih, iw, ci], 'float32');
  // Views after makeOutput: allocating may grow (and move) the heap.
  const src = hb.typedArrayFromHeap(product);
  const dst = hb.typedArrayFromHeap(out);
  dst.fill(0);
  for (let t = 0; t < k; t++) {
    const offsets = target.subarray(t * m, (t + 1) * m);
    for (let c = 0; c < ci; c++) {
      const row = (t * ci + c) * m;
      for (let p = 0; p < m; p++) {
        const o = offsets[p] as number;
        if (o >= 0) dst[o + c] = (dst[o + c] as number) + (src[row + p] as number);
      }
    }
  }
  b.disposeData(product.dataId);
  return out;
}
