import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { installSinglePassReluMax } from '../../src/backend/patches/relu-max.js';
import { modelArtifacts, modelFromArtifacts } from '../../src/inference/serialize.js';
import { useBackend } from '../helpers.js';

const model = (patched: boolean) => {
  const m = tfl.sequential({ layers: [tfl.layers.reLU({ maxValue: 6, inputShape: [4, 5, 3] })] });
  if (patched) installSinglePassReluMax(m);
  return m;
};

describe.each(['cpu', 'wasm'] as const)('single-pass bounded ReLU (%s)', (backend) => {
  it('same values and gradients as relu then clipByValue, in one kernel instead of two, leak-free', async () => {
    await useBackend(backend);
    // Values on both sides of 0 and 6, none exactly 0 (where only the gradient convention differs).
    const x = tf.tensor4d(
      Array.from({ length: 2 * 60 }, (_, i) => ((i * 37) % 181) / 10 - 8.95),
      [2, 4, 5, 3],
    );
    const plain = model(false);
    const fast = model(true);
    const f = (m: tfl.LayersModel) => (a: tf.Tensor) =>
      tf.sum(tf.mul(m.apply(a) as tf.Tensor, tf.reshape(tf.range(1, 121), [2, 4, 5, 3])));
    const [ya, yb] = [plain, fast].map((m) => (m.apply(x) as tf.Tensor).dataSync());
    expect(Array.from(yb!)).toEqual(Array.from(ya!));
    const [ga, gb] = [plain, fast].map((m) => tf.grad(f(m))(x).dataSync());
    expect(Array.from(gb!)).toEqual(Array.from(ga!));
    const kernels = async (m: tfl.LayersModel) =>
      (await tf.profile(() => tf.tidy(() => m.apply(x) as tf.Tensor))).kernels.map((k) => k.name);
    expect(await kernels(plain)).toEqual(['Relu', 'ClipByValue']);
    expect(await kernels(fast)).toEqual(['ClipByValue']);
    const before = tf.memory().numTensors;
    tf.dispose([fast.apply(x) as tf.Tensor, tf.grad(f(fast))(x)]);
    expect(tf.memory().numTensors).toBe(before);
    // Idempotent, and ReLUs without maxValue are left alone.
    installSinglePassReluMax(fast);
    expect(await kernels(fast)).toEqual(['ClipByValue']);
    const unbounded = tfl.sequential({ layers: [tfl.layers.reLU({ inputShape: [4, 5, 3] })] });
    installSinglePassReluMax(unbounded);
    expect(await kernels(unbounded)).toEqual(['Relu']);
    tf.dispose(x);
    for (const m of [plain, fast, unbounded]) m.dispose();
  });

  it('models loaded back from their artifacts (classifiers, checkpoints) get it too', async () => {
    await useBackend(backend);
    const x = tf.tensor4d(
      Array.from({ length: 60 }, (_, i) => i / 5 - 4),
      [1, 4, 5, 3],
    );
    const saved = model(false);
    const loaded = await modelFromArtifacts(await modelArtifacts(saved));
    const kernels = (await tf.profile(() => tf.tidy(() => loaded.apply(x) as tf.Tensor))).kernels.map(
      (k) => k.name,
    );
    expect(kernels).toEqual(['ClipByValue']);
    const [a, b] = [loaded, saved].map((m) =>
      tf.tidy(() => Array.from((m.predict(x) as tf.Tensor).dataSync())),
    );
    expect(a).toEqual(b);
    tf.dispose(x);
    saved.dispose();
    loaded.dispose();
  });
});
