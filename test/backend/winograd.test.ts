import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, setWinograd, useWinograd } from '../../src/backend/wasm/index.js';
import { filterTransform, filterTransformGrad } from '../../src/backend/wasm/winograd.js';
import { relativeError, useBackend } from '../helpers.js';

const info = (
  x: [number, number, number, number],
  f: [number, number, number, number],
  strides = 1,
  pad: 'same' | 'valid' = 'same',
  dilations = 1,
) => tf.backend_util.computeConv2DInfo(x, f, strides, dilations, pad, undefined, false, 'channelsLast');

describe('Winograd F(4x4, 3x3) convolutions on wasm', () => {
  it('applies to 3x3 stride-1 convolutions with vector-width channels and at least 256 output tiles', () => {
    // SimpleCNN's second convolution at batch 32: 32 x 16 x 16 tiles of 4x4 outputs.
    expect(useWinograd(info([32, 64, 64, 32], [3, 3, 32, 64]))).toBe(true);
    // 256 tiles exactly (4 x 8 x 8, the last row and column of tiles cropped), 'valid' too.
    expect(useWinograd(info([4, 30, 30, 16], [3, 3, 16, 16]))).toBe(true);
    expect(useWinograd(info([4, 34, 34, 16], [3, 3, 16, 16], 1, 'valid'))).toBe(true);
    expect(useWinograd(info([3, 30, 30, 16], [3, 3, 16, 16]))).toBe(false); // 192 tiles
    expect(useWinograd(info([32, 64, 64, 32], [3, 3, 32, 64], 2))).toBe(false); // stride 2
    expect(useWinograd(info([32, 64, 64, 32], [3, 3, 32, 64], 1, 'same', 2))).toBe(false); // dilated
    expect(useWinograd(info([32, 64, 64, 32], [1, 1, 32, 64]))).toBe(false); // 1x1
    expect(useWinograd(info([32, 64, 64, 1], [3, 3, 1, 32]))).toBe(false); // grayscale input
    expect(useWinograd(info([32, 64, 64, 32], [3, 3, 32, 20]))).toBe(false); // 20 outputs: not 8k
    expect(useWinograd(info([32, 64, 64, 8], [3, 3, 8, 64]))).toBe(false); // under 16 inputs
    setWinograd(false);
    try {
      expect(useWinograd(info([32, 64, 64, 32], [3, 3, 32, 64]))).toBe(false);
    } finally {
      setWinograd(true);
    }
  });

  it('filter transform: a centre tap gives G[:, 1] x G[:, 1]; the flip reverses taps and swaps channels', () => {
    // ci = co = 1, a single 1 at the centre: U[i, j] = G[i][1] * G[j][1].
    const g = new Float32Array(9);
    g[4] = 1;
    const col = [0, -1 / 6, 1 / 6, 1 / 12, -1 / 12, 0];
    const u = filterTransform(g, 1, 1, false);
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++) expect(u[i * 6 + j]).toBeCloseTo(col[i]! * col[j]!, 7);
    // The top-left tap (0, 0): U[i, j] = G[i][0] * G[j][0], G[:, 0] = [1/4, -1/6, -1/6, 1/24, 1/24, 0].
    const corner = new Float32Array(9);
    corner[0] = 1;
    const first = [1 / 4, -1 / 6, -1 / 6, 1 / 24, 1 / 24, 0];
    const uc = filterTransform(corner, 1, 1, false);
    expect(uc[0]).toBeCloseTo(1 / 16, 7);
    expect(uc[1 * 6 + 3]).toBeCloseTo(first[1]! * first[3]!, 7);
    // Flipped, the bottom-right tap of [3, 3, ci=2, co=3] at (ci 1, co 2) becomes the top-left tap
    // of [3, 3, 3, 2] at (2, 1).
    const g2 = new Float32Array(9 * 6);
    g2[8 * 6 + 1 * 3 + 2] = 1;
    const flipped = filterTransform(g2, 2, 3, true);
    const expected = filterTransform(
      (() => {
        const e = new Float32Array(9 * 6);
        e[0 * 6 + 2 * 2 + 1] = 1;
        return e;
      })(),
      3,
      2,
      false,
    );
    expect([...flipped]).toEqual([...expected]);
  });

  it('the filter gradient transform is the adjoint of the filter transform: <T g, dU> = <g, T* dU>', () => {
    const ci = 4;
    const co = 8;
    const g = Float32Array.from({ length: 9 * ci * co }, (_, i) => Math.sin(i * 0.7));
    const du = Float32Array.from({ length: 36 * ci * co }, (_, i) => Math.cos(i * 0.3));
    const u = filterTransform(g, ci, co, false);
    const dw = filterTransformGrad(du, ci, co);
    let left = 0;
    let right = 0;
    for (let i = 0; i < u.length; i++) left += u[i]! * du[i]!;
    for (let i = 0; i < g.length; i++) right += g[i]! * dw[i]!;
    expect(Math.abs(left - right) / Math.abs(left)).toBeLessThan(1e-5);
    expect(Math.abs(left)).toBeGreaterThan(0.1);
  });

  // Forward (Conv2D and FusedConv2D with each activation the output pass applies), input and
  // filter gradients against the cpu backend, and against XNNPACK's direct path on wasm: close,
  // but not bit-identical, so the Winograd path did run. Neither tensors nor heap buffers leak.
  for (const [label, x, f, pad] of [
    ['same, 256 tiles, cropped last tile row and column', [4, 30, 30, 16], [3, 3, 16, 16], 'same'],
    ['valid, 280 tiles, 16 -> 24 channels', [5, 34, 30, 16], [3, 3, 16, 24], 'valid'],
  ] as const) {
    it(`forward, fused forward and both gradients match cpu (${label})`, async () => {
      const run = async (backend: 'cpu' | 'wasm') => {
        await useBackend(backend);
        if (backend === 'wasm') registerWasmTrainingKernels();
        return tf.tidy(() => {
          const xs = tf.randomNormal([...x], 0, 1, 'float32', 1) as tf.Tensor4D;
          const w = tf.randomNormal([...f], 0, 1, 'float32', 2) as tf.Tensor4D;
          const bias = tf.randomNormal([f[3]], 0, 1, 'float32', 3) as tf.Tensor1D;
          const conv = (a: tf.Tensor, k: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, k as tf.Tensor4D, 1, pad);
          const y = conv(xs, w);
          const probe = tf.randomNormal(y.shape, 0, 1, 'float32', 4);
          const [dx, dw] = tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.sum(tf.mul(conv(a, k), probe)))([
            xs,
            w,
          ]);
          const fused = (['linear', 'relu', 'relu6'] as const).map((activation) =>
            tf.fused.conv2d({ x: xs, filter: w, strides: 1, pad, bias, activation }),
          );
          return [y, dx!, dw!, ...fused].map((t) => t.dataSync() as Float32Array);
        });
      };
      const cpu = await run('cpu');
      await run('wasm');
      const before = tf.memory().numTensors;
      const ids = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
      const wino = await run('wasm');
      expect(tf.memory().numTensors).toBe(before);
      expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBe(ids);
      setWinograd(false);
      let direct: Float32Array[];
      try {
        direct = await run('wasm');
      } finally {
        setWinograd(true);
      }
      const names = ['y', 'dx', 'dw', 'linear', 'relu', 'relu6'];
      wino.forEach((v, i) => {
        expect(relativeError(v, cpu[i]!), names[i]).toBeLessThan(1e-5);
        expect(relativeError(v, direct[i]!), names[i]).toBeLessThan(1e-5);
        expect([...v], names[i]).not.toEqual([...direct[i]!]);
      });
      // The activations: ReLU leaves no negatives, ReLU6 nothing above 6, and both keep some of each.
      expect(Math.min(...wino[4]!)).toBe(0);
      expect(Math.max(...wino[5]!)).toBe(6);
      expect(Math.min(...wino[3]!)).toBeLessThan(0);
    });
  }
});
