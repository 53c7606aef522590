import type * as tf from '@tensorflow/tfjs-core';
import {
  type Attrs,
  type Backend,
  call,
  type HeapBackend,
  original,
  reshape,
  scoped,
  type TensorInfo,
} from './common.js';
import { MAX_CALLS, panelShares, runSpread, share, threadsFor } from './heap-parallel.js';
import { heapSimd } from './heap-simd.js';

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
export function batchMatMul({
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
    // A dense layer's products: a batch of at most BATCH_ROWS rows, multiplied (forward, input
    // gradient) or contracted (weight gradient). Convolution gradients composed from matrix
    // products have N*H*W rows and stay on XNNPACK, which streams them better.
    const dense = (transposeA ? k : m) <= BATCH_ROWS;
    if (!cached && dense && m * n * k >= HEAP_MIN_MACS) {
      const outBatch = (a.shape.length >= bb.shape.length ? a : bb).shape.slice(0, -2);
      const y = matMulOnHeap(b as HeapBackend, a, bb, transposeA, transposeB, m, k, n);
      if (y) {
        const shaped = reshape(b, y, [...outBatch, m, n]);
        b.disposeData(y.dataId); // the reshape holds a reference of its own
        return shaped;
      }
    }
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

/** Products from this many multiply-adds run on the heap when XNNPACK would have to pack. */
const HEAP_MIN_MACS = 1 << 22;
/** The most batch rows a product on the heap takes (see `batchMatMul`). */
const BATCH_ROWS = 256;
/** Rows of the right operand per pass over the row blocks (512 x 128 floats stay in L2). */
const PANEL = 512;

/**
 * c [m, n] = a [m, k] . b [k, n] (rows of a `lda` floats apart) by the heap loop `gemm`: rows in
 * blocks of 4 split over the heap pool's threads (no sums across threads: the same numbers on any
 * count), each thread taking b in panels of {@link PANEL} rows (more when k needs over 64) that its
 * row blocks reuse from cache.
 */
export function gemmRows(
  b: HeapBackend,
  pa: number,
  pb: number,
  pc: number,
  m: number,
  k: number,
  n: number,
  lda: number,
) {
  const simd = heapSimd(b);
  if (!simd) throw new Error('medimg-classify: the heap loops are not available');
  const threads = threadsFor(b, m / 4);
  // At most MAX_CALLS panels: the pool takes that many calls per thread in one job.
  const panel = Math.max(PANEL, Math.ceil(k / MAX_CALLS));
  // Fixed shares, not balanced chunks: a thread's rows take each panel of b while it is in cache
  // (a dense layer's 4 MB-a-side weights against 32 rows: per 4-row chunk, b would stream from
  // memory once per chunk).
  const calls = panelShares(threads, m, 4, k, panel, (r0, r1, kp, kn) => [
    pa + (r0 * lda + kp) * 4,
    pb + kp * n * 4,
    pc + r0 * n * 4,
    r1 - r0,
    kn,
    n,
    lda,
    kp === 0 ? 1 : 0,
  ]);
  runSpread(b, 'gemm', simd, calls);
}

/**
 * An unbatched float32 product on the heap loops (`gemm`, `gemm_tn` in heap-simd-winograd.wat),
 * for a right operand XNNPACK would pack first (~20 ns a value: a dense layer's fresh 32768 x 128
 * weights, every training step): a . b as row blocks over panels of b; a^T . b as `gemm_tn` (the
 * weight gradient x^T . dy, no transpose); a . b^T as (b . a^T)^T, transposing the small a and the
 * result (the input gradient dy . W^T). Null where the shapes do not fit the loops' vector widths
 * (rows a multiple of 4, columns of 8) or the loops are not available.
 */
function matMulOnHeap(
  b: HeapBackend,
  a: TensorInfo,
  bb: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  m: number,
  k: number,
  n: number,
): TensorInfo | null {
  const simd = heapSimd(b);
  if (!simd || (transposeA && transposeB)) return null;
  const at = (t: TensorInfo) => b.getMemoryOffset(t.dataId);
  if (!transposeA && !transposeB) {
    if (m % 4 !== 0 || n % 8 !== 0) return null;
    const out = b.makeOutput([m, n], 'float32');
    gemmRows(b, at(a), at(bb), at(out), m, k, n, k);
    return out;
  }
  if (transposeA) {
    // a is stored [k, m]: c rows [i0, i1) are a's columns [i0, i1) against every row of b.
    if (m % 4 !== 0 || n % 8 !== 0) return null;
    const out = b.makeOutput([m, n], 'float32');
    const threads = threadsFor(b, m / 4);
    // Fixed shares, not balanced chunks: every chunk of rows of c reads all of a and b.
    const calls = Array.from({ length: threads }, (_, t) => {
      const [i0, i1] = share(m, threads, t, 4);
      return [[at(a) + i0 * 4, at(bb), at(out) + i0 * n * 4, k, i1 - i0, n, m, 1]];
    });
    runSpread(b, 'gemm_tn', simd, calls);
    return out;
  }
  // b is stored [n, k]: c^T [n, m] = b . a^T, then transposed.
  if (m % 8 !== 0 || n % 4 !== 0) return null;
  const a2 = reshape(b, a, [m, k]);
  const aT = call('Transpose', b, { x: a2 }, { perm: [1, 0] });
  const cT = b.makeOutput([n, m], 'float32');
  gemmRows(b, at(bb), at(aT), at(cT), n, k, m, k);
  const out = call('Transpose', b, { x: cT }, { perm: [1, 0] });
  for (const t of [a2, aT, cT]) b.disposeData(t.dataId);
  return out;
}
