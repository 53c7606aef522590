import * as tf from '@tensorflow/tfjs-core';
import { type HeapBackend, type KernelArgs, original, type Shape4, type TensorInfo } from './common.js';
import { runShares, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

/**
 * MaxPool's gradient in one pass over the wasm heap: each output's gradient goes to the first
 * maximum of its window in row-major order, exactly as tfjs's cpu backend routes it (the
 * shipped wasm kernel took ~0.25 s per 2x2 pooling layer of a SimpleCNN step here).
 */
export function maxPoolGrad({ inputs, backend, attrs }: KernelArgs) {
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
  if (fh === 2 && fw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0 && 2 * OH <= H && 2 * OW <= W) {
    const simd = heapSimd(b);
    if (simd && C % 4 === 0) {
      // The loop writes every value of each window; only a last odd row or column needs zeros.
      if (2 * OH < H || 2 * OW < W) dx.fill(0);
      // Images split over the heap pool's threads (no sums: the same numbers on any count).
      const [px, pg, pdx] = [input, dy, out].map((t) => b.getMemoryOffset(t.dataId)) as [
        number,
        number,
        number,
      ];
      const threads = threadsFor(b, n, n * (2 * H * W + 2 * OH * OW) * C);
      const image = H * W * C * 4;
      runShares(b, 'maxpool_grad_2x2', simd, threads, n, 1, (i0, i1) => [
        px + i0 * image,
        pg + i0 * OH * OW * C * 4,
        pdx + i0 * image,
        i1 - i0,
        H,
        W,
        C,
        OH,
        OW,
      ]);
    } else {
      dx.fill(0);
      maxPoolGrad2x2(x, g, dx, n, H, W, C, OH, OW);
    }
    return out;
  }
  dx.fill(0);
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
