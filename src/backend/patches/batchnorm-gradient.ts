import * as tf from '@tensorflow/tfjs-core';

/**
 * The gradient of FusedBatchNorm with the same formulas as tfjs-core's, but broadcasting the
 * per-channel factors instead of tiling them to the input's full size (the `Tile` took a third
 * of a SimpleCNN training step on wasm). Backend-independent; registered once.
 */
let installed = false;

export function registerBatchNormGradient(): void {
  if (installed) return;
  installed = true;
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const grad = dy as tf.Tensor;
      const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const scaleValue = scale ?? tf.scalar(1);
      const axes = tf.backend_util.getReductionAxes(mean.shape, x.shape);
      const reduce = (t: tf.Tensor) => (mean.rank === 1 ? tf.sum(t, axes) : t);
      const rstd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
      const xMinusMean = tf.sub(x, mean);
      const dyTimesScale = tf.mul(grad, scaleValue);
      const minusHalfRCube = tf.mul(tf.mul(tf.mul(rstd, rstd), rstd), tf.scalar(-0.5));
      return {
        x: () => tf.reshape(tf.mul(tf.mul(grad, rstd), scaleValue), x.shape),
        mean: () => tf.reshape(reduce(tf.mul(tf.mul(rstd, tf.scalar(-1)), dyTimesScale)), mean.shape),
        variance: () =>
          tf.reshape(reduce(tf.mul(tf.mul(minusHalfRCube, xMinusMean), dyTimesScale)), mean.shape),
        scale: () => tf.reshape(reduce(tf.mul(grad, tf.mul(xMinusMean, rstd))), mean.shape),
        offset: () => tf.reshape(reduce(grad), mean.shape),
      };
    },
  });
}
