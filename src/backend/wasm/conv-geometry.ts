import * as tf from '@tensorflow/tfjs-core';
import {
  type Attrs,
  type Backend,
  type ConvAttrs,
  call,
  type HeapBackend,
  reshape,
  type Shape4,
  type TensorInfo,
} from './common.js';

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
export function tap(
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

export function paddedInput(
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

/** The convolution's geometry, refusing what these kernels do not handle. */
export function convInfo(
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
 * The input gradient of a convolution is a "full" correlation of dy with the flipped filter `w`
 * (for Conv2D also transposed to [kh, kw, co, ci]): dilate dy by the stride, then pad it so that a
 * stride-1 valid convolution gives the input size. At stride 1, where no side is cropped, the
 * padding is the convolution's own (XNNPACK's implicit zeros, the same sums): no padded copy of dy,
 * bit-identical (`bench/input-grad-pad.ts`, alternating in one process: MobileNetV2's trainable
 * 32x7x7x336 depthwise input gradient 0.58 -> 0.45 ms, its 32x112x112x16 8.9 -> 5.6 ms).
 */
export function fullCorrelation(
  b: Backend,
  keep: (t: TensorInfo) => TensorInfo,
  kernel: 'Conv2D' | 'DepthwiseConv2dNative',
  dy: TensorInfo,
  w: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): TensorInfo {
  const kh = info.filterHeight;
  const kw = info.filterWidth;
  const attrs = { strides: [1, 1], dataFormat: 'NHWC', dilations: [1, 1] };
  const { top, bottom, left, right } = info.padInfo;
  const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right];
  if (info.strideHeight === 1 && info.strideWidth === 1 && pads.every((p) => p >= 0)) {
    const [t, bo, l, r] = pads as [number, number, number, number];
    const pad = [
      [0, 0],
      [t, bo],
      [l, r],
      [0, 0],
    ];
    return call(kernel, b, { x: dy, filter: w }, { ...attrs, pad });
  }
  const dilated = dilateSpatial(b, keep, dy, info.strideHeight, info.strideWidth);
  const padTop = kh - 1 - top;
  const padLeft = kw - 1 - left;
  const padded = padOrCrop(b, keep, dilated, [
    [0, 0],
    [padTop, info.inHeight + kh - 1 - (dilated.shape[1] as number) - padTop],
    [padLeft, info.inWidth + kw - 1 - (dilated.shape[2] as number) - padLeft],
    [0, 0],
  ]);
  return call(kernel, b, { x: padded, filter: w }, { ...attrs, pad: 'valid' });
}

/** The forward geometry of a Conv2D/FusedConv2D call; null for NCHW or other ranks than 4. */
export function forwardInfo(
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Attrs,
): tf.backend_util.Conv2DInfo | null {
  const a = attrs as unknown as ConvAttrs;
  if (a.dataFormat === 'NCHW' || x.shape.length !== 4 || filter.shape.length !== 4) return null;
  return tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filter.shape as Shape4,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
}

/** The activations the heap convolution loops apply as they store, and their codes there. */
export type Activation = 'linear' | 'relu' | 'relu6';
export const ACTIVATION: Record<Activation, number> = { linear: 0, relu: 1, relu6: 2 };

/**
 * A forward convolution path on the heap: the output of `x` (NHWC) convolved with `filter` as
 * `info` describes (from {@link forwardInfo}), plus `bias` (one value per output channel, checked by
 * the caller), then `activation`; null where the path does not apply.
 */
export type ConvForward = (
  b: HeapBackend,
  x: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  bias: TensorInfo | null,
  activation: Activation,
) => TensorInfo | null;
