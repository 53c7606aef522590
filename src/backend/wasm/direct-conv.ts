/**
 * Direct convolutions as heap loops (`heap-simd-conv.wat`) where XNNPACK's general kernels leave
 * most of the wasm SIMD peak unused: a grayscale network's first layer. It sums its taps in
 * XNNPACK's order, from the bias, and gives its numbers; `setDirectConv(false)` restores
 * XNNPACK's kernel.
 */
import type { Attrs, HeapBackend, TensorInfo } from './common.js';
import { ACTIVATION, type Activation, forwardInfo } from './conv-geometry.js';
import { runShares, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

let enabled = true;

/**
 * Turns the direct-convolution heap loop off (`false`: XNNPACK's convolution, as before) or on
 * again; tests compare the two.
 */
export function setDirectConv(on: boolean): void {
  enabled = on;
}

/**
 * The forward pass of a grayscale network's first layer, one input channel, 3x3 at stride 1 and
 * dilation 1, output channels a multiple of 32, NHWC float32, as one heap loop (`conv1_forward`):
 * each output pixel's 32-channel blocks summed over its in-range taps in registers, with the
 * bias and a linear, ReLU or ReLU6 activation as they are stored. XNNPACK's general convolution
 * took ~9-17 ms of a SimpleCNN step for 32 x 128 x 128 x 1 -> 32 (about a fifth of the wasm SIMD
 * peak: one input channel leaves its products little to reuse). Images are split over the heap
 * pool's threads; each output is computed whole by one call, so the numbers are the same on any
 * thread count. Null where it does not apply (then XNNPACK runs); the caller checks that a bias
 * has one value per output channel.
 */
export function singleChannelForward(
  b: HeapBackend,
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Attrs,
  bias: TensorInfo | null,
  activation: Activation,
): TensorInfo | null {
  if (!enabled || x.shape[3] !== 1 || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const info = forwardInfo(x, filter, attrs);
  if (!info) return null;
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
  runShares(b, 'conv1_forward', simd, threads, n, 1, (i0, i1) => [
    px + i0 * h * w * 4,
    pf,
    py + i0 * oh * ow * co * 4,
    pb,
    ACTIVATION[activation],
    i1 - i0,
    h,
    w,
    co,
    oh,
    ow,
    top,
    left,
  ]);
  return y;
}
