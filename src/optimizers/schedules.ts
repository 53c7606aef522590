import type * as tf from '@tensorflow/tfjs-core';
import { check, checkNumber, MedimgError } from '../util/errors.js';

type AnyOptimizer = tf.Optimizer & { learningRate?: number; setLearningRate?: (lr: number) => void };

/** Reads an optimizer's current learning rate (Adam, SGD, Momentum, RMSProp, AdaBelief, ...). */
export function getLearningRate(optimizer: tf.Optimizer): number {
  const lr = (optimizer as AnyOptimizer).learningRate;
  if (typeof lr !== 'number') {
    throw new MedimgError('getLearningRate', `${optimizer.getClassName()} has no numeric learningRate`);
  }
  return lr;
}

/**
 * Sets an optimizer's learning rate for the next step. SGD and Momentum cache it in a tensor
 * and are updated through their `setLearningRate`; the others read the field each step.
 */
export function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  checkNumber(learningRate, 'setLearningRate', 'learningRate', { min: 0 });
  const o = optimizer as AnyOptimizer;
  if (typeof o.learningRate !== 'number') {
    throw new MedimgError('setLearningRate', `${optimizer.getClassName()} has no numeric learningRate`);
  }
  if (typeof o.setLearningRate === 'function') o.setLearningRate(learningRate);
  else o.learningRate = learningRate;
}

/** A learning rate as a function of the (0-based) epoch. */
export type Schedule = (epoch: number) => number;

/** `initial * gamma^floor(epoch / stepSize)` (PyTorch's StepLR). */
export function stepDecay(options: { initial: number; stepSize: number; gamma?: number }): Schedule {
  const op = 'stepDecay';
  const initial = checkNumber(options?.initial, op, 'initial', { min: 0 });
  const stepSize = checkNumber(options.stepSize, op, 'stepSize', { integer: true, min: 1 });
  const gamma = checkNumber(options.gamma ?? 0.1, op, 'gamma', { min: 0 });
  return (epoch) => initial * gamma ** Math.floor(epoch / stepSize);
}

/**
 * Linear warm-up from `initial / (warmupEpochs + 1)` for `warmupEpochs`, then cosine annealing
 * from `initial` to `minLearningRate` at `epochs`.
 */
export function cosineDecay(options: {
  initial: number;
  epochs: number;
  warmupEpochs?: number;
  minLearningRate?: number;
}): Schedule {
  const op = 'cosineDecay';
  const initial = checkNumber(options?.initial, op, 'initial', { min: 0 });
  const epochs = checkNumber(options.epochs, op, 'epochs', { integer: true, min: 1 });
  const warmup = checkNumber(options.warmupEpochs ?? 0, op, 'warmupEpochs', { integer: true, min: 0 });
  const floor = checkNumber(options.minLearningRate ?? 0, op, 'minLearningRate', { min: 0 });
  check(warmup < epochs, op, `warmupEpochs (${warmup}) must be smaller than epochs (${epochs})`);
  return (epoch) => {
    if (epoch < warmup) return (initial * (epoch + 1)) / (warmup + 1);
    const progress = Math.min(1, (epoch - warmup) / Math.max(1, epochs - warmup));
    return floor + 0.5 * (initial - floor) * (1 + Math.cos(Math.PI * progress));
  };
}

export interface ReduceOnPlateauOptions {
  /** Multiplier applied when the metric stalls. Default 0.1. */
  factor?: number;
  /** Epochs without improvement before reducing. Default 10. */
  patience?: number;
  /** 'min' for a loss, 'max' for accuracy or F1. Default 'min'. */
  mode?: 'min' | 'max';
  /** Smallest change that counts as improvement (absolute). Default 1e-4. */
  minDelta?: number;
  /** Epochs to wait after a reduction. Default 0. */
  cooldown?: number;
  minLearningRate?: number;
}

/** Reduces the learning rate when a metric stops improving (Keras's ReduceLROnPlateau). */
export class ReduceOnPlateau {
  private best: number;
  private wait = 0;
  private cooldownLeft = 0;
  private readonly factor: number;
  private readonly patience: number;
  private readonly mode: 'min' | 'max';
  private readonly minDelta: number;
  private readonly cooldown: number;
  private readonly minLr: number;

  constructor(options: ReduceOnPlateauOptions = {}) {
    const op = 'ReduceOnPlateau';
    this.factor = checkNumber(options.factor ?? 0.1, op, 'factor', {
      min: 0,
      max: 1,
      minExclusive: true,
      maxExclusive: true,
    });
    this.patience = checkNumber(options.patience ?? 10, op, 'patience', { integer: true, min: 0 });
    this.mode = options.mode ?? 'min';
    check(
      this.mode === 'min' || this.mode === 'max',
      op,
      `mode must be 'min' or 'max', got ${String(this.mode)}`,
    );
    this.minDelta = checkNumber(options.minDelta ?? 1e-4, op, 'minDelta', { min: 0 });
    this.cooldown = checkNumber(options.cooldown ?? 0, op, 'cooldown', { integer: true, min: 0 });
    this.minLr = checkNumber(options.minLearningRate ?? 0, op, 'minLearningRate', { min: 0 });
    this.best = this.mode === 'min' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  /** Feeds one epoch's metric; returns the learning rate to use next. */
  step(metric: number, currentLearningRate: number): number {
    const improved =
      this.mode === 'min' ? metric < this.best - this.minDelta : metric > this.best + this.minDelta;
    if (improved) {
      this.best = metric;
      this.wait = 0;
    } else if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
    } else {
      this.wait++;
    }
    if (this.cooldownLeft === 0 && this.wait > this.patience) {
      this.wait = 0;
      this.cooldownLeft = this.cooldown;
      return Math.max(this.minLr, currentLearningRate * this.factor);
    }
    return currentLearningRate;
  }

  getState(): { best: number; wait: number; cooldownLeft: number } {
    return { best: this.best, wait: this.wait, cooldownLeft: this.cooldownLeft };
  }

  setState(state: { best: number; wait: number; cooldownLeft: number }): void {
    ({ best: this.best, wait: this.wait, cooldownLeft: this.cooldownLeft } = state);
  }
}

/** Epoch callbacks, in the shape tfjs-layers' `model.fit({ callbacks })` and this library's training loop accept. */
export interface EpochCallbacks {
  onEpochBegin?: (epoch: number, logs?: Record<string, number>) => Promise<void> | void;
  onEpochEnd?: (epoch: number, logs?: Record<string, number>) => Promise<void> | void;
}

/**
 * A callback that sets the optimizer's learning rate from `schedule(epoch)` before each epoch.
 *
 * @example
 * await model.fit(xs, ys, { epochs: 30, callbacks: [learningRateScheduler(optimizer, cosineDecay({ initial: 1e-3, epochs: 30 }))] });
 */
export function learningRateScheduler(optimizer: tf.Optimizer, schedule: Schedule): EpochCallbacks {
  return {
    onEpochBegin: (epoch) => {
      setLearningRate(optimizer, schedule(epoch));
    },
  };
}

/** A callback that applies {@link ReduceOnPlateau} to `monitor` (default `val_loss`) after each epoch. */
export function reduceLearningRateOnPlateau(
  optimizer: tf.Optimizer,
  options: ReduceOnPlateauOptions & { monitor?: string } = {},
): EpochCallbacks & { plateau: ReduceOnPlateau } {
  const { monitor = 'val_loss', ...rest } = options;
  const plateau = new ReduceOnPlateau(rest);
  return {
    plateau,
    onEpochEnd: (_epoch, logs) => {
      const value = logs?.[monitor];
      if (value === undefined) {
        throw new MedimgError('reduceLearningRateOnPlateau', `metric '${monitor}' is not in the epoch logs`);
      }
      setLearningRate(optimizer, plateau.step(value, getLearningRate(optimizer)));
    },
  };
}
