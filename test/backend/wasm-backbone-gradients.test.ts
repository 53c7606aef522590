import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
// tfjs-core's ESM entry registers no gradients; tfjs-layers imports register_all_gradients.
import '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { relativeError, useBackend } from '../helpers.js';

/**
 * The gradients DenseNet121 and EfficientNetB0 need on wasm beyond the convolutions of the
 * older builders: average pooling (DenseNet's transitions; tfjs-backend-wasm 4.22 ships
 * AvgPoolGrad), 5x5 depthwise convolutions at stride 1 'same' and stride 2 'valid' after
 * `correct_pad` (this library's depthwise backprops), swish and sigmoid, the squeeze-and-excitation
 * product [N, H, W, C] * [N, 1, 1, C] and the drop-connect mask [N, 1, 1, 1] (a reduction over
 * the broadcast axes), global average pooling and DenseNet's concatenation.
 */
interface Case {
  name: string;
  shapes: number[][];
  f: (...xs: tf.Tensor[]) => tf.Tensor;
}

const avg = (k: number, s: number, pad: 'valid' | 'same' | number) => (x: tf.Tensor) =>
  tf.avgPool(x as tf.Tensor4D, k, s, pad as 'valid');
const depthwise = (s: number, pad: 'valid' | 'same') => (x: tf.Tensor, w: tf.Tensor) =>
  tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad);

const CASES: Case[] = [
  // DenseNet's transition pooling at even and odd map sizes (odd: the last row/column is dropped).
  { name: 'AvgPool 2x2/2 valid, 8x8', shapes: [[2, 8, 8, 6]], f: avg(2, 2, 'valid') },
  { name: 'AvgPool 2x2/2 valid, 7x9', shapes: [[2, 7, 9, 5]], f: avg(2, 2, 'valid') },
  // Overlapping windows and windows clipped by padding (divided by the values inside).
  { name: 'AvgPool 3x3/2 same, 9x7', shapes: [[2, 9, 7, 3]], f: avg(3, 2, 'same') },
  { name: 'AvgPool 3x3/1 same, 5x6', shapes: [[1, 5, 6, 4]], f: avg(3, 1, 'same') },
  { name: 'AvgPool 3x3/2 explicit pad 1', shapes: [[1, 7, 7, 2]], f: avg(3, 2, 1) },
  // EfficientNet's 5x5 depthwise convolutions: stride 2 'valid' after correct_pad (even and odd
  // sizes), stride 1 'same'; and the 3x3 stride 2 after correct_pad.
  {
    name: 'depthwise 5x5/2 valid, 11x11 (8 + pad 1,2)',
    shapes: [
      [2, 11, 11, 6],
      [5, 5, 6, 1],
    ],
    f: depthwise(2, 'valid'),
  },
  {
    name: 'depthwise 5x5/2 valid, 10x10 (7 + pad 2,2)',
    shapes: [
      [2, 10, 10, 4],
      [5, 5, 4, 1],
    ],
    f: depthwise(2, 'valid'),
  },
  {
    name: 'depthwise 5x5/1 same, 8x8',
    shapes: [
      [2, 8, 8, 6],
      [5, 5, 6, 1],
    ],
    f: depthwise(1, 'same'),
  },
  {
    name: 'depthwise 3x3/2 valid, 9x9 (8 + pad 0,1)',
    shapes: [
      [2, 9, 9, 8],
      [3, 3, 8, 1],
    ],
    f: depthwise(2, 'valid'),
  },
  { name: 'swish x * sigmoid(x)', shapes: [[2, 5, 6, 8]], f: (x) => tf.mul(tf.sigmoid(x), x) },
  { name: 'sigmoid (SE gate)', shapes: [[2, 1, 1, 8]], f: (x) => tf.sigmoid(x) },
  {
    name: 'SE excite [N, H, W, C] * [N, 1, 1, C]',
    shapes: [
      [2, 5, 6, 8],
      [2, 1, 1, 8],
    ],
    f: (a, b) => tf.mul(a, b),
  },
  {
    name: 'drop-connect mask [N, H, W, C] * [N, 1, 1, 1]',
    shapes: [
      [2, 5, 6, 8],
      [2, 1, 1, 1],
    ],
    f: (a, b) => tf.mul(a, b),
  },
  { name: 'global average pooling (mean over H, W)', shapes: [[2, 5, 6, 8]], f: (x) => tf.mean(x, [1, 2]) },
  {
    name: 'DenseNet concat on channels',
    shapes: [
      [2, 5, 6, 8],
      [2, 5, 6, 3],
    ],
    f: (a, b) => tf.concat([a, b], 3),
  },
];

async function gradients(backend: 'cpu' | 'wasm', c: Case): Promise<Float32Array[]> {
  await useBackend(backend);
  if (backend === 'wasm') registerWasmTrainingKernels();
  return tf.tidy(() => {
    const xs = c.shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', 30 + i));
    const probe = tf.randomNormal(c.f(...xs).shape, 0, 1, 'float32', 29);
    const grads = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(c.f(...ts), probe)))(xs);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

/** Buffers the active backend holds (wasm: its heap allocations), to catch leaks below tfjs's count. */
function backendDataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

describe("wasm gradients of DenseNet121's and EfficientNetB0's operations match the cpu backend", () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const cpu = await gradients('cpu', c);
      await gradients('wasm', c); // the backend is active from here on
      const before = tf.memory().numTensors;
      const ids = backendDataIds();
      const wasm = await gradients('wasm', c);
      expect(tf.memory().numTensors).toBe(before);
      expect(backendDataIds()).toBe(ids);
      expect(wasm).toHaveLength(cpu.length);
      cpu.forEach((g, i) => {
        expect(wasm[i]!.length).toBe(g.length);
        expect(relativeError(wasm[i]!, g), `input ${i}`).toBeLessThan(1e-4);
      });
    });
  }
});
