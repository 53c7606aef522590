import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import {
  CHANNEL_PAIR_KERNEL,
  CLIP_GRAD_KERNEL,
  ERASE_RECT_KERNEL,
  PIXELS_TO_FLOAT_KERNEL,
  ROTATE_NEAREST_KERNEL,
  SEPARABLE_BLUR_KERNEL,
} from '../../src/backend/kernel-names.js';
import { installPatches } from '../../src/backend/patches/index.js';
import { separableBlur } from '../../src/backend/wasm/blur.js';
import { gatherV2, padV2, reverse, slice, tile } from '../../src/backend/wasm/copy.js';
import { setDirectConv, setPointwiseForward } from '../../src/backend/wasm/direct-conv.js';
import { heapSimd, setHeapSimdEnabled } from '../../src/backend/wasm/heap-simd.js';
import {
  collapsePermutation,
  registerWasmTrainingKernels,
  setFilterGradStrategy,
  setInputGradStrategy,
  setPointwiseGemm,
} from '../../src/backend/wasm/index.js';
import { rotateNearest } from '../../src/backend/wasm/rotate.js';
import { pixelsTensor } from '../../src/data/pixels.js';
import { erase } from '../../src/transforms/functional/erase.js';
import { gaussianBlur, gaussianKernel1d } from '../../src/transforms/functional/gaussian-blur.js';
import { rotate } from '../../src/transforms/functional/rotate.js';
import { Normalize, Rescale } from '../../src/transforms/index.js';
import { relativeError, useBackend } from '../helpers.js';

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: [number, number];
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  dilations?: [number, number];
  depthwise?: boolean;
}

// Every stride, padding, dilation and channel shape the model builders use (SimpleCNN,
// ResNet50V2 incl. its 7x7/2 stem with explicit padding and stride-2 3x3 in conv2-4, MobileNetV2).
const CASES: ConvCase[] = [
  { name: '3x3 s1 same (SimpleCNN)', x: [2, 9, 11, 3], f: [3, 3, 3, 5], strides: [1, 1], pad: 'same' },
  { name: '3x3 s1 valid', x: [2, 8, 8, 4], f: [3, 3, 4, 6], strides: [1, 1], pad: 'valid' },
  // Winograd F(4x4, 3x3) (winograd.ts): at least 256 output tiles, explicit uneven padding
  // (ResNet50V2's ZeroPadding2D + 'valid' is symmetric; this covers a crop on every side).
  {
    name: '3x3 s1 explicit uneven padding, 288 tiles (Winograd)',
    x: [4, 33, 29, 32],
    f: [3, 3, 32, 16],
    strides: [1, 1],
    pad: [
      [0, 0],
      [2, 0],
      [1, 2],
      [0, 0],
    ],
  },
  { name: '1x1 s1 (bottleneck)', x: [2, 7, 7, 8], f: [1, 1, 8, 16], strides: [1, 1], pad: 'valid' },
  // Few positions, many channels (ResNet50V2 conv5 at batch 8): the input gradient is computed
  // as W . dy^T with the weights as the left operand.
  {
    name: '1x1 s1, 3x3 map, 32->48 channels',
    x: [1, 3, 3, 32],
    f: [1, 1, 32, 48],
    strides: [1, 1],
    pad: 'valid',
  },
  // Few positions and small weights: both gradients as heap GEMMs (conv.ts, `isPointwise`), the
  // filter gradient over two panels of rows; with 12 input channels only the filter gradient.
  {
    name: '1x1 s1, 2304 positions, 16->24 (heap GEMMs, two panels)',
    x: [4, 24, 24, 16],
    f: [1, 1, 16, 24],
    strides: [1, 1],
    pad: 'valid',
  },
  {
    name: '1x1 s1, 12->16 (heap GEMM filter gradient)',
    x: [2, 4, 6, 12],
    f: [1, 1, 12, 16],
    strides: [1, 1],
    pad: 'same',
  },
  { name: '1x1 s2 (shortcut)', x: [2, 8, 8, 8], f: [1, 1, 8, 4], strides: [2, 2], pad: 'valid' },
  {
    name: '3x3 s2 valid after explicit pad (ResNet50V2 block)',
    x: [2, 10, 10, 4],
    f: [3, 3, 4, 4],
    strides: [2, 2],
    pad: 'valid',
  },
  { name: '3x3 s2 same odd size', x: [1, 9, 7, 3], f: [3, 3, 3, 2], strides: [2, 2], pad: 'same' },
  { name: '7x7 s2 valid (ResNet stem)', x: [1, 21, 21, 3], f: [7, 7, 3, 8], strides: [2, 2], pad: 'valid' },
  {
    name: '3x3 s1 explicit',
    x: [1, 6, 6, 2],
    f: [3, 3, 2, 3],
    strides: [1, 1],
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  { name: '5x3 s1 same', x: [2, 8, 9, 2], f: [5, 3, 2, 3], strides: [1, 1], pad: 'same' },
  // The heap filter-gradient loop: channels in blocks of 4 in and 8 out, and single-channel inputs.
  {
    name: '3x3 s1 same, 8->16 (heap loop)',
    x: [2, 9, 11, 8],
    f: [3, 3, 8, 16],
    strides: [1, 1],
    pad: 'same',
  },
  {
    name: '3x3 s2 same odd size, 4->8 (heap loop)',
    x: [2, 9, 7, 4],
    f: [3, 3, 4, 8],
    strides: [2, 2],
    pad: 'same',
  },
  {
    name: '3x3 s1 explicit, 4->8 (heap loop)',
    x: [1, 6, 6, 4],
    f: [3, 3, 4, 8],
    strides: [1, 1],
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  {
    name: '3x3 s1 same grayscale, 1->8 (heap, one channel)',
    x: [2, 9, 11, 1],
    f: [3, 3, 1, 8],
    strides: [1, 1],
    pad: 'same',
  },
  {
    name: '2x2 s2 valid grayscale, 1->16 (heap, one channel)',
    x: [2, 8, 9, 1],
    f: [2, 2, 1, 16],
    strides: [2, 2],
    pad: 'valid',
  },
  // Few positions, many channels (ResNet50V2 conv5's 3x3 at batch 8): 'auto' computes the input
  // gradient as a matrix product with the weights as they are, then adds it back per tap.
  {
    name: '3x3 valid after explicit pad, 2x2 map, 24->24 channels',
    x: [1, 4, 4, 24],
    f: [3, 3, 24, 24],
    strides: [1, 1],
    pad: 'valid',
  },
  // A wider map with 8 input channels (where 'auto' picks the swapped convolution at stride 1).
  {
    name: '3x3 s1 same, 33x32x8 (wide map)',
    x: [1, 33, 32, 8],
    f: [3, 3, 8, 4],
    strides: [1, 1],
    pad: 'same',
  },
  {
    name: 'depthwise 3x3 s1 same (MobileNetV2)',
    x: [2, 8, 8, 6],
    f: [3, 3, 6, 1],
    strides: [1, 1],
    pad: 'same',
    depthwise: true,
  },
  {
    name: 'depthwise 3x3 s2 valid (MobileNetV2)',
    x: [2, 9, 9, 4],
    f: [3, 3, 4, 1],
    strides: [2, 2],
    pad: 'valid',
    depthwise: true,
  },
  // Strided, 4-12 channels: the heap input-gradient loop (depthwise.ts), with an uneven 'same'
  // padding, a 5x5 filter and a 2x2 one; at stride 1, XNNPACK.
  {
    name: 'depthwise 3x3 s1 same, 8 channels',
    x: [3, 7, 7, 8],
    f: [3, 3, 8, 1],
    strides: [1, 1],
    pad: 'same',
    depthwise: true,
  },
  {
    name: 'depthwise 3x3 s2 same, even size, 8 channels (heap dx)',
    x: [2, 8, 10, 8],
    f: [3, 3, 8, 1],
    strides: [2, 2],
    pad: 'same',
    depthwise: true,
  },
  {
    name: 'depthwise 5x5 s2 same, 12 channels (heap dx)',
    x: [1, 9, 6, 12],
    f: [5, 5, 12, 1],
    strides: [2, 2],
    pad: 'same',
    depthwise: true,
  },
  {
    name: 'depthwise 2x2 s2 valid, odd size, 4 channels (heap dx)',
    x: [2, 7, 7, 4],
    f: [2, 2, 4, 1],
    strides: [2, 2],
    pad: 'valid',
    depthwise: true,
  },
  {
    name: 'depthwise 3x3 s2 same',
    x: [1, 8, 8, 3],
    f: [3, 3, 3, 1],
    strides: [2, 2],
    pad: 'same',
    depthwise: true,
  },
];

async function gradients(backend: 'cpu' | 'wasm', c: ConvCase): Promise<[Float32Array, Float32Array]> {
  await useBackend(backend);
  if (backend === 'wasm') registerWasmTrainingKernels();
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, 'float32', 11);
    const f = tf.randomNormal(c.f, 0, 1, 'float32', 12);
    const conv = (a: tf.Tensor, w: tf.Tensor) =>
      c.depthwise
        ? tf.depthwiseConv2d(a as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1)
        : tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1);
    const probe = tf.randomNormal(conv(x, f).shape, 0, 1, 'float32', 13);
    const [dx, df] = tf.grads((a: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(conv(a, w), probe)))([x, f]);
    return [dx!.dataSync() as Float32Array, df!.dataSync() as Float32Array] as [Float32Array, Float32Array];
  });
}

/** Buffers the active backend holds (wasm: its heap allocations), to catch leaks below tfjs's count. */
function backendDataIds(): number {
  return (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
}

/**
 * Counts calls of wasm kernel `name`, including those other kernels make inside the backend
 * (through the registry), until `restore`.
 */
function countKernelCalls(name: string): { calls(): number; restore(): void } {
  const config = tf.getKernel(name, 'wasm') as tf.KernelConfig;
  let calls = 0;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...config, kernelFunc: (args) => (calls++, config.kernelFunc(args)) });
  return {
    calls: () => calls,
    restore: () => {
      tf.unregisterKernel(name, 'wasm');
      tf.registerKernel(config);
    },
  };
}

/**
 * Counts the calls of the named heap loops on the active wasm backend (without a pool they run
 * on this thread, from this object) until `restore()`.
 */
function countLoopCalls<N extends string>(...names: N[]): { calls: Record<N, number>; restore(): void } {
  const simd = heapSimd(tf.backend()) as unknown as Record<N, (...a: number[]) => void>;
  const originals = Object.fromEntries(names.map((n) => [n, simd[n]])) as Record<N, (...a: number[]) => void>;
  const calls = Object.fromEntries(names.map((n) => [n, 0])) as Record<N, number>;
  for (const name of names)
    simd[name] = (...args: number[]) => {
      calls[name]++;
      originals[name](...args);
    };
  return { calls, restore: () => Object.assign(simd, originals) };
}

/**
 * Runs `run` on wasm with the heap SIMD loops and with their JavaScript fallbacks: a warm-up, then
 * a run that must leave neither tensors nor backend buffers behind, whose result goes to `check`.
 */
async function withAndWithoutHeapSimd<T>(
  run: () => Promise<T>,
  check: (result: T, simd: boolean) => void,
): Promise<void> {
  for (const simd of [true, false]) {
    setHeapSimdEnabled(simd);
    try {
      await run();
      expect(heapSimd(tf.backend()) !== null, 'SIMD module instantiated').toBe(simd);
      const before = tf.memory().numTensors;
      const ids = backendDataIds();
      const result = await run();
      expect(tf.memory().numTensors).toBe(before);
      expect(backendDataIds()).toBe(ids);
      check(result, simd);
    } finally {
      setHeapSimdEnabled(true);
    }
  }
}

describe('wasm training kernels: gradient parity with the cpu backend', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const [dxCpu, dfCpu] = await gradients('cpu', c);
      // Every formulation of each gradient, whichever 'auto' would pick for this shape ('heap'
      // falls back to 'auto' where the heap loop does not apply); and the heap SIMD loops'
      // JavaScript fallbacks.
      for (const [strategy, simd] of [
        ['conv', true],
        ['matmul', true],
        ['heap', true],
        ['auto', true],
        ['auto', false],
      ] as const) {
        setFilterGradStrategy(strategy);
        setInputGradStrategy(strategy === 'heap' ? 'auto' : strategy);
        setHeapSimdEnabled(simd);
        try {
          await gradients('wasm', c); // the backend is active from here on
          const before = tf.memory().numTensors;
          const ids = backendDataIds();
          const [dxWasm, dfWasm] = await gradients('wasm', c);
          expect(tf.memory().numTensors).toBe(before);
          expect(backendDataIds()).toBe(ids);
          expect(dxWasm.length).toBe(dxCpu.length);
          expect(relativeError(dxWasm, dxCpu), `${strategy}, simd ${simd}`).toBeLessThan(1e-4);
          expect(relativeError(dfWasm, dfCpu), `${strategy}, simd ${simd}`).toBeLessThan(1e-4);
        } finally {
          setFilterGradStrategy('auto');
          setInputGradStrategy('auto');
          setHeapSimdEnabled(true);
        }
      }
    });
  }

  it('a strided depthwise input gradient takes the heap loop for channels in fours, once per call without a pool', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const counter = countLoopCalls('depthwise_input_grad');
    const dx = (shape: [number, number, number, number], stride: 1 | 2) =>
      tf.tidy(() => {
        const x = tf.randomNormal(shape, 0, 1, 'float32', 3) as tf.Tensor4D;
        const f = tf.randomNormal([3, 3, shape[3] as number, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
        return tf.grad((a: tf.Tensor) => tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, f, stride, 'same')))(x)
          .shape;
      });
    try {
      expect(dx([2, 5, 5, 8], 2)).toEqual([2, 5, 5, 8]);
      expect(counter.calls.depthwise_input_grad).toBe(1);
      dx([2, 5, 5, 6], 2); // 6 channels
      dx([2, 5, 5, 8], 1); // stride 1
      expect(counter.calls.depthwise_input_grad).toBe(1);
    } finally {
      counter.restore();
    }
  });

  it('stride-1 input gradients (depthwise, and convolutions off the Winograd and 1x1 paths) pad inside the convolution: the bits of a padded copy, no PadV2, no leaks', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const cases: { kernel: string; dy: number[]; filter: number[]; pad: 'same' | 'valid' | number }[] = [
      { kernel: 'DepthwiseConv2dNativeBackpropInput', dy: [2, 7, 7, 12], filter: [3, 3, 12, 1], pad: 'same' },
      { kernel: 'DepthwiseConv2dNativeBackpropInput', dy: [1, 6, 5, 8], filter: [5, 3, 8, 1], pad: 'valid' },
      // 2 tiles of 4x4: too few for Winograd.
      { kernel: 'Conv2DBackpropInput', dy: [2, 4, 4, 8], filter: [3, 3, 6, 8], pad: 'same' },
      { kernel: 'Conv2DBackpropInput', dy: [1, 5, 5, 4], filter: [3, 3, 3, 4], pad: 1 },
    ];
    for (const c of cases) {
      const depthwise = c.kernel.startsWith('Depthwise');
      const [n, oh, ow] = c.dy as [number, number, number, number];
      const [kh, kw, ci] = c.filter as [number, number, number, number];
      const p =
        c.pad === 'same' ? [(kh - 1) >> 1, (kw - 1) >> 1] : c.pad === 'valid' ? [0, 0] : [c.pad, c.pad];
      const inputShape = [n, oh + kh - 1 - 2 * (p[0] as number), ow + kw - 1 - 2 * (p[1] as number), ci];
      const dy = tf.randomNormal(c.dy, 0, 1, 'float32', 21);
      const filter = tf.randomNormal(c.filter, 0, 1, 'float32', 22);
      const before = tf.memory().numTensors;
      const pads = countKernelCalls('PadV2');
      let dx: tf.Tensor;
      try {
        dx = tf.engine().runKernel(
          c.kernel,
          { dy, filter },
          {
            strides: [1, 1],
            pad: c.pad,
            dilations: [1, 1],
            dataFormat: 'NHWC',
            inputShape,
          },
        ) as tf.Tensor;
      } finally {
        pads.restore();
      }
      expect(dx.shape, c.kernel).toEqual(inputShape);
      expect(pads.calls(), c.kernel).toBe(0);
      // The full correlation on an explicitly zero-padded dy, with the flipped (and, for a
      // convolution, transposed) filter.
      const reference = tf.tidy(() => {
        const padded = tf.pad(dy, [
          [0, 0],
          [kh - 1 - (p[0] as number), kh - 1 - (p[0] as number)],
          [kw - 1 - (p[1] as number), kw - 1 - (p[1] as number)],
          [0, 0],
        ]) as tf.Tensor4D;
        const flipped = tf.reverse(filter, [0, 1]) as tf.Tensor4D;
        return depthwise
          ? tf.depthwiseConv2d(padded, flipped, 1, 'valid')
          : tf.conv2d(padded, tf.transpose(flipped, [0, 1, 3, 2]) as tf.Tensor4D, 1, 'valid');
      });
      expect(Array.from(dx.dataSync()), c.kernel).toEqual(Array.from(reference.dataSync()));
      // And the cpu backend's gradient, within float32 rounding.
      const values = Array.from(dx.dataSync());
      const [dyValues, filterValues] = [dy, filter].map((t) => Array.from(t.dataSync()));
      tf.dispose([dx, reference, dy, filter]);
      expect(tf.memory().numTensors).toBe(before - 2);
      await useBackend('cpu');
      const onCpu = tf.tidy(() =>
        Array.from(
          (
            tf.engine().runKernel(
              c.kernel,
              {
                dy: tf.tensor(dyValues as number[], c.dy),
                filter: tf.tensor(filterValues as number[], c.filter),
              },
              { strides: [1, 1], pad: c.pad, dilations: [1, 1], dataFormat: 'NHWC', inputShape },
            ) as tf.Tensor
          ).dataSync(),
        ),
      );
      await useBackend('wasm');
      expect(relativeError(values, onCpu), c.kernel).toBeLessThan(1e-5);
    }
  });

  it('MaxPoolGrad matches cpu exactly (2x2/2 in SIMD and JavaScript, 3x3/2 same with padding, ties after ReLU)', async () => {
    const grads = async (
      backend: 'cpu' | 'wasm',
      size: number,
      stride: number,
      pad: 'valid' | 'same',
      channels: number,
      height: number,
    ) => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        const x = tf.relu(tf.randomNormal([2, height, 10, channels], 0, 1, 'float32', 5)); // many tied zeros
        const probe = tf.randomNormal(
          tf.maxPool(x as tf.Tensor4D, size, stride, pad).shape,
          0,
          1,
          'float32',
          6,
        );
        return tf
          .grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, size, stride, pad), probe)))(x)
          .dataSync() as Float32Array;
      });
    };
    // 8 channels: the SIMD 2x2 loop (4 lanes), with an odd last row left to zeros and with even
    // sizes (every value written by the loop, over a reused buffer); 3 channels: the JavaScript one.
    for (const [size, stride, pad, channels, height] of [
      [2, 2, 'valid', 8, 9],
      [2, 2, 'valid', 8, 8],
      [2, 2, 'valid', 3, 9],
      [3, 2, 'same', 3, 9],
      [3, 1, 'same', 3, 9],
    ] as const) {
      const cpu = await grads('cpu', size, stride, pad, channels, height);
      // A buffer of the output's size filled with garbage and freed, for the allocator to reuse.
      await useBackend('wasm');
      if (height === 8) tf.fill([2, height, 10, channels], 7).dispose();
      const before = tf.memory().numTensors;
      const ids = backendDataIds();
      const wasm = await grads('wasm', size, stride, pad, channels, height);
      expect(tf.memory().numTensors).toBe(before);
      expect(backendDataIds()).toBe(ids);
      // Non-overlapping windows route each gradient exactly; overlapping ones sum in another order.
      if (size === stride) expect([...wasm], `${size}/${stride} ${pad} x${channels}`).toEqual([...cpu]);
      else expect(relativeError(wasm, cpu), `${size}/${stride} ${pad}`).toBeLessThan(1e-6);
    }
  });

  it('FusedBatchNorm (inference) matches cpu with and without scale/offset, per-channel and full-shape statistics', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        const x = tf.randomNormal([2, 5, 4, 6], 3, 2, 'float32', 21) as tf.Tensor4D;
        const mean = tf.randomNormal([6], 3, 1, 'float32', 22);
        const variance = tf.randomUniform([6], 0.1, 2, 'float32', 23);
        const offset = tf.randomNormal([6], 0, 1, 'float32', 24);
        const scale = tf.randomNormal([6], 1, 0.5, 'float32', 25);
        const full = tf.randomNormal([2, 5, 4, 6], 0, 1, 'float32', 26);
        return [
          tf.batchNorm(x, mean, variance, offset, scale, 1e-3),
          tf.batchNorm(x, mean, variance, undefined, undefined, 1e-5),
          tf.batchNorm(
            x,
            tf.reshape(mean, [1, 1, 1, 6]),
            tf.reshape(variance, [1, 1, 1, 6]),
            tf.reshape(offset, [1, 1, 1, 6]),
            tf.reshape(scale, [1, 1, 1, 6]),
            1e-3,
          ),
          // Not per-channel statistics: left to the shipped kernel.
          tf.batchNorm(x, full, tf.add(tf.square(full), 0.5), full, full, 1e-3),
        ].map((t) => t.dataSync() as Float32Array);
      });
    };
    const cpu = await run('cpu');
    // The SIMD loop on the heap (6 channels: one vector of 4 and a scalar tail), and the
    // JavaScript loop used where it cannot be instantiated.
    await withAndWithoutHeapSimd(
      () => run('wasm'),
      (wasm, simd) =>
        cpu.forEach((c, i) =>
          expect(relativeError(wasm[i]!, c), `case ${i}, simd ${simd}`).toBeLessThan(1e-6),
        ),
    );
  });

  it('Sum and Mean over leading axes, and over inner runs of axes (global average pooling), match cpu (SIMD float64 column sums and the JavaScript loop)', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        const x = tf.randomNormal([3, 5, 7, 6], 2, 3, 'float32', 41); // 6 columns: a vector and a tail
        const m = tf.randomNormal([37, 9], -1, 1, 'float32', 42);
        return [
          tf.sum(x, [0, 1, 2]),
          tf.mean(x, [0, 1, 2], true),
          tf.sum(m, 0),
          tf.mean(m, [0]),
          tf.sum(x, [1, 2]), // an inner run: one column-sum call per batch item
          tf.mean(x, [1, 2]), // global average pooling
          tf.mean(x, [2], true),
          tf.sum(x, [1, 3]), // not a run: the shipped kernel
          tf.mean(x, [2, 3]), // ends with the last axis: the shipped kernel
          tf.sum(x), // every axis (a null axis attribute): the shipped kernel
          tf.mean(m),
        ].map((t) => ({ shape: t.shape, values: t.dataSync() as Float32Array }));
      });
    };
    const cpu = await run('cpu');
    await withAndWithoutHeapSimd(
      () => run('wasm'),
      (wasm, simd) =>
        cpu.forEach((c, j) => {
          expect(wasm[j]!.shape, `case ${j}`).toEqual(c.shape);
          expect(relativeError(wasm[j]!.values, c.values), `case ${j}, simd ${simd}`).toBeLessThan(1e-6);
        }),
    );
    // The inner runs take the SIMD loop: one call per block of [3] and of [3, 5].
    const counter = countLoopCalls('column_sums');
    try {
      tf.tidy(() => {
        const x = tf.randomNormal([3, 5, 7, 6], 2, 3, 'float32', 41);
        tf.mean(x, [1, 2]).dataSync();
        expect(counter.calls.column_sums).toBe(3);
        tf.sum(x, [2]).dataSync();
        expect(counter.calls.column_sums).toBe(3 + 15);
        tf.sum(x, [1, 3]).dataSync();
        expect(counter.calls.column_sums).toBe(18);
      });
    } finally {
      counter.restore();
    }
  });

  it('BatchMatMul: a large fresh right operand is multiplied transposed (b^T . a^T); every flag combination matches cpu', async () => {
    // [3, 200] x [200, 50]: packing the 10,000 weights would cost more than transposing the rest.
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 200], [200, 50], false, false],
      [[3, 200], [50, 200], false, true],
      [[200, 3], [200, 50], true, false],
      [[200, 3], [50, 200], true, true],
      [[1, 3, 200], [200, 50], false, false], // unit batch dimension kept
      [[2, 3, 20], [2, 5, 20], false, true], // batched: as shipped, flags transposed out
      [[64, 20], [20, 5], false, false], // small right operand: direct
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return cases.map(([as, bs, ta, tb], i) =>
        tf.tidy(() => {
          const a = tf.randomNormal(as, 0, 1, 'float32', 50 + i);
          const b = tf.randomNormal(bs, 0, 1, 'float32', 60 + i);
          const y = tf.matMul(a, b, ta, tb);
          // The same right operand again: XNNPACK has it packed now.
          const again = tf.matMul(a, b, ta, tb);
          return { shape: y.shape, y: y.dataSync() as Float32Array, again: again.dataSync() as Float32Array };
        }),
      );
    };
    const cpu = await run('cpu');
    await run('wasm');
    const before = tf.memory().numTensors;
    const ids = backendDataIds();
    const wasm = await run('wasm');
    expect(tf.memory().numTensors).toBe(before);
    expect(backendDataIds()).toBe(ids);
    cpu.forEach((c, i) => {
      expect(wasm[i]!.shape, `case ${i}`).toEqual(c.shape);
      expect(relativeError(wasm[i]!.y, c.y), `case ${i}`).toBeLessThan(1e-5);
      expect(relativeError(wasm[i]!.again, c.y), `case ${i} again`).toBeLessThan(1e-5);
    });
  });

  it('BatchMatMul: a fresh right operand past 4M multiply-adds runs on the heap loops (a.b, a^T.b, a.b^T) and matches cpu', async () => {
    // A dense layer's step at a small scale: 32 rows against 4,100 inputs (8 panels of 512 and a
    // ragged one) and 40 outputs; [30, ...] does not fit the loops' 4-row blocks and stays on XNNPACK.
    const cases: [number[], number[], boolean, boolean, 'gemm' | 'gemm_tn' | null][] = [
      [[32, 4100], [4100, 40], false, false, 'gemm'], // y = x . W
      [[32, 4100], [32, 40], true, false, 'gemm_tn'], // dW = x^T . dy
      [[32, 4100], [40, 4100], false, true, 'gemm'], // dx = dy . W^T, as (W . dy^T)^T
      [[1, 32, 4100], [4100, 40], false, false, 'gemm'], // unit batch dimension kept
      [[30, 4100], [4100, 40], false, false, null],
      // 4,100 rows contracted (a convolution's filter gradient as im2col^T . dy): XNNPACK.
      [[4100, 32], [4100, 40], true, false, null],
    ];
    const product = (i: number) => {
      const [as, bs, ta, tb] = cases[i]!;
      return tf.tidy(() => {
        const y = tf.matMul(
          tf.randomNormal(as, 0, 1, 'float32', 70 + i),
          tf.randomNormal(bs, 0, 1, 'float32', 80 + i),
          ta,
          tb,
        );
        return { shape: y.shape, y: y.dataSync() as Float32Array };
      });
    };
    await useBackend('cpu');
    const cpu = cases.map((_, i) => product(i));
    await useBackend('wasm');
    registerWasmTrainingKernels();
    // Count the heap loops' calls (without a pool they run on this thread, from this object).
    const { calls, restore } = countLoopCalls('gemm', 'gemm_tn');
    try {
      cases.forEach(([, , , , loop], i) => {
        product(i); // warm-up
        const before = tf.memory().numTensors;
        const ids = backendDataIds();
        const counted = { ...calls };
        const wasm = product(i);
        expect(tf.memory().numTensors).toBe(before);
        expect(backendDataIds()).toBe(ids);
        expect(wasm.shape, `case ${i}`).toEqual(cpu[i]!.shape);
        expect(relativeError(wasm.y, cpu[i]!.y), `case ${i}`).toBeLessThan(1e-5);
        // gemm: 9 panels of the 4,100 inputs (one thread); gemm_tn: one call.
        expect(calls.gemm - counted.gemm, `case ${i}`).toBe(loop === 'gemm' ? 9 : 0);
        expect(calls.gemm_tn - counted.gemm_tn, `case ${i}`).toBe(loop === 'gemm_tn' ? 1 : 0);
      });
    } finally {
      restore();
    }
  });

  it('1x1 stride-1 gradients with few positions and small weights run as heap GEMMs (panels of rows), the rest on the loops; all match cpu', async () => {
    // [x shape, Ci, Co, gemm calls for dx, gemm_tn calls for dW] on one thread.
    const cases: [[number, number, number, number], number, number, number, number][] = [
      [[4, 24, 24, 16], 16, 24, 1, 2], // 2304 rows: two panels of 1638 for dW
      [[2, 4, 6, 12], 12, 16, 0, 1], // 12 input channels: dx not in the GEMM's 8-wide blocks
      [[2, 48, 48, 8], 8, 16, 0, 0], // 4608 positions: past the row limit
      [[4, 7, 7, 112], 112, 1280, 3, 5], // 143,360 weights (MobileNetV2-0.35's Conv_1): inside; dx in 3 row blocks, dW over 5 panels
      [[1, 4, 4, 512], 512, 640, 0, 0], // 327,680 weights: past the weight limit (2^18)
    ];
    const grads = (i: number) => {
      const [xs, ci, co] = cases[i]!;
      return tf.tidy(() => {
        const x = tf.randomNormal(xs, 0, 1, 'float32', 90 + i) as tf.Tensor4D;
        const w = tf.randomNormal([1, 1, ci, co], 0, 1, 'float32', 100 + i) as tf.Tensor4D;
        const probe = tf.randomNormal([...xs.slice(0, 3), co], 0, 1, 'float32', 110 + i);
        const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid'), probe)),
        )([x, w]);
        return [dx!.dataSync() as Float32Array, dw!.dataSync() as Float32Array];
      });
    };
    await useBackend('cpu');
    const cpu = cases.map((_, i) => grads(i));
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const { calls, restore } = countLoopCalls('gemm', 'gemm_tn');
    try {
      cases.forEach(([xs, , , gemm, gemmTn], i) => {
        grads(i); // warm-up
        const before = tf.memory().numTensors;
        const ids = backendDataIds();
        const counted = { ...calls };
        const [dx, dw] = grads(i);
        expect(tf.memory().numTensors).toBe(before);
        expect(backendDataIds()).toBe(ids);
        expect(calls.gemm - counted.gemm, `dx of ${xs}`).toBe(gemm);
        expect(calls.gemm_tn - counted.gemm_tn, `dW of ${xs}`).toBe(gemmTn);
        expect(relativeError(dx!, cpu[i]![0]!), `dx of ${xs}`).toBeLessThan(1e-5);
        expect(relativeError(dw!, cpu[i]![1]!), `dW of ${xs}`).toBeLessThan(1e-5);
      });
      // Switched off, the same gradients take the loops.
      setPointwiseGemm(false);
      const counted = { ...calls };
      const [dx, dw] = grads(0);
      expect(calls).toEqual(counted);
      expect(relativeError(dx!, cpu[0]![0]!)).toBeLessThan(1e-5);
      expect(relativeError(dw!, cpu[0]![1]!)).toBeLessThan(1e-5);
    } finally {
      setPointwiseGemm(true);
      restore();
    }
  });

  it('Transpose: 2D, batched 2D, outer/inner and row swaps on the heap (ragged edges), the rest shipped; exact', async () => {
    const cases: [number[], number[], 'float32' | 'int32'][] = [
      [[9, 7], [1, 0], 'float32'], // ragged rows and columns
      [[37, 10], [1, 0], 'float32'], // two blocks of 16 rows, one of 4 and a last row; 2 ragged columns
      [[2, 35, 6], [0, 2, 1], 'int32'], // batched, blocks of 16 rows
      [[20, 3, 18], [2, 1, 0], 'float32'], // strided blocks of 16 rows, then 4
      [[8, 12], [1, 0], 'int32'],
      [[3, 5, 6], [0, 2, 1], 'float32'], // batched
      [[2, 3, 4, 5], [3, 0, 1, 2], 'float32'], // collapses to [24, 5] -> [1, 0]
      [[2, 3, 4, 5], [0, 1, 3, 2], 'float32'], // collapses to [6, 4, 5] -> [0, 2, 1]
      [[1, 4, 1, 6], [3, 2, 1, 0], 'float32'], // size-1 axes
      [[2, 3, 4, 5], [2, 0, 1, 3], 'float32'], // [6, 4, 5] -> [1, 0, 2]: whole rows swapped
      [[3, 5, 7, 9], [1, 2, 0, 3], 'int32'], // [3, 35, 9] -> [1, 0, 2], rows of 9 (2 vectors and a tail)
      [[5, 3, 4, 6], [3, 1, 2, 0], 'float32'], // [5, 12, 6] -> [2, 1, 0]: N <-> C around H, W
      [[9, 2, 7], [2, 1, 0], 'float32'], // [2, 1, 0] with ragged 4x4 blocks
      [[2, 3, 4, 5], [1, 3, 0, 2], 'float32'], // four groups: the shipped kernel
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return cases.map(([shape, perm, dtype]) =>
        tf.tidy(() => {
          const n = shape.reduce((a, d) => a * d, 1);
          const x = tf.tensor(
            Array.from({ length: n }, (_, i) => (i * 7919) % 1000),
            shape,
            dtype,
          );
          const t = tf.transpose(x, perm);
          return { shape: t.shape, dtype: t.dtype, values: [...t.dataSync()] };
        }),
      );
    };
    const cpu = await run('cpu');
    await run('wasm');
    const before = tf.memory().numTensors;
    const ids = backendDataIds();
    const wasm = await run('wasm');
    expect(tf.memory().numTensors).toBe(before);
    expect(backendDataIds()).toBe(ids);
    expect(wasm).toEqual(cpu);
    expect(collapsePermutation([2, 3, 4, 5], [3, 0, 1, 2])).toEqual({ shape: [24, 5], perm: [1, 0] });
    expect(collapsePermutation([2, 3, 4, 5], [2, 0, 1, 3])).toEqual({ shape: [6, 4, 5], perm: [1, 0, 2] });
  });

  it('Reverse, GatherV2, Slice, PadV2 and Tile on the heap match cpu exactly (flips, rotations, filter taps, crops, padding, broadcasts, every dtype) and free what they make', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        const values = (shape: number[], dtype: 'float32' | 'int32' | 'bool') =>
          tf.tensor(
            Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) =>
              dtype === 'bool'
                ? Number(i % 3 === 0)
                : ((i * 7919) % 1000) - 500 + (dtype === 'float32' ? 0.25 : 0),
            ),
            shape,
            dtype,
          );
        const out: { shape: number[]; dtype: string; values: number[] }[] = [];
        const keep = (t: tf.Tensor) =>
          out.push({ shape: t.shape, dtype: t.dtype, values: [...t.dataSync()] });
        const reversals: [number[], number[], 'float32' | 'int32' | 'bool'][] = [
          [[1, 5, 7, 3], [2], 'float32'], // RandomHorizontalFlip: runs of 3 channels
          [[2, 5, 7, 1], [1], 'int32'], // RandomVerticalFlip, gray: runs of whole rows
          [[3, 3, 70, 2], [0, 1], 'float32'], // filter taps: runs of 140 (the set() path)
          [[4, 6], [1], 'bool'], // the last axis: runs of one
          [[2, 3, 4, 5], [0, 2, 3], 'float32'], // several axes, not adjacent
          [[1, 4, 1, 6], [0, 2], 'float32'], // only size-1 axes: a copy
          [[7], [0], 'int32'],
        ];
        for (const [shape, dims, dtype] of reversals) keep(tf.reverse(values(shape, dtype), dims));
        const gathers: [number[], number[], number, 'float32' | 'int32' | 'bool'][] = [
          [[1, 20, 3], [19, 0, 0, 7, 5], 1, 'float32'], // RandomRotation's gather of pixels
          [[2, 9, 1], [8, 1, 1, 2], 1, 'int32'], // gray: runs of one, two images
          [[6, 80], [5, 0, 2], 0, 'float32'], // rows of 80 (the set() path)
          [[3, 4], [2, 2], -1, 'bool'],
        ];
        for (const [shape, idx, axis, dtype] of gathers)
          keep(tf.gather(values(shape, dtype), tf.tensor1d(idx, 'int32'), axis));
        keep(
          tf.gather(
            values([3, 4], 'float32'),
            tf.tensor2d(
              [
                [0, 2],
                [1, 1],
              ],
              [2, 2],
              'int32',
            ),
            1,
          ),
        );
        const slices: [number[], number[], number[], 'float32' | 'int32' | 'bool'][] = [
          [[2, 6, 6, 5], [0, 0, 0, 0], [2, 5, 5, 5], 'float32'], // a stride-2 crop: runs of 25 per row
          [[2, 6, 6, 5], [1, 1, 2, 0], [1, 3, 4, 5], 'int32'],
          [[2, 6, 6, 70], [0, 0, 1, 0], [2, 6, 2, 70], 'float32'], // runs of 140 (the set() path)
          [[4, 7], [0, 2], [4, -1], 'bool'], // size -1: to the end
          [[3, 4, 5], [1, 0, 0], [2, 4, 5], 'float32'], // whole rows: one run
          [[3, 4, 5], [0, 0, 4], [3, 4, 1], 'float32'], // the last axis cut: runs of one
          [[5], [2], [0], 'float32'], // empty
        ];
        for (const [shape, begin, size, dtype] of slices) keep(tf.slice(values(shape, dtype), begin, size));
        const pads: [number[], [number, number][], number, 'float32' | 'int32'][] = [
          [
            [2, 7, 7, 3],
            [
              [0, 0],
              [0, 1],
              [0, 1],
              [0, 0],
            ],
            0,
            'float32',
          ], // MobileNetV2's stem: runs of 21
          [
            [1, 5, 6, 1],
            [
              [0, 0],
              [2, 1],
              [3, 0],
              [0, 0],
            ],
            -1.5,
            'float32',
          ], // gray, a constant
          [
            [1, 5, 20, 1],
            [
              [0, 0],
              [2, 1],
              [3, 0],
              [0, 0],
            ],
            -1.5,
            'float32',
          ], // gray, runs of 20 on the heap: a float constant fills as a float
          [
            [2, 4, 30, 3],
            [
              [1, 0],
              [1, 1],
              [1, 1],
              [0, 0],
            ],
            7,
            'int32',
          ], // batch padded; runs of 90 (set())
          [
            [2, 5, 5, 3],
            [
              [0, 0],
              [1, 1],
              [1, 1],
              [1, 1],
            ],
            0,
            'float32',
          ], // channels padded: shipped
          [
            [2, 5, 5, 8],
            [
              [0, 0],
              [1, 1],
              [1, 1],
              [0, 0],
            ],
            0,
            'float32',
          ], // 8 channels: shipped
        ];
        for (const [shape, paddings, value, dtype] of pads)
          keep(tf.pad(values(shape, dtype), paddings, value));
        const tiles: [number[], number[], 'float32' | 'int32' | 'bool'][] = [
          [[2, 1, 1, 5], [1, 3, 4, 1], 'float32'], // average pooling's gradient: runs of 5
          [[2, 1, 1, 70], [1, 2, 3, 1], 'int32'], // runs of 70 (the set() path)
          [[2, 3], [3, 2], 'bool'], // both axes, the last one repeated
          [[1, 2, 2], [2, 1, 1], 'float32'], // the first axis only: whole copies
          [[3, 1], [1, 1], 'float32'], // nothing repeated
          [[2, 0, 3], [1, 2, 1], 'float32'], // empty
        ];
        for (const [shape, reps, dtype] of tiles) keep(tf.tile(values(shape, dtype), reps));
        keep(tf.broadcastTo(values([3, 1, 2], 'float32'), [2, 3, 4, 2]));
        return out;
      });
    };
    const cpu = await run('cpu');
    await run('wasm');
    const before = tf.memory().numTensors;
    const ids = backendDataIds();
    const wasm = await run('wasm');
    expect(tf.getKernel('Reverse', 'wasm')?.kernelFunc).toBe(reverse);
    expect(tf.getKernel('GatherV2', 'wasm')?.kernelFunc).toBe(gatherV2);
    expect(tf.getKernel('Slice', 'wasm')?.kernelFunc).toBe(slice);
    expect(tf.getKernel('PadV2', 'wasm')?.kernelFunc).toBe(padV2);
    expect(tf.getKernel('Tile', 'wasm')?.kernelFunc).toBe(tile);
    expect(tf.memory().numTensors).toBe(before);
    expect(backendDataIds()).toBe(ids);
    expect(wasm).toEqual(cpu);
    // Short runs of 4-byte values go through the heap loops: a flip calls one per row, a gather
    // one per call.
    const { calls, restore } = countLoopCalls('reverse_runs', 'gather_runs');
    try {
      tf.tidy(() => {
        tf.reverse(tf.ones([1, 5, 7, 3]), [2]);
        tf.gather(tf.ones([1, 20, 3]), tf.tensor1d([19, 0, 0, 7, 5], 'int32'), 1);
        tf.gather(tf.ones([6, 80]), tf.tensor1d([5, 0, 2], 'int32'), 0); // runs of 80: set()
      });
      expect(calls).toEqual({ reverse_runs: 5, gather_runs: 1 });
    } finally {
      restore();
    }
    // And their JavaScript fallbacks.
    setHeapSimdEnabled(false);
    try {
      expect(await run('wasm')).toEqual(cpu);
    } finally {
      setHeapSimdEnabled(true);
    }
    // The flipped first row starts with the input's last pixel (values 18-20), then pixel 5 (15-17).
    const v = (i: number) => ((i * 7919) % 1000) - 500 + 0.25;
    expect(wasm[0]!.values.slice(0, 6)).toEqual([18, 19, 20, 15, 16, 17].map(v));
  });

  it('pixelsTensor: 8-bit pixels become float32 0-255 on the heap (SIMD and JavaScript), the same values as on cpu, freeing its scratch', async () => {
    // 7x5x3 = 105 bytes: six 16-byte blocks and a tail of 9; every byte value once in the second.
    const cases: [Uint8Array, [number, number, number]][] = [
      [Uint8Array.from({ length: 105 }, (_, i) => (i * 37 + 11) % 256), [7, 5, 3]],
      [Uint8Array.from({ length: 256 }, (_, i) => 255 - i), [16, 16, 1]],
      [new Uint8Array(0), [0, 4, 1]],
    ];
    const run = () =>
      cases.map(([bytes, shape]) => {
        const t = pixelsTensor(bytes, shape);
        const out = { shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) };
        t.dispose();
        return out;
      });
    await useBackend('cpu');
    const cpu = run();
    expect(cpu[0]!.values.slice(0, 3)).toEqual([11, 48, 85]);
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const counter = countLoopCalls('bytes_to_float');
    try {
      await withAndWithoutHeapSimd(
        async () => run(),
        (wasm) => expect(wasm).toEqual(cpu),
      );
      expect(counter.calls.bytes_to_float).toBe(4); // two non-empty cases, a warm-up and a run, SIMD on
    } finally {
      counter.restore();
    }
    expect(() =>
      tf.engine().runKernel(PIXELS_TO_FLOAT_KERNEL, {}, { pixels: new Uint8Array(3), shape: [2, 2, 1] }),
    ).toThrow(/needs a Uint8Array of \[2,2,1\] values; got 3/);
  });

  it("erase on wasm is one copy and the rectangle (MedimgEraseRect): the slices path's bits on cpu, batches, edges, per-channel and tensor values, leak-free, bad input named", async () => {
    const cases: {
      shape: number[];
      rect: [number, number, number, number];
      value: 'noise' | number | number[];
    }[] = [
      { shape: [224, 224, 3], rect: [30, 40, 50, 60], value: 0 },
      { shape: [2, 9, 11, 3], rect: [0, 0, 9, 4], value: [1, -2, 3] }, // full height, left edge
      { shape: [7, 5, 1], rect: [6, 2, 1, 3], value: 'noise' }, // bottom row, right edge
      { shape: [1, 6, 6, 4], rect: [2, 2, 0, 3], value: 5 }, // empty rectangle: a copy
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const tensors = tf.memory().numTensors;
      const out = cases.map(({ shape, rect: [top, left, height, width], value }, i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(shape as [number, number, number], 0, 255, 'float32', 80 + i) as
            | tf.Tensor3D
            | tf.Tensor4D;
          const c = shape.at(-1) as number;
          const v =
            value === 'noise'
              ? (tf.randomNormal([height, width, c], 0, 1, 'float32', 90 + i) as tf.Tensor3D)
              : value;
          return Array.from(erase(x, { top, left, height, width, value: v }).dataSync());
        }),
      );
      expect(tf.memory().numTensors).toBe(tensors);
      return out;
    };
    const cpu = await run('cpu');
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const counter = countKernelCalls(ERASE_RECT_KERNEL);
    let wasm: number[][];
    try {
      wasm = await run('wasm');
      // Every case but the empty rectangle, which is a clone.
      expect(counter.calls()).toBe(3);
    } finally {
      counter.restore();
    }
    wasm.forEach((values, i) => expect(values, `case ${i}`).toEqual(cpu[i]));
    // The erased values are there, the rest untouched (case 1: rows 0-8, columns 0-3 of image 1).
    expect(wasm[1]![(9 * 11 + 3 * 11 + 2) * 3 + 1]).toBe(-2);
    expect(() =>
      tf
        .engine()
        .runKernel(
          ERASE_RECT_KERNEL,
          { x: tf.zeros([1, 4, 4, 3]), block: tf.zeros([2, 2, 1]) },
          { top: 0, left: 0 },
        ),
    ).toThrow(/MedimgEraseRect needs .*block \[h, w, C\]/);
    expect(() =>
      tf
        .engine()
        .runKernel(
          ERASE_RECT_KERNEL,
          { x: tf.zeros([1, 4, 4, 3]), block: tf.zeros([2, 2, 3]) },
          { top: 3, left: 0 },
        ),
    ).toThrow(/inside them/);
  });

  it("Rescale and Normalize run as one pass each (MedimgChannelPair): the two ops' bits, SIMD and JavaScript, every channel count, leak-free", async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    // Whole rows of lcm(4, C) values and a partial last one (the 2x5x7 images), negative zeros.
    const shapes: number[][] = [
      [224, 224, 3],
      [2, 5, 7, 3],
      [17, 13, 1],
      [3, 3, 2],
      [1, 9, 9, 4],
    ];
    const opsOf = (x: tf.Tensor, c: number) => {
      const mean = Array.from({ length: c }, (_, i) => 0.4 + i * 0.05);
      const std = Array.from({ length: c }, (_, i) => 0.2 + i * 0.03);
      return [
        tf.add(tf.mul(x, 1 / 255), -0.25),
        tf.div(tf.sub(x, tf.tensor1d(mean)), tf.tensor1d(std)),
        tf.div(tf.sub(x, 0.5), 0.5),
      ];
    };
    const viaTransforms = (x: tf.Tensor3D | tf.Tensor4D, c: number) => [
      new Rescale({ scale: 1 / 255, offset: -0.25 }).apply(x),
      new Normalize({
        mean: Array.from({ length: c }, (_, i) => 0.4 + i * 0.05),
        std: Array.from({ length: c }, (_, i) => 0.2 + i * 0.03),
      }).apply(x),
      new Normalize({ mean: 0.5, std: 0.5 }).apply(x),
    ];
    const bits = (t: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));
    const counter = countKernelCalls(CHANNEL_PAIR_KERNEL);
    try {
      await withAndWithoutHeapSimd(
        async () =>
          shapes.map((shape, i) =>
            tf.tidy(() => {
              const c = shape.at(-1) as number;
              // Values around zero too, with -0 among them.
              const x = tf.mul(tf.randomUniform(shape, -50, 300, 'float32', 60 + i), tf.scalar(-1)) as
                | tf.Tensor3D
                | tf.Tensor4D;
              const got = viaTransforms(x, c).map(bits);
              const want = opsOf(x, c).map(bits);
              return { got, want };
            }),
          ),
        (results, simd) => {
          for (const [i, { got, want }] of results.entries())
            got.forEach((g, k) => {
              const w = want[k] as number[];
              expect(g.length).toBe(w.length);
              const differing = g.filter((v, j) => v !== w[j]).length;
              expect(differing, `shape ${shapes[i]}, op ${k}, simd ${simd}`).toBe(0);
            });
        },
      );
      // Three transforms per shape, per run (two runs each with and without SIMD).
      expect(counter.calls()).toBe(4 * 3 * shapes.length);
    } finally {
      counter.restore();
    }
    expect(() =>
      tf
        .engine()
        .runKernel(CHANNEL_PAIR_KERNEL, { x: tf.zeros([2, 2, 3]) }, { op: 'mul-add', a: [1], b: [0] }),
    ).toThrow(/3 channels|C values/);
  });

  it('the separable Gaussian blur kernel matches the ops path on cpu (RGB and gray, unequal taps, reflect edges), SIMD and JavaScript bit for bit', async () => {
    const cases: [[number, number, number, number], [number, number], [number, number]][] = [
      [
        [2, 9, 11, 3],
        [5, 3],
        [1.3, 0.7],
      ], // RGB, kx 5 taps, ky 3
      [
        [1, 7, 6, 1],
        [5, 5],
        [2, 2],
      ], // gray: reflect reaches 2 pixels into a 6-wide image
      [
        [1, 12, 10, 4],
        [7, 1],
        [0.9, 1],
      ], // ky of one tap: rows copied
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const tensors = tf.memory().numTensors;
      const buffers = backendDataIds();
      const out = cases.map(([shape, kernelSize, sigma], i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(shape, 0, 255, 'float32', 40 + i) as tf.Tensor4D;
          return [...gaussianBlur(x, { kernelSize, sigma }).dataSync()];
        }),
      );
      // Neither tensors nor the kernel's scratch (its taps and the horizontal pass) leak.
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backendDataIds()).toBe(buffers);
      return out;
    };
    const cpu = await run('cpu');
    let first: number[][] | undefined;
    await withAndWithoutHeapSimd(
      () => run('wasm'),
      (wasm, simd) => {
        expect(tf.getKernel(SEPARABLE_BLUR_KERNEL, 'wasm')?.kernelFunc).toBe(separableBlur);
        wasm.forEach((values, i) => {
          expect(values.length).toBe(cpu[i]!.length);
          const worst = Math.max(...values.map((v, j) => Math.abs(v - cpu[i]![j]!)));
          expect(worst, `case ${i}, simd ${simd}`).toBeLessThan(2e-4);
        });
        if (first) expect(wasm).toEqual(first);
        first = wasm;
      },
    );
    // Worked by hand on case 3 (a 1-tap vertical filter): each value is the 7-tap horizontal
    // Gaussian of its row, reflected at the edges (column -1 reads column 1).
    await useBackend('cpu');
    const x = tf.tidy(() => [...tf.randomUniform(cases[2]![0], 0, 255, 'float32', 42).dataSync()]);
    const taps = gaussianKernel1d(7, 0.9);
    const at = (row: number, col: number, ch: number) => x[(row * 10 + col) * 4 + ch]!;
    const reflected = (col: number) => (col < 0 ? -col : col > 9 ? 18 - col : col);
    for (const [row, col, ch] of [
      [0, 0, 0],
      [5, 4, 2],
      [11, 9, 3],
    ] as const) {
      const expected = taps.reduce((sum, t, k) => sum + t * at(row, reflected(col + k - 3), ch), 0);
      expect(first![2]![(row * 10 + col) * 4 + ch]).toBeCloseTo(expected, 3);
    }
  });

  it('a single-channel 3x3 convolution (a grayscale first layer) runs as one heap loop: equal to cpu within 1e-5, bias and activations, borders, without leaks', async () => {
    const cases: [
      [number, number, number, number],
      number,
      'same' | 'valid',
      boolean,
      'linear' | 'relu' | 'relu6',
    ][] = [
      [[4, 16, 16, 1], 32, 'same', false, 'linear'], // SimpleCNN's layout
      [[2, 9, 7, 1], 64, 'valid', true, 'relu6'], // two blocks of 32 channels, no padding
      [[3, 5, 6, 1], 32, 'same', true, 'relu'], // more border than interior
      [[1, 2, 2, 1], 32, 'same', true, 'linear'], // every tap window crosses a border
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const tensors = tf.memory().numTensors;
      const buffers = backendDataIds();
      const out = cases.map(([shape, co, pad, withBias, activation], i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(shape, -2, 2, 'float32', 70 + i) as tf.Tensor4D;
          const filter = tf.randomUniform([3, 3, 1, co], -1, 1, 'float32', 80 + i) as tf.Tensor4D;
          const bias = withBias ? tf.randomUniform([co], -1, 1, 'float32', 90 + i) : undefined;
          const fused = tf.fused.conv2d({
            x,
            filter,
            strides: 1,
            pad,
            ...(bias ? { bias } : {}),
            activation,
          });
          return [...fused.dataSync(), ...tf.conv2d(x, filter, 1, pad).dataSync()];
        }),
      );
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backendDataIds()).toBe(buffers);
      return out;
    };
    const cpu = await run('cpu');
    await useBackend('wasm');
    const counter = countLoopCalls('conv1_forward');
    let wasm: number[][];
    try {
      wasm = await run('wasm');
    } finally {
      counter.restore();
    }
    // Each case once fused and once plain.
    expect(counter.calls.conv1_forward).toBe(2 * cases.length);
    wasm.forEach((values, i) => {
      expect(values.length).toBe(cpu[i]!.length);
      const worst = Math.max(...values.map((v, j) => Math.abs(v - cpu[i]![j]!)));
      expect(worst, `case ${i}`).toBeLessThan(1e-5);
    });
    // XNNPACK's convolution (the loop switched off) sums the taps in the same order: the same
    // numbers, bit for bit.
    setDirectConv(false);
    try {
      expect(await run('wasm')).toEqual(wasm);
    } finally {
      setDirectConv(true);
    }
    // Worked by hand: a 2x2 image [[1, 2], [3, 4]], 'same', filter value k * (c + 1) at tap k
    // (row-major), channel c: output (0, 0) sees taps 4, 5, 7, 8 on pixels 1, 2, 3, 4.
    await useBackend('wasm');
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const f = tf.tensor4d(
      Array.from({ length: 9 * 32 }, (_, i) => Math.floor(i / 32) * ((i % 32) + 1)),
      [3, 3, 1, 32],
    );
    const y = tf.conv2d(x, f, 1, 'same');
    expect(y.dataSync()[0]).toBe(4 * 1 + 5 * 2 + 7 * 3 + 8 * 4);
    expect(y.dataSync()[31]).toBe((4 * 1 + 5 * 2 + 7 * 3 + 8 * 4) * 32);
    tf.dispose([x, f, y]);
  });

  it("a 1x1 stride-1 convolution's forward pass runs as one heap loop (4 x 8 blocks from the bias): XNNPACK's bits, cpu within 1e-5, bias and activations, the rest shipped, without leaks", async () => {
    // [x shape, output channels, bias, activation, takes the loop]
    const cases: [[number, number, number, number], number, boolean, 'linear' | 'relu' | 'relu6', boolean][] =
      [
        [[2, 12, 12, 8], 48, true, 'relu6', true], // MobileNetV2's first expansion, smaller
        [[3, 6, 6, 48], 8, true, 'linear', true], // a projection: many inputs, one block of outputs
        [[1, 4, 5, 16], 24, false, 'relu', true], // 20 positions, no bias
        [[1, 4, 3, 3], 8, true, 'relu', true], // 3 inputs (an RGB image's 1x1)
        [[2, 2, 2, 1], 16, false, 'relu6', true], // 1 input: one step per block
        [[1, 3, 3, 8], 16, true, 'relu6', false], // 9 positions: not in blocks of 4, shipped
        [[1, 4, 4, 8], 12, true, 'linear', false], // 12 outputs: not in blocks of 8, shipped
        [[1, 2, 2, 512], 512, false, 'linear', false], // 256K weights: past the loop's limit
      ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const tensors = tf.memory().numTensors;
      const buffers = backendDataIds();
      const out = cases.map(([shape, co, withBias, activation], i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(shape, -2, 2, 'float32', 170 + i) as tf.Tensor4D;
          const filter = tf.randomUniform([1, 1, shape[3], co], -1, 1, 'float32', 180 + i) as tf.Tensor4D;
          const bias = withBias ? tf.randomUniform([co], -1, 1, 'float32', 190 + i) : undefined;
          const fused = tf.fused.conv2d({
            x,
            filter,
            strides: 1,
            pad: 'same',
            ...(bias ? { bias } : {}),
            activation,
          });
          return [...fused.dataSync(), ...tf.conv2d(x, filter, 1, 'valid').dataSync()];
        }),
      );
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backendDataIds()).toBe(buffers);
      return out;
    };
    const cpu = await run('cpu');
    await useBackend('wasm');
    const counter = countLoopCalls('pointwise_forward');
    let wasm: number[][];
    try {
      wasm = await run('wasm');
    } finally {
      counter.restore();
    }
    // Each case that fits once fused and once plain (one call each without a pool).
    expect(counter.calls.pointwise_forward).toBe(2 * cases.filter((c) => c[4]).length);
    wasm.forEach((values, i) => {
      expect(values.length).toBe(cpu[i]!.length);
      const worst = Math.max(...values.map((v, j) => Math.abs(v - cpu[i]![j]!)));
      expect(worst, `case ${i}`).toBeLessThan(1e-5 * cases[i]![0][3]);
    });
    // XNNPACK's convolution (the loop switched off) sums from the bias, in the same order: the
    // same numbers, bit for bit (activations clamp the same way).
    setPointwiseForward(false);
    try {
      expect(await run('wasm')).toEqual(wasm);
    } finally {
      setPointwiseForward(true);
    }
    // Worked by hand: one position [1, 2], weights w[k, c] = (k + 1) * c, bias c / 2, ReLU6:
    // channel c gets min(6, c / 2 + 1 * c + 2 * 2c) = min(6, 5.5c).
    await useBackend('wasm');
    const x = tf.tensor4d([1, 2, 1, 2, 1, 2, 1, 2], [1, 2, 2, 2]);
    const f = tf.tensor4d(
      Array.from({ length: 16 }, (_, i) => (Math.floor(i / 8) + 1) * (i % 8)),
      [1, 1, 2, 8],
    );
    const bias = tf.tensor1d(Array.from({ length: 8 }, (_, c) => c / 2));
    const y = tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'valid', bias, activation: 'relu6' });
    expect(Array.from(y.dataSync().slice(0, 8))).toEqual([0, 5.5, 6, 6, 6, 6, 6, 6]);
    expect(Array.from(y.dataSync().slice(24))).toEqual([0, 5.5, 6, 6, 6, 6, 6, 6]);
    tf.dispose([x, f, bias, y]);
  });

  it('the rotation kernel gives the JavaScript gather of cpu bit for bit (batches, channels, fill, odd sizes, every quadrant), SIMD and JavaScript', async () => {
    const cases: [[number, number, number, number], number, number][] = [
      [[1, 128, 128, 1], 7.3, 0], // the SimpleCNN recipe's images
      [[2, 9, 7, 3], 17, 40], // a batch of RGB images with a fill
      [[1, 10, 10, 1], 90, 0], // exact quarter turn: sources on half-pixel ties
      [[1, 11, 13, 2], -135, 3],
      [[3, 6, 5, 1], 359.9, 1],
    ];
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const tensors = tf.memory().numTensors;
      const buffers = backendDataIds();
      const out = cases.map(([shape, angle, fill], i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(shape, 0, 255, 'float32', 60 + i) as tf.Tensor4D;
          return [...rotate(x, { angle, fill }).dataSync()];
        }),
      );
      expect(tf.memory().numTensors).toBe(tensors);
      expect(backendDataIds()).toBe(buffers);
      return out;
    };
    const cpu = await run('cpu');
    const counter = { calls: 0 };
    await withAndWithoutHeapSimd(
      async () => {
        await useBackend('wasm');
        const simd = heapSimd(tf.backend()) as unknown as {
          rotate_nearest?: (...a: number[]) => void;
        } | null;
        const original = simd?.rotate_nearest;
        if (simd && original)
          simd.rotate_nearest = (...args: number[]) => {
            counter.calls++;
            original(...args);
          };
        try {
          return await run('wasm');
        } finally {
          if (simd && original) simd.rotate_nearest = original;
        }
      },
      (wasm, simd) => {
        expect(tf.getKernel(ROTATE_NEAREST_KERNEL, 'wasm')?.kernelFunc).toBe(rotateNearest);
        expect(wasm, `simd ${simd}`).toEqual(cpu);
      },
    );
    // A warm-up and a run of the five cases with the loops on; none with them off.
    expect(counter.calls).toBe(10);
    // Worked by hand: a quarter turn counter-clockwise of a 3x3 image of 0..8 (row-major) makes
    // the right column, read downwards, the top row.
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const x = tf.tensor4d([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 3, 3, 1]);
    expect([...rotate(x, { angle: 90 }).dataSync()]).toEqual([2, 5, 8, 1, 4, 7, 0, 3, 6]);
    x.dispose();
    expect(() =>
      tf
        .engine()
        .runKernel(ROTATE_NEAREST_KERNEL, { x: tf.zeros([2, 2, 1], 'int32') }, { angle: 5, fill: 0 }),
    ).toThrow(/needs a float32 NHWC image/);
  });

  it("ClipByValue gradient (ReLU6) is the composite's, bit for bit, at the bounds, outside them and for NaN", async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        // Three 4-lane vectors and a scalar tail of 3 (all inside the bounds, so nonzero);
        // exact bounds 0 and 6 count as inside.
        const x = tf.concat([
          tf.randomUniform([7], -2, 8, 'float32', 31),
          tf.tensor1d([-1, 0, 6.5, Number.NaN, -0, 3, 6, 5.999]),
        ]);
        const dy = tf.randomNormal([15], 0, 1, 'float32', 32);
        const g = tf.grad((a: tf.Tensor) => tf.clipByValue(a, 0, 6))(x, dy);
        // As tfjs-layers' ReLU(maxValue: 6) builds it.
        const layer = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.clipByValue(tf.relu(a), 0, 6), dy)))(x);
        return [g.dataSync(), layer.dataSync()].map((v) => [...v]);
      });
    };
    const cpu = await run('cpu');
    await withAndWithoutHeapSimd(
      () => run('wasm'),
      (wasm, simd) => {
        expect(wasm, `simd ${simd}`).toEqual(cpu);
        expect(wasm[0]!.slice(7).map((v, j) => (v === 0 ? 0 : j + 7))).toEqual([0, 8, 0, 0, 11, 12, 13, 14]);
      },
    );
  });

  it('Add of a per-channel vector (a bias, either order, [C] or [1, 1, 1, C]) runs on the heap with the same sums as cpu; other Adds are the shipped kernel', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        // 7 channels: a vector of 4 and a tail of 3; NaN, infinities and signed zeros among them.
        const x = tf.reshape(
          tf.concat([
            tf.randomNormal([2 * 5 * 6 * 7 - 7], 0, 3, 'float32', 36),
            tf.tensor1d([Number.NaN, -0, 0, Infinity, -Infinity, 1e-45, -2]),
          ]),
          [2, 5, 6, 7],
        );
        const bias = tf.tensor1d([0.5, -0, 0, -Infinity, 1, -1e-45, 3]);
        return [
          tf.add(x, bias),
          tf.add(bias, x),
          tf.add(x, tf.reshape(bias, [1, 1, 1, 7])),
          tf.add(tf.randomNormal([9, 8], 0, 1, 'float32', 37), tf.randomNormal([8], 0, 1, 'float32', 38)),
          tf.add(x, x), // same shapes: shipped
          tf.add(x, tf.scalar(2)), // a scalar: shipped
          tf.add(tf.tensor2d([[1, 2]], [1, 2], 'int32'), tf.tensor1d([3, 4], 'int32')), // int32: shipped
        ].map((t) => ({ shape: t.shape, values: [...t.dataSync()] }));
      });
    };
    const cpu = await run('cpu');
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const counter = countLoopCalls('affine_channels');
    try {
      await withAndWithoutHeapSimd(
        () => run('wasm'),
        (wasm, on) => expect(wasm, `simd ${on}`).toEqual(cpu),
      );
      expect(counter.calls.affine_channels).toBe(2 * 4); // four broadcast cases, a warm-up and a run with SIMD on
    } finally {
      counter.restore();
    }
  });

  it("Relu gradient (patch clip-gradient.ts) is one kernel with the composite's values, except NaN and zeros' signs", async () => {
    installPatches({ wasm: true });
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      return tf.tidy(() => {
        // Three 4-lane vectors and a scalar tail of 3; the smallest denormal counts as positive.
        const x = tf.concat([
          tf.randomUniform([7], -2, 2, 'float32', 33),
          tf.tensor1d([-1, 0, 2 ** -149, Number.NaN, -0, 3, -(2 ** -149), 1e30]),
        ]);
        const dy = tf.randomNormal([15], 0, 1, 'float32', 34);
        return [
          ...tf
            .grad((a: tf.Tensor) => tf.relu(a))(x, dy)
            .dataSync(),
        ];
      });
    };
    // tfjs's dy * step(x): NaN where x is NaN, -0 where dy < 0 and x <= 0; here 0 for both.
    const cpu = (await run('cpu')).map((v) => (Number.isNaN(v) || v === 0 ? 0 : v));
    const kernels = await tf.profile(() => run('wasm'));
    expect(kernels.kernelNames).toContain(CLIP_GRAD_KERNEL);
    expect(kernels.kernelNames).not.toContain('Step');
    await withAndWithoutHeapSimd(
      () => run('wasm'),
      (wasm, simd) => {
        expect(
          wasm.map((v) => (v === 0 ? 0 : v)),
          `simd ${simd}`,
        ).toEqual(cpu);
        expect(wasm.slice(7).map((v, j) => (v === 0 ? 0 : j + 7))).toEqual([0, 0, 9, 0, 0, 12, 0, 14]);
      },
    );
  });

  it('Identity (tf.clone, used to save tensors for gradients) shares the buffer and keeps its own reference', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const ids = backend.numDataIds();
    const y = tf.clone(x);
    expect(backend.numDataIds()).toBe(ids); // no copy
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    expect(y.shape).toEqual([2, 2]);
    y.dispose();
    expect(backend.numDataIds()).toBe(ids - 1); // freed with the last reference
  });

  it('frees every intermediate buffer (wasm memory flat over repeated steps)', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const step = () =>
      tf
        .tidy(() => {
          const x = tf.randomNormal([2, 16, 16, 4], 0, 1, 'float32', 1);
          const f = tf.randomNormal([3, 3, 4, 8], 0, 1, 'float32', 2);
          const df = tf.randomNormal([3, 3, 4, 1], 0, 1, 'float32', 3);
          const g = tf.grads((a: tf.Tensor, w: tf.Tensor, d: tf.Tensor) =>
            tf.sum(
              tf.conv2d(
                tf.depthwiseConv2d(a as tf.Tensor4D, d as tf.Tensor4D, 2, 'same'),
                w as tf.Tensor4D,
                1,
                'same',
              ),
            ),
          )([x, f, df]);
          return tf.sum(tf.addN(g.map((t) => tf.sum(t))));
        })
        .dispose();
    step();
    const bytes = tf.memory().numBytes;
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.memory().numBytes).toBe(bytes);
    // The wasm heap does not grow either: the backend's data map holds no stray buffers.
    const backend = tf.backend() as unknown as { dataIdMap: { numDataIds(): number } };
    const ids = backend.dataIdMap.numDataIds();
    step();
    expect(backend.dataIdMap.numDataIds()).toBe(ids);
  });
});

describe('a whole SimpleCNN training step: wasm with these kernels vs cpu', () => {
  it('gives the same weights within float32 tolerance', async () => {
    const { simpleCnn, adaBelief } = await import('../../src/index.js');
    const step = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
      const model = simpleCnn({
        inputShape: [24, 24, 1],
        numClasses: 3,
        filters: [4, 8],
        dense: 8,
        dropout: 0,
        seed: 3,
      });
      const x = tf.randomUniform([6, 24, 24, 1], 0, 1, 'float32', 4);
      const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3);
      const opt = adaBelief({ learningRate: 1e-2, rectify: false });
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      for (let i = 0; i < 3; i++) {
        opt.minimize(
          () =>
            tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
          false,
          vars,
        );
      }
      const weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
      tf.dispose([x, y]);
      opt.dispose();
      model.dispose();
      return weights;
    };
    const cpu = await step('cpu');
    const wasm = await step('wasm');
    expect(wasm.length).toBe(cpu.length);
    wasm.forEach((w, i) => {
      expect(relativeError(w, cpu[i]!), `weight ${i}`).toBeLessThan(1e-4);
    });
  });
});

describe('Mean gradient (patches/mean-gradient.ts)', () => {
  it('is dy / N broadcast over the reduced axes, exactly, on cpu and wasm, leak-free', async () => {
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      installPatches({ wasm: true });
      if (backend === 'wasm') registerWasmTrainingKernels();
      const x = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 3);
      const dy = tf.randomNormal([2, 5], 0, 1, 'float32', 4);
      const grad = () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.mean(a, [1, 2]), dy)))(x);
      tf.dispose(grad());
      const before = tf.memory().numTensors;
      const g = grad();
      const d = dy.dataSync();
      const values = g.dataSync();
      for (let i = 0; i < values.length; i++) {
        const n = Math.floor(i / 60);
        const c = i % 5;
        expect(values[i], `${backend} ${i}`).toBe(Math.fround((d[n * 5 + c] as number) / 12));
      }
      g.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // keepDims and a negative axis
      const k = tf.grad((a: tf.Tensor) => tf.sum(tf.mean(a, -1, true)))(x);
      expect(k.shape).toEqual([2, 3, 4, 5]);
      k.dataSync().forEach((v) => expect(v).toBe(Math.fround(1 / 5)));
      tf.dispose([x, dy, k]);
    }
  });
});
