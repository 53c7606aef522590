import * as tfl from '@tensorflow/tfjs-layers';
import { deriveSeed } from '../util/random.js';

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
