import type * as tf from '@tensorflow/tfjs-core';
import { type Attrs, type Backend, call, original, reshape, scoped, type TensorInfo } from './common.js';

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
