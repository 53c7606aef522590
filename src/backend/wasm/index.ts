/**
 * Training kernels for the wasm backend, one file per kernel family, composed from its own fast
 * kernels (XNNPACK convolution and matrix multiply, pad, slice, transpose) and from the SIMD loops
 * of the `heap-simd*.wat` modules (in Node, some on a pool of worker threads:
 * `heap-parallel.ts`). tfjs-backend-wasm 4.22 ships no `Conv2DBackpropFilter` and no depthwise
 * backprops, so a CNN cannot train on it as shipped, and its `Conv2DBackpropInput` is a slow
 * direct loop. Kernels are looked up in the registry (`tf.getKernel`) rather than imported,
 * because deep imports into tfjs's `dist/` break under Node ESM.
 *
 * - `conv.ts`, `conv-geometry.ts`: Conv2D input and filter gradients (the filter gradient of small
 *   channel blocks and grayscale inputs as a heap loop)
 * - `winograd.ts`: 3x3 stride-1 convolutions, their input and filter gradients as Winograd
 *   F(4x4, 3x3) (`heap-simd-winograd.wat`)
 * - `direct-conv.ts`: Conv2D and FusedConv2D forward, trying the heap paths in order (Winograd,
 *   a grayscale first layer's 3x3 loop, the 1x1 loop in `heap-simd-conv.wat`), else XNNPACK
 * - `depthwise.ts`: depthwise input and filter gradients
 * - `matmul.ts`: flag-free BatchMatMul, choosing the cheaper arrangement
 * - `reductions.ts`: Sum/Mean over leading axes
 * - `max-pool.ts`: MaxPoolGrad
 * - `batchnorm.ts`: inference FusedBatchNorm
 * - `elementwise.ts`: Identity (shares the buffer), a bias Add, Transpose, the ClipByValue gradient
 * - `copy.ts`: Reverse, GatherV2, Slice, PadV2 and Tile as runs of contiguous copies (flips,
 *   rotations, crops, zero padding, broadcasts), and 8-bit pixels to float32 (a custom kernel)
 * - `blur.ts`: the separable Gaussian blur of `GaussianBlur` (a custom kernel)
 * - `rotate.ts`: the nearest-neighbour rotation of `RandomRotation` (a custom kernel)
 * - `elementwise.ts`: also Rescale's and Normalize's one-pass per-channel kernel (custom)
 * - `adabelief.ts`, `adam.ts`: the fused AdaBelief and Adam updates (custom kernels)
 * - `batchnorm-train.ts`: training-mode BatchNorm and its gradient (custom kernels)
 * Gradient *definitions* this library replaces live in `../patches/`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  ADABELIEF_UPDATE_KERNEL,
  ADAM_UPDATE_KERNEL,
  BATCHNORM_TRAIN_GRAD_KERNEL,
  BATCHNORM_TRAIN_KERNEL,
  CHANNEL_PAIR_KERNEL,
  CLIP_GRAD_KERNEL,
  ERASE_RECT_KERNEL,
  PIXELS_TO_FLOAT_KERNEL,
  ROTATE_NEAREST_KERNEL,
  SEPARABLE_BLUR_KERNEL,
} from '../kernel-names.js';
import { adaBeliefUpdate } from './adabelief.js';
import { adamUpdate } from './adam.js';
import { fusedBatchNorm } from './batchnorm.js';
import { batchNormTrain, batchNormTrainGrad } from './batchnorm-train.js';
import { separableBlur } from './blur.js';
import { type KernelArgs, shipped, type TensorInfo } from './common.js';
import { conv2DBackpropFilter, conv2DBackpropInput } from './conv.js';
import { eraseRect, gatherV2, padV2, pixelsToFloat, reverse, slice, tile } from './copy.js';
import { depthwiseBackpropFilter, depthwiseBackpropInput } from './depthwise.js';
import { conv2D, fusedConv2D } from './direct-conv.js';
import { add, channelPair, clipByValueGrad, identity, transpose } from './elementwise.js';
import { batchMatMul } from './matmul.js';
import { maxPoolGrad } from './max-pool.js';
import { leadingReduction } from './reductions.js';
import { rotateNearest } from './rotate.js';

const KERNELS: [string, (args: KernelArgs) => TensorInfo | TensorInfo[]][] = [
  ['Identity', identity],
  ['Add', add],
  [ADABELIEF_UPDATE_KERNEL, adaBeliefUpdate],
  [CLIP_GRAD_KERNEL, clipByValueGrad],
  [CHANNEL_PAIR_KERNEL, channelPair],
  [SEPARABLE_BLUR_KERNEL, separableBlur],
  [ROTATE_NEAREST_KERNEL, rotateNearest],
  [ADAM_UPDATE_KERNEL, adamUpdate],
  [BATCHNORM_TRAIN_KERNEL, batchNormTrain],
  [BATCHNORM_TRAIN_GRAD_KERNEL, batchNormTrainGrad],
  ['Transpose', transpose],
  ['Reverse', reverse],
  ['GatherV2', gatherV2],
  ['Slice', slice],
  ['PadV2', padV2],
  ['Tile', tile],
  [PIXELS_TO_FLOAT_KERNEL, pixelsToFloat],
  [ERASE_RECT_KERNEL, eraseRect],
  ['FusedBatchNorm', fusedBatchNorm],
  ['MaxPoolGrad', maxPoolGrad],
  ['BatchMatMul', batchMatMul],
  ['Sum', leadingReduction('Sum')],
  ['Mean', leadingReduction('Mean')],
  ['Conv2D', conv2D],
  ['FusedConv2D', fusedConv2D],
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['Conv2DBackpropInput', conv2DBackpropInput],
  ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter],
  ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput],
];

let registered = false;

/**
 * Registers this library's training kernels for the wasm backend (idempotent). Replaces the
 * shipped `Conv2DBackpropInput` with the faster composite. Called by `setupBackend('wasm')`.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  for (const [kernelName, kernelFunc] of KERNELS) {
    const existing = tf.getKernel(kernelName, 'wasm');
    if (existing) {
      shipped.set(kernelName, existing.kernelFunc);
      tf.unregisterKernel(kernelName, 'wasm');
    }
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
  }
  registered = true;
}

export {
  setFilterGradStrategy,
  setInputGradStrategy,
  setPointwiseGemm,
  useConvForFilterGrad,
  useHeapForFilterGrad,
  useMatMulForInputGrad,
} from './conv.js';
export { setDirectConv, setPointwiseForward } from './direct-conv.js';
export { collapsePermutation } from './elementwise.js';
export { setBalancedPool } from './heap-parallel.js';
export { setWinograd, useWinograd } from './winograd.js';
