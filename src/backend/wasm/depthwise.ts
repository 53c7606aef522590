import type * as tf from '@tensorflow/tfjs-core';
import {
  type Backend,
  type ConvAttrs,
  call,
  type HeapBackend,
  type KernelArgs,
  reshape,
  type Shape4,
  scoped,
  type TensorInfo,
} from './common.js';
import { flipTaps } from './conv.js';
import { convInfo, fullCorrelation, paddedInput, tap } from './conv-geometry.js';
import { alignedScratch, runSpread, share, threadsFor, wholeLines } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

/** The geometry arguments of the depthwise heap loops for `images` images (heap-simd-train.wat). */
function depthwiseGeometry(info: tf.backend_util.Conv2DInfo, images: number): number[] {
  return [
    images,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
}

/** Image chunks whose filter gradients are summed apart, then added in this order. */
const FILTER_GRAD_CHUNKS = 4;

/**
 * Depthwise dW[kh, kw, c, 0] = sum over N, OH, OW of x-tap * dy (channel multiplier 1): a SIMD
 * pass on the heap that reads each dy row once with the x rows its taps read, skipping the
 * padding, over {@link FILTER_GRAD_CHUNKS} fixed chunks of images on the heap pool, each into its
 * own accumulator, added in order (the same numbers on any thread count). Taking the taps outside
 * read x once per tap: MobileNetV2's 32x112x112x48 at stride 2 took 52 ms on one thread.
 * Dilated filters (which tfjs's gradient refuses anyway) take per-tap slices, products and sums.
 */
export function depthwiseBackpropFilter({ inputs, backend, attrs }: KernelArgs) {
  const b = backend as Backend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { filterShape } = attrs as { filterShape: Shape4 };
  const info = convInfo(
    'DepthwiseConv2dNativeBackpropFilter',
    x.shape as Shape4,
    filterShape,
    attrs as unknown as ConvAttrs,
    true,
  );
  const simd = heapSimd(b);
  if (
    simd &&
    x.dtype === 'float32' &&
    dy.dtype === 'float32' &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1
  ) {
    const hb = b as HeapBackend;
    const { batchSize: n, inHeight: ih, inWidth: iw, inChannels: c, outHeight: oh, outWidth: ow } = info;
    const size = info.filterHeight * info.filterWidth * c;
    const chunks = Math.max(1, Math.min(FILTER_GRAD_CHUNKS, n));
    const stride = wholeLines(size * 4);
    const { scratch, at } = alignedScratch(hb, chunks * stride);
    hb.typedArrayFromHeap(scratch).fill(0);
    const [px, pdy] = [x, dy].map((t) => hb.getMemoryOffset(t.dataId)) as [number, number];
    const threads = threadsFor(b, chunks, n * (ih * iw + oh * ow) * c);
    const calls: number[][][] = Array.from({ length: threads }, () => []);
    for (let k = 0; k < chunks; k++) {
      const [b0, b1] = share(n, chunks, k);
      (calls[k % threads] as number[][]).push([
        px + b0 * ih * iw * c * 4,
        pdy + b0 * oh * ow * c * 4,
        at + k * stride,
        ...depthwiseGeometry(info, b1 - b0),
      ]);
    }
    runSpread(b, 'depthwise_filter_grad', simd, calls);
    const out = hb.makeOutput(filterShape, 'float32');
    // Views after makeOutput: allocating may grow (and move) the heap.
    const heap = hb.typedArrayFromHeap(scratch).buffer;
    const dst = hb.typedArrayFromHeap(out);
    dst.set(new Float32Array(heap, at, size));
    for (let k = 1; k < chunks; k++) {
      const part = new Float32Array(heap, at + k * stride, size);
      for (let j = 0; j < size; j++) dst[j] = (dst[j] as number) + (part[j] as number);
    }
    hb.disposeData(scratch.dataId);
    return out;
  }
  return scoped(b, (keep) => {
    const xp = paddedInput(b, keep, x, info);
    const parts: TensorInfo[] = [];
    for (let kh = 0; kh < info.filterHeight; kh++) {
      for (let kw = 0; kw < info.filterWidth; kw++) {
        const t = keep(tap(b, xp, info, kh, kw));
        const prod = keep(call('Multiply', b, { a: t, b: dy }));
        parts.push(keep(call('Sum', b, { x: prod }, { axis: [0, 1, 2], keepDims: false })));
      }
    }
    const stacked = keep(call('Pack', b, parts, { axis: 0 }));
    return reshape(b, stacked, filterShape);
  });
}

/**
 * Depthwise dx (channel multiplier 1). Strided: each input position gathers dy times the filter
 * over the taps that read it, in one SIMD pass on the heap with images split over the heap pool
 * (every value summed by one thread, in tap order: the same numbers on any count); needs dilation
 * 1 and channels a multiple of 4. Otherwise, a depthwise convolution of dilate(dy) with the
 * flipped filter on XNNPACK, whose dilated copy of dy is 4x the size at stride 2 (2 threads:
 * MobileNetV2's 32x113x113x48 46.9 -> 13.3 ms, its 32x15x15x192 3.8 -> 0.65 ms). At stride 1 the
 * loop tied XNNPACK on a padded copy of dy (1-2 ms at 7x7 to 28x28, 10-20% slower at 56x56 and
 * 112x112), and XNNPACK padding by itself is faster still (`fullCorrelation`), so it is not used.
 */
export function depthwiseBackpropInput({ inputs, backend, attrs }: KernelArgs) {
  const b = backend as Backend;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { inputShape } = attrs as { inputShape: Shape4 };
  const info = convInfo(
    'DepthwiseConv2dNativeBackpropInput',
    inputShape,
    filter.shape as Shape4,
    attrs as unknown as ConvAttrs,
    true,
  );
  const simd = heapSimd(b);
  const c = info.inChannels;
  if (
    simd &&
    dy.dtype === 'float32' &&
    filter.dtype === 'float32' &&
    c % 4 === 0 &&
    info.outChannels === c &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    (info.strideHeight > 1 || info.strideWidth > 1)
  ) {
    const hb = b as HeapBackend;
    const dx = hb.makeOutput(inputShape, 'float32');
    const [pdy, pf, pdx] = [dy, filter, dx].map((t) => hb.getMemoryOffset(t.dataId)) as number[];
    const { batchSize: n, inHeight: ih, inWidth: iw, outHeight: oh, outWidth: ow } = info;
    const threads = threadsFor(b, n);
    const calls = Array.from({ length: threads }, (_, t) => {
      const [b0, b1] = share(n, threads, t);
      return [
        [
          (pdy as number) + b0 * oh * ow * c * 4,
          pf as number,
          (pdx as number) + b0 * ih * iw * c * 4,
          ...depthwiseGeometry(info, b1 - b0),
        ],
      ];
    });
    runSpread(b, 'depthwise_input_grad', simd, calls);
    return dx;
  }
  return scoped(b, (keep) => {
    const w = keep(flipTaps(b, filter));
    return fullCorrelation(b, keep, 'DepthwiseConv2dNative', dy, w, info);
  });
}
