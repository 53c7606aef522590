import * as tfl from '@tensorflow/tfjs-layers';
import { deriveSeed } from '../util/random.js';

/** Standard deviation of a unit normal truncated to [-2, 2] (Keras's correction constant). */
const TRUNCATED_NORMAL_STD = 0.87962566103423978;

/** Deterministic Keras-default initializers: every layer gets its own seed derived from one. */
export class Initializers {
  private count = 0;
  constructor(private readonly seed: number) {}
  private next(): number {
    return deriveSeed(this.seed, this.count++);
  }
  /** Glorot uniform, the Keras default for Conv2D and Dense kernels. */
  glorot() {
    return tfl.initializers.glorotUniform({ seed: this.next() });
  }
  /** A seed for a random layer (dropout). */
  seedFor(): number {
    return this.next();
  }
  /**
   * Keras 2.x's `VarianceScaling` with `mode: 'fan_out'` (EfficientNet's convolution and dense
   * initializers). Keras's `'truncated_normal'` divides the standard deviation by 0.8796 (the
   * standard deviation of a unit normal truncated at two), tfjs's `'normal'` draws from the same
   * truncated normal without that correction: the scale passed to tfjs makes up for it.
   */
  varianceScalingFanOut(scale: number, distribution: 'truncated_normal' | 'uniform') {
    const truncated = distribution === 'truncated_normal';
    return tfl.initializers.varianceScaling({
      scale: truncated ? scale / TRUNCATED_NORMAL_STD ** 2 : scale,
      mode: 'fanOut',
      distribution: truncated ? 'normal' : 'uniform',
      seed: this.next(),
    });
  }
  /** He normal, for ReLU networks trained from scratch. */
  he() {
    return tfl.initializers.heNormal({ seed: this.next() });
  }
}

export type Pooling = 'avg' | 'max' | undefined;

/** Counts a model's parameters the way Keras's `model.summary()` does. */
export function countParams(model: tfl.LayersModel): {
  total: number;
  trainable: number;
  nonTrainable: number;
} {
  const size = (ws: tfl.LayerVariable[]) =>
    ws.reduce((a, w) => a + (w.shape as number[]).reduce((p, d) => p * d, 1), 0);
  const trainable = size(model.trainableWeights);
  const nonTrainable = size(model.nonTrainableWeights);
  return { total: trainable + nonTrainable, trainable, nonTrainable };
}
