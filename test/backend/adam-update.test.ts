import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { afterEach, describe, expect, it } from 'vitest';
import { installFusedAdam, setFusedAdam } from '../../src/backend/patches/adam-update.js';
import { setHeapSimdEnabled } from '../../src/backend/wasm/heap-simd.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { useBackend } from '../helpers.js';

type Gradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

/**
 * Five Adam steps on two variables (7 values: a SIMD block and a scalar tail; 4x3), gradients
 * given as a map and as a list; returns every number the optimizer leaves behind.
 */
async function adamRun(fused: boolean, simd = true): Promise<number[][]> {
  setFusedAdam(fused);
  setHeapSimdEnabled(simd);
  const [a, b] = tf.tidy(() => [
    tf.variable(tf.linspace(-1, 2, 7), true, `a${fused}${simd}`),
    tf.variable(tf.reshape(tf.linspace(0.5, -0.7, 12), [4, 3]), true, `b${fused}${simd}`),
  ]) as [tf.Variable, tf.Variable];
  const opt = tf.train.adam(0.01, 0.9, 0.999);
  for (let step = 0; step < 5; step++) {
    const loss = () =>
      tf.sum(tf.add(tf.square(tf.sin(a)), tf.mul(tf.sum(tf.square(b)), step + 1))) as tf.Scalar;
    const { value, grads } = tf.variableGrads(loss, [a, b]);
    if (step % 2 === 0) opt.applyGradients(grads as unknown as Gradients);
    else
      opt.applyGradients([
        { name: a.name, tensor: grads[a.name] as tf.Tensor },
        { name: b.name, tensor: grads[b.name] as tf.Tensor },
      ]);
    tf.dispose([value, grads]);
  }
  const weights = await opt.getWeights();
  const out = [a, b, ...weights.map((w) => w.tensor)].map((t) => Array.from(t.dataSync()));
  out.push([opt.iterations]);
  tf.dispose(weights.map((w) => w.tensor));
  opt.dispose();
  tf.dispose([a, b]);
  return out;
}

afterEach(() => {
  setFusedAdam(true);
  setHeapSimdEnabled(true);
});

describe('fused Adam update (patches/adam-update.ts)', () => {
  it('gives tfjs Adam’s exact numbers, state and serialization on wasm, with the SIMD loop and without, leak-free', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    installFusedAdam();
    const reference = await adamRun(false);
    // a, b, the optimizer's saved weights (iterations and the moments), iterations.
    expect(reference.length).toBeGreaterThan(6);
    const kernelsOf = async (fused: boolean) => {
      setFusedAdam(fused);
      const v = tf.variable(tf.ones([5]), true, `k${fused}`);
      const opt = tf.train.adam(0.1);
      const g = tf.ones([5]);
      const names = (
        await tf.profile(() => opt.applyGradients({ [v.name]: g } as unknown as Gradients))
      ).kernels.map((k) => k.name);
      opt.dispose();
      tf.dispose([v, g]);
      return names;
    };
    expect(await kernelsOf(true)).toContain('MedimgAdamUpdate');
    expect((await kernelsOf(false)).includes('MedimgAdamUpdate')).toBe(false);
    for (const simd of [true, false]) {
      await adamRun(true, simd);
      const before = tf.memory().numTensors;
      const fused = await adamRun(true, simd);
      expect(tf.memory().numTensors).toBe(before);
      expect(fused, `simd ${simd}`).toEqual(reference);
    }
  });
});
