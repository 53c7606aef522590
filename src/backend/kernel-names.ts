/**
 * Names and attributes of the custom kernels this library registers on backends. They live here,
 * not with their users, so that the optimizers, the patches and the kernels depend on one small
 * module instead of on each other.
 */

/**
 * A kernel a backend may register to apply one AdaBelief step in a single pass (the wasm
 * backend does, in `setupBackend`): inputs `p`, `g`, `m`, `s`; outputs the new p, m and s. It
 * must give the same float32 numbers as the op-by-op update:
 *   p1 = p * decay; m' = m * beta1 + g * (1 - beta1); s' = s * beta2 + (g - m')^2 * (1 - beta2) + eps
 *   p' = p1 - alpha * m' / (sqrt(s') / root + eps), or p' = p1 - alpha * m' when `sgd`.
 */
export const ADABELIEF_UPDATE_KERNEL = 'MedimgAdaBeliefUpdate';

/** Attributes of {@link ADABELIEF_UPDATE_KERNEL}. */
export interface AdaBeliefUpdateAttrs {
  decay: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  root: number;
  alpha: number;
  sgd: boolean;
}

/** Kernel behind the ClipByValue gradient on wasm (see `patches/clip-gradient.ts`). */
export const CLIP_GRAD_KERNEL = 'MedimgClipByValueGrad';

/**
 * A kernel a backend may register to blur NHWC float32 images with a separable filter and
 * reflect padding (torchvision's `GaussianBlur`): input `x`; attributes {@link SeparableBlurAttrs}.
 * The wasm backend does (one pass per axis on the heap); elsewhere `gaussianBlur` composes
 * tfjs ops. Same values as the ops within float32 rounding (the taps are summed in order).
 */
export const SEPARABLE_BLUR_KERNEL = 'MedimgSeparableBlur';

/** Attributes of {@link SEPARABLE_BLUR_KERNEL}: the 1-D taps along the width and the height. */
export interface SeparableBlurAttrs {
  kx: number[];
  ky: number[];
}

/**
 * A kernel a backend may register to rotate NHWC float32 images about their centre,
 * nearest-neighbour, same size (torchvision's `F.rotate` with `expand=False`): input `x`;
 * attributes {@link RotateNearestAttrs}. The wasm backend does (one loop on the heap: each output
 * pixel's source computed and copied); elsewhere `rotate` gathers in JavaScript or with tfjs ops.
 * The same values on every path (a copy; the source index in float64 as `rotationSourceIndex`).
 */
export const ROTATE_NEAREST_KERNEL = 'MedimgRotateNearest';

/** Attributes of {@link ROTATE_NEAREST_KERNEL}: degrees counter-clockwise, and the value outside. */
export interface RotateNearestAttrs {
  angle: number;
  fill: number;
}

/**
 * Training-mode batch normalisation over every axis but the last, as a backend may register it
 * (the wasm backend does): inputs `x`, `scale` (gamma), `offset` (beta); attribute
 * `varianceEpsilon` and optionally `activation` ({@link BatchNormActivation}); outputs y, the
 * batch mean and the biased batch variance, with
 *   y = act((x - mean) * (gamma * rsqrt(variance + eps)) + beta)
 * (act: ReLU max(v, 0), ReLU6 min(max(v, 0), 6), or none). Two passes over x instead of the
 * seven ops `batchNormTraining` composes elsewhere, and the activation's own pass.
 */
export const BATCHNORM_TRAIN_KERNEL = 'MedimgBatchNormTrain';

/**
 * The activation {@link BATCHNORM_TRAIN_KERNEL} applies to its output: `'linear'` (none, the
 * default), `'relu'` or `'relu6'`. Its gradient passes dy where y > 0 (ReLU, as tfjs's does) or
 * 0 < y < 6 (ReLU6, as TensorFlow's Relu6Grad and PyTorch's hardtanh do), y the activated output.
 */
export type BatchNormActivation = 'linear' | 'relu' | 'relu6';

/**
 * The gradient of {@link BATCHNORM_TRAIN_KERNEL}: inputs `dy`, `x`, `mean`, `variance`, `scale`,
 * and `y` (the forward output) with an activation; attributes `varianceEpsilon` and `activation`;
 * outputs dx, dgamma, dbeta, with a = gamma * rstd, M values per channel, xhat = (x - mean) * rstd
 * and g = dy, or with an activation dy where it passes (see {@link BatchNormActivation}), else 0:
 *   dbeta = sum(g); dgamma = sum(g * xhat)
 *   dx = g * a - (a / M) * dbeta - (a * rstd / M) * dgamma * (x - mean)
 */
export const BATCHNORM_TRAIN_GRAD_KERNEL = 'MedimgBatchNormTrainGrad';

/**
 * One step of tfjs's `AdamOptimizer` for one variable, as a backend may register it (the wasm
 * backend does): inputs `p`, `g`, `m`, `v`; attributes {@link AdamUpdateAttrs}; outputs the new
 * p, m and v, the same float32 numbers as tfjs's op-by-op update:
 *   m' = m * beta1 + g * (1 - beta1); v' = v * beta2 + g^2 * (1 - beta2)
 *   p' = ((m' / c1) / (sqrt(v' / c2) + epsilon)) * -learningRate + p
 */
export const ADAM_UPDATE_KERNEL = 'MedimgAdamUpdate';

/** Attributes of {@link ADAM_UPDATE_KERNEL}; c1 and c2 are tfjs's float32 `1 - accBeta1`, `1 - accBeta2`. */
export interface AdamUpdateAttrs {
  beta1: number;
  beta2: number;
  c1: number;
  c2: number;
  epsilon: number;
  learningRate: number;
}

/**
 * A float32 tensor from 8-bit pixels, as a backend may register it (the wasm backend does): no
 * inputs; attributes {@link PixelsToFloatAttrs}; one output of `shape` whose values are the bytes
 * (0-255). The bytes go to the backend as they are, a quarter of the float32 copy, and are
 * widened there. `pixelsTensor` (data/pixels.ts) falls back to a float32 copy elsewhere.
 */
export const PIXELS_TO_FLOAT_KERNEL = 'MedimgPixelsToFloat';

/** Attributes of {@link PIXELS_TO_FLOAT_KERNEL}. */
export interface PixelsToFloatAttrs {
  pixels: Uint8Array;
  shape: number[];
}

/**
 * Per-channel `x * a[c] + b[c]` (`op: 'mul-add'`, Rescale) or `(x - a[c]) / b[c]` (`'sub-div'`,
 * Normalize) over the last axis of a float32 tensor, in one pass with the two tfjs ops' float32
 * roundings (wasm; elsewhere the transforms run the two ops).
 */
export const CHANNEL_PAIR_KERNEL = 'MedimgChannelPair';

export interface ChannelPairAttrs {
  op: 'mul-add' | 'sub-div';
  /** One value per channel (the last axis). */
  a: number[];
  b: number[];
}

/**
 * `x` with the rectangle at (`top`, `left`) of every image replaced by `block` ([h, w, C]):
 * RandomErasing's assignment as one copy and a fill of the rectangle (wasm; elsewhere `erase`
 * slices and concatenates).
 */
export const ERASE_RECT_KERNEL = 'MedimgEraseRect';

export interface EraseRectAttrs {
  top: number;
  left: number;
}
