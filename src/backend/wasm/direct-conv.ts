/**
 * Direct convolutions as heap loops (`heap-simd-conv.wat`) where XNNPACK's general kernels leave
 * most of the wasm SIMD peak unused: a grayscale network's first layer. It sums its taps in
 * XNNPACK's order, from the bias, and gives its numbers; `setDirectConv(false)` restores
 * XNNPACK's kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Attrs, ConvAttrs, HeapBackend, Shape4, TensorInfo } from './common.js';
import { runSpread, share, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

let enabled = true;

/**
 * Turns the direct-convolution heap loop off (`false`: XNNPACK's convolution, as before) or on
 * again; tests compare the two.
 */
export function setDirectConv(on: boolean): void {
  enabled = on;
}

/** The activations the loop applies as it stores (codes of heap-simd-conv.wat). */
const ACTIVATION: Record<string, number> = { linear: 0, relu: 1, relu6: 2 };

/**
 * The forward pass of a grayscale network's first layer, one input channel, 3x3 at stride 1 and
 * dilation 1, output channels a multiple of 32, NHWC float32, as one heap loop (`conv1_forward`):
 * each output pixel's 32-channel blocks summed over its in-range taps in registers, with the
 * bias and a linear, ReLU or ReLU6 activation as they are stored. XNNPACK's general convolution
 * took ~9-17 ms of a SimpleCNN step for 32 x 128 x 128 x 1 -> 32 (about a fifth of the wasm SIMD
 * peak: one input channel leaves its products little to reuse). Images are split over the heap
 * pool's threads; each output is computed whole by one call, so the numbers are the same on any
 * thread count. Null where it does not apply (then XNNPACK runs).
 */
export function singleChannelForward(
  b: HeapBackend,
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Attrs,
  bias: TensorInfo | null,
  activation: string,
): TensorInfo | null {
  const a = attrs as unknown as ConvAttrs;
  if (
    !enabled ||
    a.dataFormat === 'NCHW' ||
    x.shape.length !== 4 ||
    filter.shape.length !== 4 ||
    x.shape[3] !== 1 ||
    x.dtype !== 'float32' ||
    filter.dtype !== 'float32' ||
    !(activation in ACTIVATION) ||
    (bias && (bias.dtype !== 'float32' || bias.shape.reduce((s, d) => s * d, 1) !== filter.shape[3]))
  )
    return null;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filter.shape as Shape4,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { top, left, bottom, right } = info.padInfo;
  if (
    info.filterHeight !== 3 ||
    info.filterWidth !== 3 ||
    info.strideHeight !== 1 ||
    info.strideWidth !== 1 ||
    info.dilationHeight !== 1 ||
    info.dilationWidth !== 1 ||
    info.outChannels % 32 !== 0 ||
    Math.min(top, left, bottom, right) < 0 ||
    Math.max(top, left, bottom, right) > 2
  )
    return null;
  const simd = heapSimd(b);
  if (!simd) return null;
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const y = b.makeOutput([n, oh, ow, co], 'float32');
  const [px, pf, py] = [x, filter, y].map((t) => b.getMemoryOffset(t.dataId)) as [number, number, number];
  const pb = bias ? b.getMemoryOffset(bias.dataId) : 0;
  const threads = threadsFor(b, n);
  const calls = Array.from({ length: threads }, (_, t) => {
    const [i0, i1] = share(n, threads, t);
    return [
      [
        px + i0 * h * w * 4,
        pf,
        py + i0 * oh * ow * co * 4,
        pb,
        ACTIVATION[activation] as number,
        i1 - i0,
      ].concat([h, w, co, oh, ow, top, left]),
    ];
  });
  runSpread(b, 'conv1_forward', simd, calls);
  return y;
}
