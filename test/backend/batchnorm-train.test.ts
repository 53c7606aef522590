import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import {
  BATCHNORM_TRAIN_GRAD_KERNEL,
  BATCHNORM_TRAIN_KERNEL,
  type BatchNormActivation,
} from '../../src/backend/kernel-names.js';
import { heapSimd, setHeapSimdEnabled } from '../../src/backend/wasm/heap-simd.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { batchNormTraining } from '../../src/models/batchnorm.js';
import { useBackend } from '../helpers.js';

/**
 * One training-mode BatchNormalization step through `batchNormTraining`: the output, the
 * gradients of sum(y * probe) with respect to x, gamma and beta, and the updated moving
 * statistics. On wasm it runs the two kernels; on cpu the composite of tfjs ops.
 */
async function step(
  backend: 'cpu' | 'wasm',
  shape: number[],
  activation: BatchNormActivation = 'linear',
): Promise<Float32Array[]> {
  await useBackend(backend);
  if (backend === 'wasm') registerWasmTrainingKernels();
  const c = shape.at(-1) as number;
  const layer = tfl.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3 });
  tf.tidy(() => layer.build([null, ...shape.slice(1)]));
  // With ReLU6, gammas up to 5 put some outputs above 6.
  const gammaMax = activation === 'relu6' ? 5 : 1.5;
  tf.tidy(() =>
    layer.setWeights([tf.linspace(0.5, gammaMax, c), tf.linspace(-0.2, 0.3, c), tf.zeros([c]), tf.ones([c])]),
  );
  // A mean far from zero, so that centring before squaring matters.
  const x = tf.tidy(() => tf.add(tf.randomNormal(shape, 0, 2, 'float32', 11), 5));
  const probe = tf.randomNormal(shape, 0, 1, 'float32', 12);
  const [gamma, beta] = layer.weights.slice(0, 2).map((w) => w.read() as tf.Variable) as [
    tf.Variable,
    tf.Variable,
  ];
  const f = (input: tf.Tensor) =>
    tf.sum(tf.mul(batchNormTraining(layer, input, activation), probe)) as tf.Scalar;
  const y = tf.tidy(() => batchNormTraining(layer, x, activation));
  const dx = tf.grad(f)(x);
  const { value, grads } = tf.variableGrads(() => f(x), [gamma, beta]);
  const out = [
    y,
    dx,
    grads[gamma.name] as tf.Tensor,
    grads[beta.name] as tf.Tensor,
    ...layer.getWeights().slice(2),
  ];
  const values = out.map((t) => t.dataSync().slice() as Float32Array);
  tf.dispose([x, probe, y, dx, value, grads]);
  for (const w of layer.weights) w.dispose();
  return values;
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2;
    den += (b[i] as number) ** 2;
  }
  return Math.sqrt(num / den);
}

describe('training-mode BatchNormalization kernels on wasm', () => {
  // 3 channels: the scalar tail only; 20: four SIMD blocks and no tail; 13: both. With a fused
  // ReLU or ReLU6 the cpu reference applies the activation as its own op (tfjs's gradients: the
  // masks differ only at outputs of exactly 0 or 6, which these random values do not hit).
  for (const [shape, activation] of [
    [[2, 5, 6, 3], 'linear'],
    [[4, 7, 5, 20], 'linear'],
    [[3, 4, 4, 13], 'linear'],
    [[3, 4, 4, 13], 'relu'],
    [[4, 7, 5, 20], 'relu6'],
    [[2, 5, 6, 3], 'relu6'],
  ] as [number[], BatchNormActivation][]) {
    it(`match the composite of tfjs ops on cpu, [${shape}], activation ${activation}, with the SIMD loops and their JavaScript fallbacks, leak-free`, async () => {
      const expected = await step('cpu', shape, activation);
      if (activation !== 'linear') {
        // The activation cuts: some outputs at 0 (and at 6), some gradients 0.
        const [y, dx] = expected as [Float32Array, Float32Array];
        expect(y.filter((v) => v === 0).length).toBeGreaterThan(y.length / 10);
        if (activation === 'relu6') expect(y.filter((v) => v === 6).length).toBeGreaterThan(0);
        expect(dx.some((v) => v !== 0)).toBe(true);
      }
      for (const simd of [true, false]) {
        setHeapSimdEnabled(simd);
        try {
          await step('wasm', shape, activation); // the backend is active from here on
          expect(heapSimd(tf.backend()) !== null).toBe(simd);
          expect(tf.getKernel(BATCHNORM_TRAIN_KERNEL, 'wasm')).toBeDefined();
          const before = tf.memory().numTensors;
          const ids = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
          const got = await step('wasm', shape, activation);
          expect(tf.memory().numTensors).toBe(before);
          expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBe(ids);
          const names = ['y', 'dx', 'dgamma', 'dbeta', 'moving mean', 'moving variance'];
          got.forEach((v, i) => {
            expect(v.length).toBe((expected[i] as Float32Array).length);
            expect(relativeError(v, expected[i] as Float32Array), `${names[i]}, simd ${simd}`).toBeLessThan(
              2e-6,
            );
          });
        } finally {
          setHeapSimdEnabled(true);
        }
      }
    });
  }

  it('a worked example: y = (x - mean) / sqrt(var + eps) * gamma + beta, and its gradients', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    // Two channels over four rows: channel 0 is 1, 2, 3, 4 (mean 2.5, variance 1.25), channel 1 is constant.
    const x = tf.tensor2d([1, 7, 2, 7, 3, 7, 4, 7], [4, 2]);
    const scale = tf.tensor1d([2, 1]);
    const offset = tf.tensor1d([1, -1]);
    const [y, mean, variance] = tf
      .engine()
      .runKernel(BATCHNORM_TRAIN_KERNEL, { x, scale, offset }, { varianceEpsilon: 0 }) as tf.Tensor[];
    const s = Math.sqrt(1.25);
    expect(Array.from((mean as tf.Tensor).dataSync())).toEqual([2.5, 7]);
    expect(Array.from((variance as tf.Tensor).dataSync())).toEqual([1.25, 0]);
    const yv = (y as tf.Tensor).dataSync();
    [1, 2, 3, 4].forEach((v, r) => expect(yv[2 * r]).toBeCloseTo(((v - 2.5) / s) * 2 + 1, 5));
    // dy = 1 everywhere: dbeta = 4 per channel, dgamma = sum(xhat) = 0, dx = 0.
    const dy = tf.onesLike(x);
    const [dx, dgamma, dbeta] = tf.engine().runKernel(
      BATCHNORM_TRAIN_GRAD_KERNEL,
      { dy, x, mean: mean as tf.Tensor, variance: tf.tensor1d([1.25, 1]), scale },
      {
        varianceEpsilon: 0,
      },
    ) as tf.Tensor[];
    expect(Array.from((dbeta as tf.Tensor).dataSync())).toEqual([4, 4]);
    (dgamma as tf.Tensor).dataSync().forEach((v) => expect(v).toBeCloseTo(0, 6));
    (dx as tf.Tensor).dataSync().forEach((v) => expect(v).toBeCloseTo(0, 6));
    tf.dispose([x, scale, offset, y as tf.Tensor, mean as tf.Tensor, variance as tf.Tensor, dy]);
    tf.dispose([dx as tf.Tensor, dgamma as tf.Tensor, dbeta as tf.Tensor]);
  });

  it('a fused ReLU6: clamps to [0, 6], maps NaN to 0 as wasm Relu and ClipByValue do, and masks the gradient where 0 < y < 6', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    for (const simd of [true, false]) {
      setHeapSimdEnabled(simd);
      try {
        // Channel 0: -3, -1, 1, 3 (mean 0, variance 5; gamma 5: y = sqrt(5) x, 6.7 at x = 3); channel 1 has a NaN.
        const x = tf.tensor2d([-3, 1, -1, Number.NaN, 1, 2, 3, 3], [4, 2]);
        const scale = tf.tensor1d([5, 1]);
        const offset = tf.tensor1d([0, 0]);
        const attrs = { varianceEpsilon: 0, activation: 'relu6' };
        const [y, mean, variance] = tf
          .engine()
          .runKernel(BATCHNORM_TRAIN_KERNEL, { x, scale, offset }, attrs) as tf.Tensor[];
        const yv = Array.from((y as tf.Tensor).dataSync());
        expect(yv.filter((_, i) => i % 2 === 0)[2]).toBeCloseTo(Math.sqrt(5), 5);
        expect(yv.filter((_, i) => i % 2 === 0).filter((_, i) => i !== 2)).toEqual([0, 0, 6]);
        expect(yv.filter((_, i) => i % 2 === 1)).toEqual([0, 0, 0, 0]);
        const dy = tf.ones([4, 2]);
        const [dx, dgamma, dbeta] = tf
          .engine()
          .runKernel(
            BATCHNORM_TRAIN_GRAD_KERNEL,
            { dy, x, mean: mean as tf.Tensor, variance: variance as tf.Tensor, scale, y: y as tf.Tensor },
            attrs,
          ) as tf.Tensor[];
        // Only y = sqrt(5) passes in channel 0: dbeta = 1, dgamma = xhat = 1/sqrt(5).
        expect((dbeta as tf.Tensor).dataSync()[0]).toBe(1);
        expect((dgamma as tf.Tensor).dataSync()[0]).toBeCloseTo(1 / Math.sqrt(5), 6);
        expect((dbeta as tf.Tensor).dataSync()[1]).toBe(0);
        expect((dx as tf.Tensor).dataSync()[4]).not.toBe(0);
        tf.dispose([x, scale, offset, dy, y, mean, variance, dx, dgamma, dbeta] as tf.Tensor[]);
      } finally {
        setHeapSimdEnabled(true);
      }
    }
  });

  it('refuses what it does not compute, naming the kernel and the problem', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const x = tf.zeros([2, 3]);
    const run = (inputs: tf.NamedTensorMap) =>
      tf.engine().runKernel(BATCHNORM_TRAIN_KERNEL, inputs, { varianceEpsilon: 1e-3 });
    expect(() => run({ x, scale: tf.ones([4]), offset: tf.zeros([3]) })).toThrow(
      'medimg-classify: MedimgBatchNormTrain: scale has 4 values for 3 channels',
    );
    expect(() => run({ x: tf.zeros([2, 3], 'int32'), scale: tf.ones([3]), offset: tf.zeros([3]) })).toThrow(
      'medimg-classify: MedimgBatchNormTrain needs float32 x; got int32',
    );
    const [scale, offset] = [tf.ones([3]), tf.zeros([3])];
    expect(() =>
      tf
        .engine()
        .runKernel(
          BATCHNORM_TRAIN_KERNEL,
          { x, scale, offset },
          { varianceEpsilon: 1e-3, activation: 'gelu' },
        ),
    ).toThrow("medimg-classify: MedimgBatchNormTrain: unknown activation 'gelu' (linear, relu or relu6)");
    const grad = (inputs: tf.NamedTensorMap) =>
      tf
        .engine()
        .runKernel(BATCHNORM_TRAIN_GRAD_KERNEL, inputs, { varianceEpsilon: 1e-3, activation: 'relu6' });
    const gradInputs = { dy: x, x, mean: offset, variance: scale, scale };
    expect(() => grad(gradInputs)).toThrow(
      "medimg-classify: MedimgBatchNormTrainGrad: the activation's gradient needs the forward output y",
    );
    expect(() => grad({ ...gradInputs, y: tf.zeros([3, 2]) })).toThrow(
      'medimg-classify: MedimgBatchNormTrainGrad: y [3,2] and x [2,3] differ',
    );
    tf.dispose([scale, offset]);
    tf.dispose(x);
  });
});
