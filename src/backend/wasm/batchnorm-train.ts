/**
 * Training-mode batch normalisation and its gradient on the heap (see the kernel names' docs):
 * two passes each, one for the per-channel sums (in float64) and one affine, SIMD where
 * heap-simd loads. The ops they replace made about ten passes forward and ten backward, each a
 * kernel call: on SimpleCNN's
 * 32x128x128x32 activations a pass is ~67 MB, and MobileNetV2's trainable blocks ran ~300 small
 * kernels per step for their 13 BatchNormalization layers.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  BATCHNORM_TRAIN_GRAD_KERNEL,
  BATCHNORM_TRAIN_KERNEL,
  type BatchNormActivation,
} from '../kernel-names.js';
import { floatBits, type HeapBackend, type KernelArgs, type TensorInfo } from './common.js';
import { runShares, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';
import { chunkedColumnSums } from './reductions.js';

/** Channels and values per channel of a [..., channels] input. */
function rows(x: TensorInfo, kernel: string): { c: number; m: number } {
  const c = x.shape[x.shape.length - 1] as number;
  const size = tf.util.sizeFromShape(x.shape);
  if (x.shape.length < 2 || c === 0 || size === 0)
    throw new Error(`medimg-classify: ${kernel} needs a non-empty [..., channels] input; got [${x.shape}]`);
  return { c, m: size / c };
}

function checkFloat(kernel: string, tensors: Record<string, TensorInfo>, c: number): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'float32')
      throw new Error(`medimg-classify: ${kernel} needs float32 ${name}; got ${t.dtype}`);
    if (t.shape.length === 1 && t.shape[0] !== c)
      throw new Error(`medimg-classify: ${kernel}: ${name} has ${t.shape[0]} values for ${c} channels`);
  }
}

/**
 * A fused activation (`activation` attribute): the output's clamp [lo, hi], and its gradient's
 * mask, dy passing where y > lo and not y >= hi (NaN: no upper bound). ReLU passes where y > 0, an
 * infinite y too, as tfjs's step(x) does; ReLU6 where 0 < y < 6, as TensorFlow's Relu6Grad does;
 * a NaN y passes neither. Null for none.
 */
function activationOf(
  kernel: string,
  attrs: unknown,
): { clamp: [number, number]; mask: [number, number] } | null {
  const act = (attrs as { activation?: BatchNormActivation }).activation ?? 'linear';
  if (act === 'linear') return null;
  if (act === 'relu') return { clamp: [0, Number.POSITIVE_INFINITY], mask: [0, Number.NaN] };
  if (act === 'relu6') return { clamp: [0, 6], mask: [0, 6] };
  throw new Error(`medimg-classify: ${kernel}: unknown activation '${act}' (linear, relu or relu6)`);
}

/** A mask for a gradient: values count where y > lo and not y >= hi (y the activation's output). */
interface Mask {
  y: TensorInfo;
  bounds: [number, number];
}

/**
 * v clamped to [lo, hi] as the heap loop does (pmax, then pmin): NaN to lo, as tfjs's wasm Relu
 * and ClipByValue map it.
 */
const clamped = (v: number, [lo, hi]: [number, number]) => {
  const r = lo < v ? v : lo;
  return r < hi ? r : hi;
};

/** Whether y passes the mask bounds. */
const passes = (v: number, [lo, hi]: [number, number]) => v > lo && !(v >= hi);

/**
 * float64 per-channel sums of a and of a * b over the rows (b = a: of its squares), the products
 * in float64 (exact): the heap-simd-train loop `column_moments`, else JavaScript. One pass. With
 * a mask, a counts only where it passes.
 */
function moments(
  b: HeapBackend,
  a: TensorInfo,
  x: TensorInfo,
  m: number,
  c: number,
  mask: Mask | null = null,
): [Float64Array, Float64Array] {
  const simd = heapSimd(b);
  let sums: Float64Array;
  if (simd) {
    const [pa, px] = [a, x].map((t) => b.getMemoryOffset(t.dataId)) as [number, number];
    const py = mask ? b.getMemoryOffset(mask.y.dataId) : 0;
    const [lo, hi] = mask ? floatBits(...mask.bounds) : [0, 0];
    sums = chunkedColumnSums(
      b,
      simd,
      'column_moments',
      m,
      c,
      (r0, count, acc) => [
        pa + r0 * c * 4,
        px + r0 * c * 4,
        count,
        c,
        acc,
        acc + c * 8,
        mask ? py + r0 * c * 4 : 0,
        lo as number,
        hi as number,
      ],
      2,
    );
  } else {
    const av = b.typedArrayFromHeap(a);
    const xv = b.typedArrayFromHeap(x);
    const yv = mask ? b.typedArrayFromHeap(mask.y) : null;
    sums = new Float64Array(2 * c);
    for (let r = 0, o = 0; r < m; r++, o += c) {
      for (let j = 0; j < c; j++) {
        const v = yv && !passes(yv[o + j] as number, (mask as Mask).bounds) ? 0 : (av[o + j] as number);
        sums[j] = (sums[j] as number) + v;
        sums[c + j] = (sums[c + j] as number) + v * (xv[o + j] as number);
      }
    }
  }
  return [sums.subarray(0, c), sums.subarray(c)];
}

/**
 * dst = g * p + ((x - mean) * q + s) per channel (g = null: p = 0), on the heap; g counts only
 * where it passes `mask`, and with `clamp` [lo, hi] dst is clamped to it (a fused ReLU or ReLU6).
 */
function centeredAffine(
  b: HeapBackend,
  x: TensorInfo,
  g: TensorInfo | null,
  dst: TensorInfo,
  vectors: [Float32Array, Float32Array, Float32Array, Float32Array],
  m: number,
  c: number,
  { mask = null, clamp = null }: { mask?: Mask | null; clamp?: [number, number] | null } = {},
): void {
  const simd = heapSimd(b);
  if (simd) {
    const f = b.makeOutput([4 * c], 'float32');
    const fv = b.typedArrayFromHeap(f);
    vectors.forEach((v, i) => fv.set(v, i * c));
    const [px, pg, pd, pf] = [x, g ?? x, dst, f].map((t) => b.getMemoryOffset(t.dataId)) as number[];
    const py = mask ? b.getMemoryOffset(mask.y.dataId) : 0;
    const [lo, hi] = floatBits(...(mask?.bounds ?? clamp ?? [0, 0])) as [number, number];
    // Rows split over the heap pool's threads: no sums, the same numbers on any count.
    const threads = threadsFor(b, m, ((g ? 3 : 2) + (mask ? 1 : 0)) * m * c);
    runShares(b, 'centered_affine', simd, threads, m, 1, (r0, r1) => {
      const o = r0 * c * 4;
      return [
        (px as number) + o,
        (pg as number) + o,
        (pd as number) + o,
        pf as number,
        r1 - r0,
        c,
        mask ? py + o : 0,
        lo,
        hi,
        clamp ? 1 : 0,
      ];
    });
    b.disposeData(f.dataId);
    return;
  }
  const [mean, p, q, s] = vectors;
  const xv = b.typedArrayFromHeap(x);
  const gv = g ? b.typedArrayFromHeap(g) : null;
  const yv = mask ? b.typedArrayFromHeap(mask.y) : null;
  const out = b.typedArrayFromHeap(dst);
  for (let r = 0, o = 0; r < m; r++, o += c) {
    for (let j = 0; j < c; j++) {
      const centered = Math.fround(
        Math.fround(((xv[o + j] as number) - (mean[j] as number)) * (q[j] as number)) + (s[j] as number),
      );
      const gj = yv && !passes(yv[o + j] as number, (mask as Mask).bounds) ? 0 : (gv?.[o + j] as number);
      const v = gv ? Math.fround(gj * (p[j] as number)) + centered : centered;
      out[o + j] = clamp ? clamped(v, clamp) : v;
    }
  }
}

/** rsqrt(variance + eps) in float32, as tfjs's rsqrt(add(variance, eps)). */
function rstdOf(variance: Float32Array, eps: number): Float32Array {
  return variance.map((v) => Math.fround(1 / Math.sqrt(Math.fround(v + eps))));
}

export function batchNormTrain({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const b = backend as HeapBackend;
  const { x, scale, offset } = inputs as Record<'x' | 'scale' | 'offset', TensorInfo>;
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  const clamp = activationOf(BATCHNORM_TRAIN_KERNEL, attrs)?.clamp ?? null;
  const { c, m } = rows(x, BATCHNORM_TRAIN_KERNEL);
  checkFloat(BATCHNORM_TRAIN_KERNEL, { x, scale, offset }, c);
  // mean = E[x], variance = E[x^2] - E[x]^2, in float64 from one pass (exact squares: the
  // difference loses ~(mean^2 / variance) x 2^-53, far below float32's rounding).
  const [sums, squares] = moments(b, x, x, m, c);
  const mean = Float32Array.from(sums, (v) => v / m);
  const variance = Float32Array.from(sums, (v, j) => Math.max(0, (squares[j] as number) / m - (v / m) ** 2));
  const gamma = b.typedArrayFromHeap(scale).slice();
  const beta = b.typedArrayFromHeap(offset).slice();
  const rstd = rstdOf(variance, eps);
  const a = gamma.map((g, j) => g * (rstd[j] as number));
  const y = b.makeOutput(x.shape, 'float32');
  centeredAffine(b, x, null, y, [mean, new Float32Array(c), a, beta], m, c, { clamp });
  const meanOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(meanOut).set(mean);
  const varianceOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(varianceOut).set(variance);
  return [y, meanOut, varianceOut];
}

export function batchNormTrainGrad({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const b = backend as HeapBackend;
  const { dy, x, mean, variance, scale, y } = inputs as Record<
    'dy' | 'x' | 'mean' | 'variance' | 'scale',
    TensorInfo
  > & { y?: TensorInfo };
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  const bounds = activationOf(BATCHNORM_TRAIN_GRAD_KERNEL, attrs)?.mask ?? null;
  const { c, m } = rows(x, BATCHNORM_TRAIN_GRAD_KERNEL);
  checkFloat(BATCHNORM_TRAIN_GRAD_KERNEL, { dy, x, mean, variance, scale, ...(y ? { y } : {}) }, c);
  for (const [name, t] of [
    ['dy', dy],
    ['y', y],
  ] as const) {
    if (t && !tf.util.arraysEqual(t.shape, x.shape))
      throw new Error(
        `medimg-classify: ${BATCHNORM_TRAIN_GRAD_KERNEL}: ${name} [${t.shape}] and x [${x.shape}] differ`,
      );
  }
  if (bounds && !y)
    throw new Error(
      `medimg-classify: ${BATCHNORM_TRAIN_GRAD_KERNEL}: the activation's gradient needs the forward output y`,
    );
  const mask = bounds && y ? { y, bounds } : null;
  const mu = b.typedArrayFromHeap(mean).slice();
  const rstd = rstdOf(b.typedArrayFromHeap(variance), eps);
  const gamma = b.typedArrayFromHeap(scale).slice();
  // dbeta = sum(dy), sum(dy * (x - mean)) = sum(dy * x) - mean * sum(dy), from one pass.
  const [dbeta, dyx] = moments(b, dy, x, m, c, mask);
  const dgammaRaw = dbeta.map((v, j) => (dyx[j] as number) - (mu[j] as number) * v);
  const a = new Float32Array(c);
  const slope = new Float32Array(c);
  const shift = new Float32Array(c);
  const dgamma = new Float32Array(c);
  for (let j = 0; j < c; j++) {
    const r = rstd[j] as number;
    dgamma[j] = (dgammaRaw[j] as number) * r;
    a[j] = (gamma[j] as number) * r;
    shift[j] = -((a[j] as number) * (dbeta[j] as number)) / m;
    slope[j] = -((a[j] as number) * r * (dgamma[j] as number)) / m;
  }
  const dx = b.makeOutput(x.shape, 'float32');
  centeredAffine(b, x, dy, dx, [mu, a, slope, shift], m, c, { mask });
  const dgammaOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(dgammaOut).set(dgamma);
  const dbetaOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(dbetaOut).set(Float32Array.from(dbeta));
  return [dx, dgammaOut, dbetaOut];
}
