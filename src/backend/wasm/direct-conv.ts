/**
 * The Conv2D and FusedConv2D kernels: the heap forward paths tried in order (Winograd from
 * `winograd.ts`, then the direct loops here), else XNNPACK's. The direct loops
 * (`heap-simd-conv.wat`) cover layers where XNNPACK's general kernels leave most of the wasm SIMD
 * peak unused: a grayscale network's first layer, and 1x1 convolutions over large maps. They sum
 * in XNNPACK's order, from the bias, and give its numbers; `setDirectConv(false)` and
 * `setPointwiseForward(false)` restore XNNPACK's kernels.
 */
import {
  type Attrs,
  type Backend,
  type HeapBackend,
  type KernelArgs,
  original,
  type TensorInfo,
} from './common.js';
import { ACTIVATION, type Activation, type ConvForward, forwardInfo } from './conv-geometry.js';
import { runShares, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';
import { winogradForward } from './winograd.js';

let enabled = true;
let pointwise = true;

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
export const singleChannelForward: ConvForward = (b, x, filter, info, bias, activation) => {
  if (!enabled || x.shape[3] !== 1 || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
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
};

/**
 * Turns the 1x1 forward heap loop off (`false`: XNNPACK's convolution, as before) or on again;
 * tests and benchmarks compare the two.
 */
export function setPointwiseForward(on: boolean): void {
  pointwise = on;
}

/**
 * Weights (Ci*Co) up to which a 1x1 forward pass runs on the heap loop: every 4-row block reads all
 * of them, which must stay in L2 (768 KB). Fresh weights each call, as in training, batch 32,
 * against XNNPACK (which packs them first): MobileNetV2-0.35's `Conv_1` (112 x 1280 at 7x7) 0.87
 * of its time, 56 -> 336 at 7x7 0.39; ResNet50V2's 256 -> 1024 at 14x14 (256 K weights) took 1.37.
 */
const POINTWISE_FORWARD_MAX_WEIGHTS = 3 << 16;

/**
 * The forward pass of a 1x1 convolution at stride 1, NHWC float32, N*H*W a multiple of 4 and
 * output channels of 8, weights up to {@link POINTWISE_FORWARD_MAX_WEIGHTS}, as one heap loop
 * (`pointwise_forward`): x [N*H*W, Ci] . W [Ci, Co] in blocks of 4 positions x 8 channels, from
 * the bias, then a linear, ReLU or ReLU6 activation as they are stored. XNNPACK's convolution hands
 * its threads tiles of a few hundred products each on MobileNetV2's narrow layers (8-32 input
 * channels over 56x56-112x112 maps): 32 x 112 x 112 x 8 -> 48 took 45 ms there, 18 ms here
 * (`bench/pointwise-forward.ts`).
 * Rows are cut into chunks that the heap pool's threads take as they come free; each output is
 * computed whole by one call, so the numbers are the same on any thread count. Null where it does
 * not apply (then XNNPACK runs); the caller checks that a bias has one value per output channel.
 */
export const pointwiseForward: ConvForward = (b, x, filter, info, bias, activation) => {
  if (!pointwise || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const { top, left, bottom, right } = info.padInfo;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  if (
    info.filterHeight !== 1 ||
    info.filterWidth !== 1 ||
    info.strideHeight !== 1 ||
    info.strideWidth !== 1 ||
    top + left + bottom + right !== 0 ||
    co % 8 !== 0 ||
    n * h * w === 0 ||
    (n * h * w) % 4 !== 0 ||
    ci * co > POINTWISE_FORWARD_MAX_WEIGHTS
  )
    return null;
  const simd = heapSimd(b);
  if (!simd) return null;
  const m = n * h * w;
  const y = b.makeOutput([n, h, w, co], 'float32');
  const [px, pf, py] = [x, filter, y].map((t) => b.getMemoryOffset(t.dataId)) as [number, number, number];
  const pb = bias ? b.getMemoryOffset(bias.dataId) : 0;
  const threads = threadsFor(b, m / 4);
  runShares(b, 'pointwise_forward', simd, threads, m, 4, (r0, r1) => [
    px + r0 * ci * 4,
    pf,
    py + r0 * co * 4,
    pb,
    ACTIVATION[activation],
    r1 - r0,
    ci,
    co,
  ]);
  return y;
};

/**
 * Conv2D: Winograd where {@link useWinograd} says so, a single input channel's heap loop or the
 * 1x1 heap loop above, else the shipped XNNPACK kernel.
 */
export function conv2D({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as Backend;
  const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
  return (
    heapForward(b, x, filter, attrs, null, 'linear') ??
    original('Conv2D', b, inputs as Record<string, TensorInfo>, attrs)
  );
}

/** The heap forward paths, tried in this order. */
const FORWARD_PATHS: ConvForward[] = [winogradForward, singleChannelForward, pointwiseForward];

/** The first heap forward path that applies, or null (XNNPACK's kernel then runs). */
function heapForward(
  b: Backend,
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Attrs,
  bias: TensorInfo | null,
  activation: Activation,
): TensorInfo | null {
  const info = forwardInfo(x, filter, attrs);
  if (!info) return null;
  for (const path of FORWARD_PATHS) {
    const y = path(b as HeapBackend, x, filter, info, bias, activation);
    if (y) return y;
  }
  return null;
}

/**
 * FusedConv2D: Winograd or the heap loops above, with the bias and a linear, ReLU or
 * ReLU6 activation as they store, where they apply and the bias is one value per output channel;
 * else shipped.
 */
export function fusedConv2D({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as Backend;
  const { x, filter, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
  const activation = (attrs.activation ?? 'linear') as string;
  const fits =
    x &&
    filter &&
    !preluActivationWeights &&
    activation in ACTIVATION &&
    (!bias || (bias.dtype === 'float32' && bias.shape.reduce((s, d) => s * d, 1) === filter.shape[3]));
  const y = fits ? heapForward(b, x, filter, attrs, bias ?? null, activation as Activation) : null;
  return y ?? original('FusedConv2D', b, inputs as Record<string, TensorInfo>, attrs);
}
