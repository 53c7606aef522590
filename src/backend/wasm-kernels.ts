/**
 * Training kernels for the wasm backend, composed from its own fast kernels (XNNPACK
 * convolution and matrix multiply, pad, slice, transpose). tfjs-backend-wasm 4.22 ships no
 * `Conv2DBackpropFilter` and no depthwise backprops, so a CNN cannot train on it as shipped,
 * and its `Conv2DBackpropInput` is a slow direct loop. Kernels are looked up in the registry
 * (`tf.getKernel`) rather than imported, because deep imports into tfjs's `dist/` break
 * under Node ESM.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADABELIEF_UPDATE_KERNEL, type AdaBeliefUpdateAttrs } from '../optimizers/adabelief.js';
import { heapSimd } from './heap-simd.js';

type TensorInfo = tf.TensorInfo;
type Backend = tf.KernelBackend & { disposeData(dataId: object, force?: boolean): boolean };
type Attrs = Record<string, unknown>;

function call(
  name: string,
  backend: Backend,
  inputs: Record<string, TensorInfo> | TensorInfo[],
  attrs: Attrs = {},
): TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new Error(`medimg-classify: wasm kernel '${name}' is not registered`);
  return kernel.kernelFunc({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend,
    attrs: attrs as tf.NamedAttrMap,
  }) as TensorInfo;
}

/** Runs `fn` with a scratch list; every TensorInfo pushed there except the result is freed. */
function scoped(backend: Backend, fn: (keep: <T extends TensorInfo>(t: T) => T) => TensorInfo): TensorInfo {
  const scratch: TensorInfo[] = [];
  const keep = <T extends TensorInfo>(t: T): T => {
    scratch.push(t);
    return t;
  };
  const result = fn(keep);
  // Dispose by identity: a reshape shares its input's buffer and holds a reference of its own.
  for (const t of scratch) if (t !== result) backend.disposeData(t.dataId);
  return result;
}

const reshape = (b: Backend, x: TensorInfo, shape: number[]) => call('Reshape', b, { x }, { shape });

/** Zero-pads `x` by `[before, after]` per axis; negative amounts crop. */
function padOrCrop(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  x: TensorInfo,
  paddings: [number, number][],
): TensorInfo {
  let out = x;
  if (paddings.some(([a, c]) => a < 0 || c < 0)) {
    const begin = paddings.map(([a]) => Math.max(0, -a));
    const size = out.shape.map(
      (d, i) => d - (begin[i] as number) - Math.max(0, -(paddings[i] as [number, number])[1]),
    );
    out = keep(call('Slice', b, { x: out }, { begin, size }));
  }
  const pos = paddings.map(([a, c]) => [Math.max(0, a), Math.max(0, c)] as [number, number]);
  if (pos.some(([a, c]) => a > 0 || c > 0))
    out = keep(call('PadV2', b, { x: out }, { paddings: pos, constantValue: 0 }));
  return out;
}

/** Inserts `stride - 1` zeros between the spatial elements of an NHWC tensor. */
function dilateSpatial(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  x: TensorInfo,
  sh: number,
  sw: number,
): TensorInfo {
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const x6 = keep(reshape(b, x, [n, h, 1, w, 1, c]));
  const padded = keep(
    call(
      'PadV2',
      b,
      { x: x6 },
      {
        paddings: [
          [0, 0],
          [0, 0],
          [0, sh - 1],
          [0, 0],
          [0, sw - 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    ),
  );
  const full = keep(reshape(b, padded, [n, h * sh, w * sw, c]));
  return keep(
    call('Slice', b, { x: full }, { begin: [0, 0, 0, 0], size: [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c] }),
  );
}

/** Slices tap (kh, kw) of a padded input: the [N, OH, OW, C] window each output position sees. */
function tap(
  b: Backend,
  xp: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  kh: number,
  kw: number,
): TensorInfo {
  const top = kh * info.dilationHeight;
  const left = kw * info.dilationWidth;
  return call(
    'StridedSlice',
    b,
    { x: xp },
    {
      begin: [0, top, left, 0],
      end: [
        info.batchSize,
        top + (info.outHeight - 1) * info.strideHeight + 1,
        left + (info.outWidth - 1) * info.strideWidth + 1,
        info.inChannels,
      ],
      strides: [1, info.strideHeight, info.strideWidth, 1],
      beginMask: 0,
      endMask: 0,
      ellipsisMask: 0,
      newAxisMask: 0,
      shrinkAxisMask: 0,
    },
  );
}

function paddedInput(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  x: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
) {
  const { top, bottom, left, right } = info.padInfo;
  // Pad enough for the last tap's window, and crop what the convolution never reads.
  const needH = (info.outHeight - 1) * info.strideHeight + (info.filterHeight - 1) * info.dilationHeight + 1;
  const needW = (info.outWidth - 1) * info.strideWidth + (info.filterWidth - 1) * info.dilationWidth + 1;
  const padBottom = Math.min(bottom, needH - info.inHeight - top);
  const padRight = Math.min(right, needW - info.inWidth - left);
  return padOrCrop(b, keep, x, [
    [0, 0],
    [top, padBottom],
    [left, padRight],
    [0, 0],
  ]);
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: Attrs };
type Shape4 = [number, number, number, number];
interface ConvAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The convolution's geometry, refusing what these kernels do not handle. */
function convInfo(
  kernel: string,
  xShape: Shape4,
  filterShape: Shape4,
  attrs: ConvAttrs,
  depthwise: boolean,
): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error(`medimg-classify: ${kernel} on wasm supports NHWC only`);
  if (depthwise && filterShape[3] !== 1)
    throw new Error(`medimg-classify: ${kernel} on wasm supports channel multiplier 1`);
  const info = depthwise
    ? tf.backend_util.computeConv2DInfo(
        xShape,
        filterShape,
        attrs.strides,
        attrs.dilations ?? 1,
        attrs.pad,
        attrs.dimRoundingMode,
        true,
      )
    : tf.backend_util.computeConv2DInfo(
        xShape,
        filterShape,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
        false,
        'channelsLast',
      );
  if (depthwise && (info.dilationHeight !== 1 || info.dilationWidth !== 1) && kernel.endsWith('Input')) {
    throw new Error(`medimg-classify: ${kernel} on wasm supports dilation 1`);
  }
  return info;
}

/**
 * The input gradient of a convolution is a "full" correlation of dy with the flipped filter:
 * dilate dy by the stride, then pad it so that a stride-1 valid convolution gives the input size.
 */
function fullCorrelationInput(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  dy: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo {
  const kh = info.filterHeight;
  const kw = info.filterWidth;
  const dilated = dilateSpatial(b, keep, dy, info.strideHeight, info.strideWidth);
  const padTop = kh - 1 - info.padInfo.top;
  const padLeft = kw - 1 - info.padInfo.left;
  return padOrCrop(b, keep, dilated, [
    [0, 0],
    [padTop, info.inHeight + kh - 1 - (dilated.shape[1] as number) - padTop],
    [padLeft, info.inWidth + kw - 1 - (dilated.shape[2] as number) - padLeft],
    [0, 0],
  ]);
}

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

let filterGradStrategy: 'auto' | 'conv' | 'matmul' = 'auto';

/** Forces one filter-gradient formulation (for tests and benchmarks); `'auto'` restores the choice. */
export function setFilterGradStrategy(strategy: 'auto' | 'conv' | 'matmul'): void {
  filterGradStrategy = strategy;
}

function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs) {
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

/**
 * Reverses a [KH, KW, ...] filter over both spatial axes: the taps in reverse order, each a
 * contiguous block, copied on the heap (wasm's Reverse kernel took 106 ms for 3x3x512x512).
 */
function flipTaps(b: Backend, filter: TensorInfo): TensorInfo {
  const hb = b as HeapBackend;
  if (filter.dtype !== 'float32' || typeof hb.typedArrayFromHeap !== 'function')
    return call('Reverse', b, { x: filter }, { dims: [0, 1] });
  const [kh, kw] = filter.shape as [number, number];
  const taps = kh * kw;
  const out = hb.makeOutput(filter.shape, 'float32');
  // Views after makeOutput: allocating may grow (and move) the heap.
  const src = hb.typedArrayFromHeap(filter);
  const dst = hb.typedArrayFromHeap(out);
  const block = src.length / taps;
  for (let t = 0; t < taps; t++) dst.set(src.subarray(t * block, (t + 1) * block), (taps - 1 - t) * block);
  return out;
}

/** dx = conv2d(dilate(dy), flip(W)^T): a forward convolution on XNNPACK. */
function conv2DBackpropInput({ inputs, backend, attrs }: KernelArgs) {
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
  if (pointwiseByWeightsAsA(info)) return pointwiseInputGrad(b, dy, filter, info);
  if (useMatMulForInputGrad(info) && dy.dtype === 'float32' && filter.dtype === 'float32') {
    const dx = inputGradByMatMul(b, dy, filter, info);
    if (dx) return dx;
  }
  return scoped(b, (keep) => {
    const pointwise = info.filterHeight === 1 && info.filterWidth === 1;
    const flipped = pointwise ? filter : keep(flipTaps(b, filter));
    const w = keep(call('Transpose', b, { x: flipped }, { perm: [0, 1, 3, 2] }));
    const padded = fullCorrelationInput(b, keep, dy, info);
    return call(
      'Conv2D',
      b,
      { x: padded, filter: w },
      { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] },
    );
  });
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

/**
 * Depthwise dW[kh, kw, c, 0] = sum over N, OH, OW of x-tap * dy (channel multiplier 1): one SIMD
 * pass over the heap that skips the padding (MobileNetV2's stride-2 8.9 s -> ~20 ms at batch 32,
 * where per-tap strided slices were slow), else per-tap slices, products and sums.
 */
function depthwiseBackpropFilter({ inputs, backend, attrs }: KernelArgs) {
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
  if (simd && x.dtype === 'float32' && dy.dtype === 'float32') {
    const hb = b as HeapBackend;
    const out = hb.makeOutput(filterShape, 'float32');
    hb.typedArrayFromHeap(out).fill(0);
    const ptr = (t: TensorInfo) => hb.getMemoryOffset(t.dataId);
    simd.depthwise_filter_grad(
      ptr(x),
      ptr(dy),
      ptr(out),
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.dilationHeight,
      info.dilationWidth,
      info.padInfo.top,
      info.padInfo.left,
    );
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

/** Depthwise dx = depthwise conv of dilate(dy) with the flipped filter (channel multiplier 1). */
function depthwiseBackpropInput({ inputs, backend, attrs }: KernelArgs) {
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
  return scoped(b, (keep) => {
    const w = keep(flipTaps(b, filter));
    const padded = fullCorrelationInput(b, keep, dy, info);
    return call(
      'DepthwiseConv2dNative',
      b,
      { x: padded, filter: w },
      { strides: [1, 1], pad: 'valid', dilations: [1, 1], dataFormat: 'NHWC' },
    );
  });
}

/** The shipped wasm kernel of `name`, captured before this library replaces it. */
const shipped = new Map<string, tf.KernelFunc>();
function original(
  name: string,
  b: Backend,
  inputs: Record<string, TensorInfo> | TensorInfo[],
  attrs: Attrs = {},
): TensorInfo {
  const fn = shipped.get(name);
  if (!fn) throw new Error(`medimg-classify: no shipped wasm kernel '${name}'`);
  return fn({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend: b,
    attrs: attrs as tf.NamedAttrMap,
  }) as TensorInfo;
}

/** Right operands XNNPACK has packed already: it caches the packed form by the tensor's buffer. */
const packedRight = new WeakSet<object>();
/** Measured costs per value moved (ns): packing a fresh right operand, and a heap transpose. */
const PACK_NS = 20;
const TRANSPOSE_NS = 4;

/**
 * Matrix products on XNNPACK, choosing the cheaper arrangement.
 * - wasm's BatchMatMul runs ~15x slower with a transpose flag set (1.8 vs 25 GFLOP/s here), and
 *   every matmul gradient sets one. So the operand is transposed explicitly and the product is
 *   taken without flags.
 * - XNNPACK repacks its right operand whenever that is a new tensor (~20 ns per value), and a
 *   trained layer's weights are new every step. When the right operand is the large one, the
 *   product is computed transposed, (a . b)^T = b^T . a^T, so that the small operand is the one
 *   packed. This is the case for a dense layer after a large flatten: SimpleCNN's 32768 x 128
 *   weights against a batch of 32.
 */
function batchMatMul({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: Attrs;
}) {
  const b = backend as Backend;
  const { a, b: bb } = inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const flip = (t: TensorInfo, keep: (t: TensorInfo) => TensorInfo) => {
    const perm = t.shape.map((_, i) => i);
    const r = perm.length;
    [perm[r - 2], perm[r - 1]] = [perm[r - 1] as number, perm[r - 2] as number];
    return keep(call('Transpose', b, { x: t }, { perm }));
  };
  const unbatched = (t: TensorInfo) => t.shape.slice(0, -2).every((d) => d === 1);
  if (unbatched(a) && unbatched(bb) && a.dtype === 'float32' && bb.dtype === 'float32') {
    const [ar, ac] = a.shape.slice(-2) as [number, number];
    const [br, bc] = bb.shape.slice(-2) as [number, number];
    const [m, k] = transposeA ? [ac, ar] : [ar, ac];
    const n = transposeB ? br : bc;
    const cached = !transposeB && packedRight.has(bb.dataId);
    const direct =
      (transposeA ? m * k * TRANSPOSE_NS : 0) +
      (transposeB ? n * k * TRANSPOSE_NS : 0) +
      (cached ? 0 : n * k * PACK_NS);
    const swapped =
      (transposeB ? 0 : n * k * TRANSPOSE_NS) +
      (transposeA ? 0 : m * k * TRANSPOSE_NS) +
      m * k * PACK_NS +
      m * n * TRANSPOSE_NS;
    if (swapped < direct) {
      return scoped(b, (keep) => {
        // b^T as [1, N, K] and a^T as [1, K, M]: given that way when flagged, else transposed.
        const bt = keep(reshape(b, transposeB ? bb : flip(bb, keep), [1, n, k]));
        const at = keep(reshape(b, transposeA ? a : flip(a, keep), [1, k, m]));
        const yt = keep(
          original('BatchMatMul', b, { a: bt, b: at }, { transposeA: false, transposeB: false }),
        );
        const y = keep(call('Transpose', b, { x: yt }, { perm: [0, 2, 1] }));
        const outBatch = (a.shape.length >= bb.shape.length ? a : bb).shape.slice(0, -2);
        return reshape(b, y, [...outBatch, m, n]);
      });
    }
  }
  if (!transposeA && !transposeB) {
    packedRight.add(bb.dataId);
    return original('BatchMatMul', b, { a, b: bb }, attrs);
  }
  return scoped(b, (keep) =>
    original(
      'BatchMatMul',
      b,
      { a: transposeA ? flip(a, keep) : a, b: transposeB ? flip(bb, keep) : bb },
      { transposeA: false, transposeB: false },
    ),
  );
}

/** Axes as sorted non-negative numbers. */
function normAxes(axis: number | number[] | undefined, rank: number): number[] {
  const list =
    axis === undefined ? Array.from({ length: rank }, (_, i) => i) : Array.isArray(axis) ? axis : [axis];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

/** The wasm backend's view of its heap (public methods of BackendWasm). */
type HeapBackend = Backend & {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  getMemoryOffset(dataId: object): number;
};

/**
 * Sum and Mean over the leading axes (per-channel statistics of NHWC tensors, as batch
 * normalisation and its gradient compute them, and bias gradients) in one pass over the wasm
 * heap, accumulated in float64: the SIMD column sums, else a JavaScript loop adding eight rows
 * per step. wasm's own reduction transposes the tensor first (74 ms for 16.7M values here). A
 * matrix product with a ones vector on XNNPACK is slower still on fresh data: it packs
 * (transposes) its right operand first.
 */
function leadingReduction(kind: 'Sum' | 'Mean') {
  return ({ inputs, backend, attrs }: KernelArgs) => {
    const b = backend as HeapBackend;
    const { x } = inputs as { x: TensorInfo };
    const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = normAxes(axis, rank);
    const leading = axes.length > 0 && axes.length < rank && axes.every((v, i) => v === i);
    if (!leading || x.dtype !== 'float32' || typeof b.typedArrayFromHeap !== 'function')
      return original(kind, b, { x }, attrs);
    const rows = axes.reduce((p, v) => p * (x.shape[v] as number), 1);
    const rest = x.shape.slice(axes.length);
    const cols = rest.reduce((p, d) => p * d, 1);
    const out = b.makeOutput(keepDims ? [...axes.map(() => 1), ...rest] : rest, 'float32');
    const simd = heapSimd(b);
    let acc: Float64Array;
    if (simd) {
      // A float64 accumulator on the heap: [cols] doubles in a float32 buffer of twice the length.
      const scratch = b.makeOutput([2 * cols], 'float32');
      const bytes = b.typedArrayFromHeap(scratch);
      bytes.fill(0);
      const at = b.getMemoryOffset(scratch.dataId); // malloc aligns to at least 8 bytes
      simd.column_sums(b.getMemoryOffset(x.dataId), rows, cols, at);
      acc = new Float64Array(b.typedArrayFromHeap(scratch).buffer, at, cols).slice();
      b.disposeData(scratch.dataId);
    } else {
      // Views after makeOutput: allocating may grow (and move) the heap.
      acc = columnSums(b.typedArrayFromHeap(x), rows, cols);
    }
    const dst = b.typedArrayFromHeap(out);
    const scale = kind === 'Mean' ? 1 / rows : 1;
    for (let c = 0; c < cols; c++) dst[c] = (acc[c] as number) * scale;
    return out;
  };
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

/**
 * MaxPool's gradient in one pass over the wasm heap: each output's gradient goes to the first
 * maximum of its window in row-major order, exactly as tfjs's cpu backend routes it (the
 * shipped wasm kernel took ~0.25 s per 2x2 pooling layer of a SimpleCNN step here).
 */
function maxPoolGrad({ inputs, backend, attrs }: KernelArgs) {
  const b = backend as HeapBackend;
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: 'same' | 'valid' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (input.dtype !== 'float32' || typeof b.typedArrayFromHeap !== 'function')
    return original('MaxPoolGrad', b, inputs as Record<string, TensorInfo>, attrs);
  const info = tf.backend_util.computePool2DInfo(
    input.shape as Shape4,
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const { top, left } = info.padInfo;
  const out = b.makeOutput(input.shape, 'float32');
  const x = b.typedArrayFromHeap(input);
  const g = b.typedArrayFromHeap(dy);
  const dx = b.typedArrayFromHeap(out);
  dx.fill(0);
  if (fh === 2 && fw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0 && 2 * OH <= H && 2 * OW <= W) {
    const simd = heapSimd(b);
    if (simd && C % 4 === 0) {
      const ptr = (t: TensorInfo) => b.getMemoryOffset(t.dataId);
      simd.maxpool_grad_2x2(ptr(input), ptr(dy), ptr(out), n, H, W, C, OH, OW);
    } else maxPoolGrad2x2(x, g, dx, n, H, W, C, OH, OW);
    return out;
  }
  for (let i = 0; i < n; i++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = oh * sh - top;
      for (let ow = 0; ow < OW; ow++) {
        const c0 = ow * sw - left;
        const gBase = ((i * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = r0; r < r0 + fh; r++) {
            if (r < 0 || r >= H) continue;
            for (let q = c0; q < c0 + fw; q++) {
              if (q < 0 || q >= W) continue;
              const idx = ((i * H + r) * W + q) * C + c;
              const v = x[idx] as number;
              if (v > best) {
                best = v;
                at = idx;
              }
            }
          }
          if (at >= 0) dx[at] = (dx[at] as number) + (g[gBase + c] as number);
        }
      }
    }
  }
  return out;
}

/**
 * The common 2x2/2 unpadded pooling: windows do not overlap, so each input receives at most one
 * gradient, and the four candidates are compared in row-major order (first maximum wins).
 */
function maxPoolGrad2x2(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  n: number,
  H: number,
  W: number,
  C: number,
  OH: number,
  OW: number,
): void {
  const rowStride = W * C;
  let gi = 0;
  for (let i = 0; i < n; i++) {
    for (let oh = 0; oh < OH; oh++) {
      const rowBase = (i * H + 2 * oh) * rowStride;
      for (let ow = 0; ow < OW; ow++) {
        const p0 = rowBase + 2 * ow * C;
        for (let c = 0; c < C; c++, gi++) {
          const a = p0 + c;
          const b2 = a + C;
          const c3 = a + rowStride;
          const d = c3 + C;
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          let v = x[a] as number;
          if (v > best) {
            best = v;
            at = a;
          }
          v = x[b2] as number;
          if (v > best) {
            best = v;
            at = b2;
          }
          v = x[c3] as number;
          if (v > best) {
            best = v;
            at = c3;
          }
          v = x[d] as number;
          if (v > best) at = d;
          if (at >= 0) dx[at] = g[gi] as number;
        }
      }
    }
  }
}

/**
 * Identity without a copy: the result shares the input's buffer and holds a reference of its
 * own, as on the cpu backend (tensors are immutable). While gradients are recorded, tfjs clones
 * every tensor a gradient will need, and wasm's shipped Identity copied each one: 662 copies,
 * ~0.4 s of a 4 s ResNet50V2 step.
 */
function identity({ inputs, backend }: KernelArgs): TensorInfo {
  const { x } = inputs as { x: TensorInfo };
  const b = backend as HeapBackend & { incRef?(dataId: object): void };
  if (x.dtype === 'string' || typeof b.incRef !== 'function') return original('Identity', b, { x });
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * Inference-mode BatchNorm with per-channel statistics as one pass over the heap:
 * y = x * a[c] + b[c], a = scale / sqrt(variance + eps), b = offset - mean * a (the factors in
 * float64, rounded to float32 for the SIMD loop). wasm's kernel took ~3.8 ns per element (0.3 s
 * of a ResNet50V2 conv5 step for frozen layers), a JavaScript loop ~4.4, the SIMD loop ~0.5.
 */
function fusedBatchNorm({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo | undefined> & {
    x: TensorInfo;
    mean: TensorInfo;
    variance: TensorInfo;
  };
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  const c = x.shape[x.shape.length - 1] as number;
  const params = [mean, variance, offset, scale].filter((t): t is TensorInfo => t !== undefined);
  const size = tf.util.sizeFromShape(x.shape);
  if (
    x.dtype !== 'float32' ||
    typeof b.typedArrayFromHeap !== 'function' ||
    size === 0 ||
    params.some((t) => t.dtype !== 'float32' || tf.util.sizeFromShape(t.shape) !== c)
  )
    return original('FusedBatchNorm', b, inputs as Record<string, TensorInfo>, attrs);
  const out = b.makeOutput(x.shape, 'float32');
  const simd = heapSimd(b);
  const coeffs = simd ? b.makeOutput([2 * c], 'float32') : null;
  // Views after makeOutput: allocating may grow (and move) the heap.
  const m = b.typedArrayFromHeap(mean);
  const v = b.typedArrayFromHeap(variance);
  const o = offset ? b.typedArrayFromHeap(offset) : undefined;
  const s = scale ? b.typedArrayFromHeap(scale) : undefined;
  const a = coeffs ? b.typedArrayFromHeap(coeffs).subarray(0, c) : new Float64Array(c);
  const shift = coeffs ? b.typedArrayFromHeap(coeffs).subarray(c) : new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const aj = (s ? (s[j] as number) : 1) / Math.sqrt((v[j] as number) + eps);
    a[j] = aj;
    shift[j] = (o ? (o[j] as number) : 0) - (m[j] as number) * aj;
  }
  if (simd && coeffs) {
    const at = b.getMemoryOffset(coeffs.dataId);
    const ptr = (t: TensorInfo) => b.getMemoryOffset(t.dataId);
    simd.affine_channels(ptr(x), ptr(out), at, at + 4 * c, size / c, c);
    b.disposeData(coeffs.dataId);
    return out;
  }
  const src = b.typedArrayFromHeap(x);
  const dst = b.typedArrayFromHeap(out);
  for (let i = 0; i < size; i += c) {
    for (let j = 0; j < c; j++) dst[i + j] = (src[i + j] as number) * (a[j] as number) + (shift[j] as number);
  }
  return out;
}

/**
 * One AdaBelief step per variable in a single pass over the heap, instead of ~12 tfjs ops that
 * each read and write the whole tensor (~0.2 s of a ResNet50V2 conv5 step). Same float32
 * operations in the same order as the op-by-op update, so the same numbers.
 */
function adaBeliefUpdate({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const b = backend as HeapBackend;
  const { p, g, m, s } = inputs as Record<'p' | 'g' | 'm' | 's', TensorInfo>;
  const { decay, beta1, beta2, epsilon, root, alpha, sgd } = attrs as unknown as AdaBeliefUpdateAttrs;
  const n = tf.util.sizeFromShape(p.shape);
  for (const [name, t] of Object.entries({ p, g, m, s })) {
    if (t.dtype !== 'float32' || tf.util.sizeFromShape(t.shape) !== n)
      throw new Error(
        `medimg-classify: ${ADABELIEF_UPDATE_KERNEL} needs float32 tensors of one size; ${name} is ${t.dtype} [${t.shape}], p [${p.shape}]`,
      );
  }
  const outs = [
    b.makeOutput(p.shape, 'float32'),
    b.makeOutput(m.shape, 'float32'),
    b.makeOutput(s.shape, 'float32'),
  ];
  const [pOut, mOut, sOut] = outs as [TensorInfo, TensorInfo, TensorInfo];
  // The update's float32 constants, in the SIMD function's parameter order.
  const constants = [decay, beta1, 1 - beta1, beta2, 1 - beta2, epsilon, root, alpha] as const;
  const simd = heapSimd(b);
  if (simd) {
    const [src, grad, mean, belief, pNext, mNext, sNext] = [p, g, m, s, pOut, mOut, sOut].map((t) =>
      b.getMemoryOffset(t.dataId),
    ) as [number, number, number, number, number, number, number];
    simd.adabelief(src, grad, mean, belief, pNext, mNext, sNext, n, ...constants, sgd ? 1 : 0);
    return outs;
  }
  const f = Math.fround;
  const [cDecay, cBeta1, cOmb1, cBeta2, cOmb2, cEps, cRoot, cAlpha] = constants.map(
    f,
  ) as unknown as typeof constants;
  // Views after makeOutput: allocating may grow (and move) the heap.
  const [vp, vg, vm, vs, op, om, os] = [p, g, m, s, pOut, mOut, sOut].map((t) => b.typedArrayFromHeap(t));
  for (let i = 0; i < n; i++) {
    const gi = vg![i] as number;
    const mi = f(f((vm![i] as number) * cBeta1) + f(gi * cOmb1));
    const r = f(gi - mi);
    const si = f(f(f((vs![i] as number) * cBeta2) + f(f(r * r) * cOmb2)) + cEps);
    const step = sgd ? mi : f(mi / f(f(f(Math.sqrt(si)) / cRoot) + cEps));
    om![i] = mi;
    os![i] = si;
    op![i] = f(f((vp![i] as number) * cDecay) - f(step * cAlpha));
  }
  return outs;
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
function transpose({ inputs, backend, attrs }: KernelArgs): TensorInfo {
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

/** Kernel behind the ClipByValue gradient on wasm (see registerClipByValueGradient). */
export const CLIP_GRAD_KERNEL = 'MedimgClipByValueGrad';

/** dx = lo <= x <= hi ? dy : 0 in one pass (tfjs composes 5 ops: 2 compares, and, zeros, select). */
function clipByValueGrad({ inputs, backend, attrs }: KernelArgs): TensorInfo {
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
    simd.clip_grad(
      b.getMemoryOffset(x.dataId),
      b.getMemoryOffset(dy.dataId),
      b.getMemoryOffset(out.dataId),
      n,
      lo,
      hi,
    );
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

const KERNELS: [string, (args: KernelArgs) => TensorInfo][] = [
  ['Identity', identity],
  [ADABELIEF_UPDATE_KERNEL, adaBeliefUpdate as unknown as (args: KernelArgs) => TensorInfo],
  [CLIP_GRAD_KERNEL, clipByValueGrad],
  ['Transpose', transpose],
  ['FusedBatchNorm', fusedBatchNorm],
  ['MaxPoolGrad', maxPoolGrad],
  ['BatchMatMul', batchMatMul],
  ['Sum', leadingReduction('Sum')],
  ['Mean', leadingReduction('Mean')],
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['Conv2DBackpropInput', conv2DBackpropInput],
  ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter],
  ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput],
];

let registered = false;

/**
 * Registers this library's training kernels for the wasm backend (idempotent). Replaces the
 * shipped `Conv2DBackpropInput` with the faster composite. Called by `setupBackend('wasm')`.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  for (const [kernelName, kernelFunc] of KERNELS) {
    const existing = tf.getKernel(kernelName, 'wasm');
    if (existing) {
      shipped.set(kernelName, existing.kernelFunc);
      tf.unregisterKernel(kernelName, 'wasm');
    }
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
  }
  registerBatchNormGradient();
  registerClipByValueGradient();
  registered = true;
}

/**
 * The gradient of FusedBatchNorm with the same formulas as tfjs-core's, but broadcasting the
 * per-channel factors instead of tiling them to the input's full size (the `Tile` took a third
 * of a SimpleCNN training step on wasm). Backend-independent; registered once.
 */
function registerBatchNormGradient(): void {
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const grad = dy as tf.Tensor;
      const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const scaleValue = scale ?? tf.scalar(1);
      const axes = tf.backend_util.getReductionAxes(mean.shape, x.shape);
      const reduce = (t: tf.Tensor) => (mean.rank === 1 ? tf.sum(t, axes) : t);
      const rstd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
      const xMinusMean = tf.sub(x, mean);
      const dyTimesScale = tf.mul(grad, scaleValue);
      const minusHalfRCube = tf.mul(tf.mul(tf.mul(rstd, rstd), rstd), tf.scalar(-0.5));
      return {
        x: () => tf.reshape(tf.mul(tf.mul(grad, rstd), scaleValue), x.shape),
        mean: () => tf.reshape(reduce(tf.mul(tf.mul(rstd, tf.scalar(-1)), dyTimesScale)), mean.shape),
        variance: () =>
          tf.reshape(reduce(tf.mul(tf.mul(minusHalfRCube, xMinusMean), dyTimesScale)), mean.shape),
        scale: () => tf.reshape(reduce(tf.mul(grad, tf.mul(xMinusMean, rstd))), mean.shape),
        offset: () => tf.reshape(reduce(grad), mean.shape),
      };
    },
  });
}

/**
 * The gradient of ClipByValue (ReLU6 in MobileNetV2) through {@link CLIP_GRAD_KERNEL} where the
 * backend has it, else tfjs's composite. 35 ReLU6 layers spent 1.7 s per MobileNetV2 training step
 * at batch 32 in the composite's compares, logical and, and select on wasm.
 */
function registerClipByValueGradient(): void {
  tf.registerGradient({
    kernelName: 'ClipByValue',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const grad = dy as tf.Tensor;
      const [x] = saved as [tf.Tensor];
      const { clipValueMin, clipValueMax } = attrs as unknown as {
        clipValueMin: number;
        clipValueMax: number;
      };
      return {
        x: () =>
          tf.getKernel(CLIP_GRAD_KERNEL, tf.getBackend()) && x.dtype === 'float32'
            ? (tf
                .engine()
                .runKernel(CLIP_GRAD_KERNEL, { x, dy: grad }, { clipValueMin, clipValueMax }) as tf.Tensor)
            : tf.where(
                tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax)),
                grad,
                tf.zerosLike(grad),
              ),
      };
    },
  });
}
