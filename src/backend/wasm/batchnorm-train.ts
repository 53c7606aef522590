/**
 * Training-mode batch normalisation and its gradient on the heap (see the kernel names' docs):
 * two passes each, one for the per-channel sums (in float64) and one affine, SIMD where
 * heap-simd loads. The ops they replace made about ten passes forward and ten backward, each a
 * kernel call: on SimpleCNN's
 * 32x128x128x32 activations a pass is ~67 MB, and MobileNetV2's trainable blocks ran ~300 small
 * kernels per step for their 13 BatchNormalization layers.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BATCHNORM_TRAIN_GRAD_KERNEL, BATCHNORM_TRAIN_KERNEL } from '../kernel-names.js';
import type { HeapBackend, KernelArgs, TensorInfo } from './common.js';
import { runSpread, share, threadsFor } from './heap-parallel.js';
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
 * float64 per-channel sums of a and of a * b over the rows (b = a: of its squares), the products
 * in float64 (exact): the heap-simd-train loop `column_moments`, else JavaScript. One pass.
 */
function moments(
  b: HeapBackend,
  a: TensorInfo,
  x: TensorInfo,
  m: number,
  c: number,
): [Float64Array, Float64Array] {
  const simd = heapSimd(b);
  let sums: Float64Array;
  if (simd) {
    const [pa, px] = [a, x].map((t) => b.getMemoryOffset(t.dataId)) as [number, number];
    sums = chunkedColumnSums(
      b,
      simd,
      'column_moments',
      m,
      c,
      (r0, count, acc) => [pa + r0 * c * 4, px + r0 * c * 4, count, c, acc, acc + c * 8],
      2,
    );
  } else {
    const av = b.typedArrayFromHeap(a);
    const xv = b.typedArrayFromHeap(x);
    sums = new Float64Array(2 * c);
    for (let r = 0, o = 0; r < m; r++, o += c) {
      for (let j = 0; j < c; j++) {
        const v = av[o + j] as number;
        sums[j] = (sums[j] as number) + v;
        sums[c + j] = (sums[c + j] as number) + v * (xv[o + j] as number);
      }
    }
  }
  return [sums.subarray(0, c), sums.subarray(c)];
}

/** dst = g * p + ((x - mean) * q + s) per channel (g = null: p = 0), on the heap. */
function centeredAffine(
  b: HeapBackend,
  x: TensorInfo,
  g: TensorInfo | null,
  dst: TensorInfo,
  vectors: [Float32Array, Float32Array, Float32Array, Float32Array],
  m: number,
  c: number,
): void {
  const simd = heapSimd(b);
  if (simd) {
    const f = b.makeOutput([4 * c], 'float32');
    const fv = b.typedArrayFromHeap(f);
    vectors.forEach((v, i) => fv.set(v, i * c));
    const [px, pg, pd, pf] = [x, g ?? x, dst, f].map((t) => b.getMemoryOffset(t.dataId)) as number[];
    // Rows split over the heap pool's threads: no sums, the same numbers on any count.
    const threads = threadsFor(b, m, (g ? 3 : 2) * m * c);
    const calls = Array.from({ length: threads }, (_, t) => {
      const [r0, r1] = share(m, threads, t);
      const o = r0 * c * 4;
      return [[(px as number) + o, (pg as number) + o, (pd as number) + o, pf as number, r1 - r0, c]];
    });
    runSpread(b, 'centered_affine', simd, calls);
    b.disposeData(f.dataId);
    return;
  }
  const [mean, p, q, s] = vectors;
  const xv = b.typedArrayFromHeap(x);
  const gv = g ? b.typedArrayFromHeap(g) : null;
  const out = b.typedArrayFromHeap(dst);
  for (let r = 0, o = 0; r < m; r++, o += c) {
    for (let j = 0; j < c; j++) {
      const centered = Math.fround(
        Math.fround(((xv[o + j] as number) - (mean[j] as number)) * (q[j] as number)) + (s[j] as number),
      );
      out[o + j] = gv ? Math.fround((gv[o + j] as number) * (p[j] as number)) + centered : centered;
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
  centeredAffine(b, x, null, y, [mean, new Float32Array(c), a, beta], m, c);
  const meanOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(meanOut).set(mean);
  const varianceOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(varianceOut).set(variance);
  return [y, meanOut, varianceOut];
}

export function batchNormTrainGrad({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const b = backend as HeapBackend;
  const { dy, x, mean, variance, scale } = inputs as Record<
    'dy' | 'x' | 'mean' | 'variance' | 'scale',
    TensorInfo
  >;
  const eps = (attrs as { varianceEpsilon: number }).varianceEpsilon;
  const { c, m } = rows(x, BATCHNORM_TRAIN_GRAD_KERNEL);
  checkFloat(BATCHNORM_TRAIN_GRAD_KERNEL, { dy, x, mean, variance, scale }, c);
  if (!tf.util.arraysEqual(dy.shape, x.shape))
    throw new Error(
      `medimg-classify: ${BATCHNORM_TRAIN_GRAD_KERNEL}: dy [${dy.shape}] and x [${x.shape}] differ`,
    );
  const mu = b.typedArrayFromHeap(mean).slice();
  const rstd = rstdOf(b.typedArrayFromHeap(variance), eps);
  const gamma = b.typedArrayFromHeap(scale).slice();
  // dbeta = sum(dy), sum(dy * (x - mean)) = sum(dy * x) - mean * sum(dy), from one pass.
  const [dbeta, dyx] = moments(b, dy, x, m, c);
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
  centeredAffine(b, x, dy, dx, [mu, a, slope, shift], m, c);
  const dgammaOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(dgammaOut).set(dgamma);
  const dbetaOut = b.makeOutput([c], 'float32');
  b.typedArrayFromHeap(dbetaOut).set(Float32Array.from(dbeta));
  return [dx, dgammaOut, dbetaOut];
}
