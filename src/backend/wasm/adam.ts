import * as tf from '@tensorflow/tfjs-core';
import { ADAM_UPDATE_KERNEL, type AdamUpdateAttrs } from '../kernel-names.js';
import type { HeapBackend, KernelArgs, TensorInfo } from './common.js';
import { heapSimd } from './heap-simd.js';

/**
 * One tfjs Adam step per variable in a single pass over the heap, instead of the 14 ops of
 * `AdamOptimizer.applyGradients` that each read and write the whole tensor. Same float32
 * operations in the same order, so the same numbers (`patches/adam-update.ts` uses it).
 */
export function adamUpdate({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const b = backend as HeapBackend;
  const { p, g, m, v } = inputs as Record<'p' | 'g' | 'm' | 'v', TensorInfo>;
  const { beta1, beta2, c1, c2, epsilon, learningRate } = attrs as unknown as AdamUpdateAttrs;
  const n = tf.util.sizeFromShape(p.shape);
  for (const [name, t] of Object.entries({ p, g, m, v })) {
    if (t.dtype !== 'float32' || tf.util.sizeFromShape(t.shape) !== n)
      throw new Error(
        `medimg-classify: ${ADAM_UPDATE_KERNEL} needs float32 tensors of one size; ${name} is ${t.dtype} [${t.shape}], p [${p.shape}]`,
      );
  }
  const outs = [p, m, v].map((t) => b.makeOutput(t.shape, 'float32')) as [TensorInfo, TensorInfo, TensorInfo];
  // The float32 constants as tfjs makes them: scalars of beta1, 1 - beta1 (in float64 first), ...
  const constants = [beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, epsilon, -learningRate] as const;
  const simd = heapSimd(b);
  if (simd) {
    const ptrs = [p, g, m, v, ...outs].map((t) => b.getMemoryOffset(t.dataId)) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    simd.adam(...ptrs, n, ...constants);
    return outs;
  }
  const f = Math.fround;
  const [cb1, comb1, cb2, comb2, cc1, cc2, ceps, cnlr] = constants.map(f) as unknown as typeof constants;
  // Views after makeOutput: allocating may grow (and move) the heap.
  const [vp, vg, vm, vv, op, om, ov] = [p, g, m, v, ...outs].map((t) =>
    b.typedArrayFromHeap(t),
  ) as Float32Array[];
  for (let i = 0; i < n; i++) {
    const gi = vg![i] as number;
    const mi = f(f((vm![i] as number) * cb1) + f(gi * comb1));
    const vi = f(f((vv![i] as number) * cb2) + f(f(gi * gi) * comb2));
    om![i] = mi;
    ov![i] = vi;
    op![i] = f(f(f(f(mi / cc1) / f(f(Math.sqrt(f(vi / cc2))) + ceps)) * cnlr) + (vp![i] as number));
  }
  return outs;
}
