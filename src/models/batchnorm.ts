import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  BATCHNORM_TRAIN_GRAD_KERNEL,
  BATCHNORM_TRAIN_KERNEL,
  type BatchNormActivation,
} from '../backend/kernel-names.js';

/** The fields of a tfjs-layers BatchNormalization layer that this library reads. */
export interface BatchNormLayer {
  axis: number;
  epsilon: number;
  momentum: number;
  gamma: tfl.LayerVariable | null;
  beta: tfl.LayerVariable | null;
  movingMean: tfl.LayerVariable;
  movingVariance: tfl.LayerVariable;
}

/** Whether {@link batchNormTraining} can replace tfjs-layers' training path for this layer and input. */
export function fusedBatchNormApplies(layer: unknown, input: tf.Tensor): boolean {
  const bn = layer as BatchNormLayer;
  const axis = bn.axis < 0 ? bn.axis + input.rank : bn.axis;
  return axis === input.rank - 1 && bn.gamma != null && bn.beta != null && input.dtype === 'float32';
}

/**
 * Training-mode batch normalisation over all axes but the last, with the closed-form gradient
 *   dx = (gamma * rstd / M) * (M * dy - sum(dy) - xhat * sum(dy * xhat))
 * in a few passes instead of the ~15 that differentiating mean, variance and normalisation
 * separately takes. The output and gradients equal tfjs-layers'. Moving statistics are updated
 * as Keras on TensorFlow and PyTorch both do, `moving -= (moving - batch) * (1 - momentum)`
 * with the **unbiased** batch variance (`M / (M - 1)` times the biased one that normalises the
 * batch); tfjs-layers alone uses the biased one. With `activation` ('relu' or 'relu6') the output
 * is activated too, in the same kernel where the backend has it (its gradient passes dy where
 * y > 0, and y < 6 for ReLU6, as TensorFlow's does), else by the op afterwards.
 */
export function batchNormTraining(
  layer: unknown,
  x: tf.Tensor,
  activation: BatchNormActivation = 'linear',
): tf.Tensor {
  const bn = layer as BatchNormLayer;
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const m = axes.reduce((p, a) => p * (x.shape[a] as number), 1);
  const gamma = (bn.gamma as tfl.LayerVariable).read();
  const beta = (bn.beta as tfl.LayerVariable).read();
  let batchMean: tf.Tensor | undefined;
  let batchVariance: tf.Tensor | undefined;
  const kernel = tf.getKernel(BATCHNORM_TRAIN_KERNEL, tf.getBackend()) !== undefined;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, g, b] = args as [tf.Tensor, tf.Tensor, tf.Tensor];
    const save = args[3] as tf.GradSaveFunc;
    if (kernel) {
      // One kernel each way where the backend has them (wasm): three passes instead of ~10 ops.
      const attrs = { varianceEpsilon: bn.epsilon, activation };
      const [y, mean, variance] = tf
        .engine()
        .runKernel(BATCHNORM_TRAIN_KERNEL, { x: input, scale: g, offset: b }, attrs) as tf.Tensor[];
      batchMean = tf.keep(mean as tf.Tensor);
      batchVariance = tf.keep(variance as tf.Tensor);
      // With an activation, its gradient masks dy by the output.
      const outputs = activation === 'linear' ? [] : [y as tf.Tensor];
      save([input, mean as tf.Tensor, variance as tf.Tensor, g, ...outputs]);
      return {
        value: y as tf.Tensor,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [sx, sm, sv, sg, sy] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor?];
          const inputs = {
            dy: dy as tf.Tensor,
            x: sx,
            mean: sm,
            variance: sv,
            scale: sg,
            ...(sy ? { y: sy } : {}),
          };
          return tf.engine().runKernel(BATCHNORM_TRAIN_GRAD_KERNEL, inputs, attrs) as tf.Tensor[];
        },
      };
    }
    const mean = tf.mean(input, axes);
    const centered = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centered), axes);
    const rstd = tf.rsqrt(tf.add(variance, bn.epsilon));
    const y = tf.add(tf.mul(centered, tf.mul(rstd, g)), b);
    batchMean = tf.keep(mean);
    batchVariance = tf.keep(variance);
    save([centered, rstd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const grad = dy as tf.Tensor;
        const [c, r, gg] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dbeta = tf.sum(grad, axes);
        const dgammaRaw = tf.sum(tf.mul(grad, c), axes); // sum(dy * (x - mean))
        const dgamma = tf.mul(dgammaRaw, r); // sum(dy * xhat)
        const a = tf.mul(gg, r); // gamma * rstd
        const shift = tf.div(tf.mul(a, dbeta), -m); // -(gamma * rstd / M) * sum(dy)
        const slope = tf.div(tf.mul(tf.mul(a, r), dgamma), -m); // -(gamma * rstd^2 / M) * sum(dy * xhat)
        const dx = tf.add(tf.add(tf.mul(grad, a), tf.mul(c, slope)), shift);
        return [dx, dgamma, dbeta];
      },
    };
  });
  const normalised = f(x, gamma, beta);
  // Without the kernel, the activation as its own op (the same values).
  let y = normalised;
  if (!kernel && activation !== 'linear') {
    y = activation === 'relu' ? tf.relu(normalised) : tf.clipByValue(normalised, 0, 6);
    normalised.dispose();
  }
  tf.tidy(() => {
    const decay = 1 - bn.momentum;
    const unbiased = tf.mul(batchVariance as tf.Tensor, m > 1 ? m / (m - 1) : 1);
    for (const [variable, value] of [
      [bn.movingMean, batchMean],
      [bn.movingVariance, unbiased],
    ] as const) {
      const orig = variable.read();
      variable.write(tf.sub(orig, tf.mul(tf.sub(orig, value as tf.Tensor), decay)));
    }
  });
  tf.dispose([batchMean as tf.Tensor, batchVariance as tf.Tensor]);
  return y;
}

/** Running per-channel statistics of one layer's inputs, pooled exactly over batches (Chan et al.). */
export interface ChannelMoments {
  /** Values seen per channel. */
  count: number;
  mean: Float64Array;
  /** Sum of squared deviations from the mean (M2). */
  m2: Float64Array;
}

/** Layers whose inputs are being measured by {@link measureBatchNormInputs}, and their moments. */
let measuring: Map<unknown, ChannelMoments> | null = null;

/**
 * While `fn` runs, each BatchNormalization layer in `layers` that is called normalises with the
 * batch's own statistics (training mode, moving statistics untouched) and adds the batch's
 * per-channel moments to its entry. Used by `recalibrateBatchNorm`.
 */
export async function measureBatchNormInputs(
  layers: readonly unknown[],
  fn: () => Promise<void>,
): Promise<Map<unknown, ChannelMoments>> {
  const previous = measuring;
  const moments = new Map<unknown, ChannelMoments>();
  for (const l of layers) moments.set(l, { count: 0, mean: new Float64Array(0), m2: new Float64Array(0) });
  measuring = moments;
  try {
    await fn();
  } finally {
    measuring = previous;
  }
  return moments;
}

/** Whether `layer` is being measured now (see {@link measureBatchNormInputs}). */
export function batchNormMeasured(layer: unknown): boolean {
  return measuring?.has(layer) ?? false;
}

/**
 * The BatchNormalization forward pass used while measuring (see {@link measureBatchNormInputs}),
 * or `null` when `layer` is not being measured.
 */
export function measuredBatchNorm(layer: unknown, x: tf.Tensor): tf.Tensor | null {
  const entry = measuring?.get(layer);
  if (!entry) return null;
  const bn = layer as BatchNormLayer;
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const n = axes.reduce((p, a) => p * (x.shape[a] as number), 1);
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, axes);
    const bm = mean.dataSync();
    const bv = variance.dataSync();
    if (entry.count === 0) {
      entry.mean = new Float64Array(bm.length);
      entry.m2 = new Float64Array(bm.length);
    }
    const total = entry.count + n;
    for (let c = 0; c < bm.length; c++) {
      // Chan et al.'s pairwise update: exact pooled mean and M2 of all values seen.
      const delta = (bm[c] as number) - (entry.mean[c] as number);
      entry.mean[c] = (entry.mean[c] as number) + (delta * n) / total;
      entry.m2[c] =
        (entry.m2[c] as number) + (bv[c] as number) * n + (delta * delta * entry.count * n) / total;
    }
    entry.count = total;
    const gamma = bn.gamma ? bn.gamma.read() : undefined;
    const beta = bn.beta ? bn.beta.read() : undefined;
    return tf.batchNorm(x, mean, variance, beta, gamma, bn.epsilon);
  });
}
