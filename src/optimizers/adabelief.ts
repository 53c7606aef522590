import * as tf from '@tensorflow/tfjs-core';
import { ADABELIEF_UPDATE_KERNEL, type AdaBeliefUpdateAttrs } from '../backend/kernel-names.js';
import { check, checkNumber } from '../util/errors.js';

/** A named tensor, as tfjs optimizers exchange their state. */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Hyperparameters of {@link AdaBeliefOptimizer}; defaults are those of adabelief-pytorch 0.2.0. */
export interface AdaBeliefConfig {
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  /** Added to s in place before the square root, and to the denominator. Default 1e-16. */
  epsilon?: number;
  weightDecay?: number;
  /** AdamW-style decay `p *= 1 - lr * wd` instead of L2 added to the gradient. Default true. */
  decoupledWeightDecay?: boolean;
  /** With decoupled decay: `p *= 1 - wd`, independent of the learning rate. Default false. */
  fixedDecay?: boolean;
  /** RAdam-style variance rectification. Default true. */
  rectify?: boolean;
  amsgrad?: boolean;
  /** Before the variance is tractable (N_sma < 5), take SGD-with-momentum steps. Default true. */
  degeneratedToSgd?: boolean;
}

interface SlotState {
  m: tf.Variable;
  s: tf.Variable;
  maxS: tf.Variable | null;
  step: number;
}

const CLASS_NAME = 'AdaBelief';

/**
 * AdaBelief (Zhuang et al., NeurIPS 2020): Adam whose second moment tracks the "belief"
 * `(g - m)^2` instead of `g^2`. The update is step-for-step that of the official
 * adabelief-pytorch 0.2.0, including its decoupled weight decay, in-place epsilon, AMSGrad and
 * RAdam-style rectification.
 *
 * State is keyed by variable name (`<name>/m`, `<name>/s`, `<name>/max_s`, `<name>/step`) with a
 * step count per variable, as PyTorch keeps per-parameter state: unfreezing more layers later
 * starts their state fresh without scrambling the others'. The learning rate may be changed
 * between steps (`optimizer.learningRate = x`, or the schedules in this library).
 */
export class AdaBeliefOptimizer extends tf.Optimizer {
  /** @nocollapse */
  static get className(): string {
    return CLASS_NAME;
  }

  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly decoupledWeightDecay: boolean;
  readonly fixedDecay: boolean;
  readonly rectify: boolean;
  readonly amsgrad: boolean;
  readonly degeneratedToSgd: boolean;
  private slots = new Map<string, SlotState>();

  constructor(config: AdaBeliefConfig = {}) {
    super();
    const op = 'adaBelief';
    this.learningRate = checkNumber(config.learningRate ?? 1e-3, op, 'learningRate', { min: 0 });
    this.beta1 = checkNumber(config.beta1 ?? 0.9, op, 'beta1', { min: 0, max: 1, maxExclusive: true });
    this.beta2 = checkNumber(config.beta2 ?? 0.999, op, 'beta2', { min: 0, max: 1, maxExclusive: true });
    this.epsilon = checkNumber(config.epsilon ?? 1e-16, op, 'epsilon', { min: 0, minExclusive: true });
    this.weightDecay = checkNumber(config.weightDecay ?? 0, op, 'weightDecay', { min: 0 });
    this.decoupledWeightDecay = config.decoupledWeightDecay ?? true;
    this.fixedDecay = config.fixedDecay ?? false;
    this.rectify = config.rectify ?? true;
    this.amsgrad = config.amsgrad ?? false;
    this.degeneratedToSgd = config.degeneratedToSgd ?? true;
    registerAdaBelief();
  }

  private slotFor(name: string, value: tf.Variable): SlotState {
    let slot = this.slots.get(name);
    if (!slot) {
      const zeros = () => tf.tidy(() => tf.variable(tf.zerosLike(value), false));
      slot = { m: zeros(), s: zeros(), maxS: this.amsgrad ? zeros() : null, step: 0 };
      this.slots.set(name, slot);
    }
    return slot;
  }

  /** Whether this backend has the fused update kernel for these float32 tensors. */
  private canFuse(p: tf.Tensor, g: tf.Tensor, slot: SlotState): boolean {
    if (tf.getKernel(ADABELIEF_UPDATE_KERNEL, tf.getBackend()) === undefined) return false;
    return [p, g, slot.m, slot.s].every((t) => t.dtype === 'float32' && t.size === p.size);
  }

  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const entries: [string, tf.Tensor | undefined][] = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor])
      : Object.entries(variableGradients);
    const lr = this.learningRate;
    check(Number.isFinite(lr) && lr >= 0, 'AdaBeliefOptimizer', `learningRate must be >= 0, got ${lr}`);
    const { beta1, beta2, epsilon: eps, weightDecay: wd } = this;
    tf.tidy(() => {
      for (const [name, gradient] of entries) {
        if (gradient == null) continue;
        const value = tf.engine().registeredVariables[name];
        check(value !== undefined, 'AdaBeliefOptimizer', `no variable named '${name}'`);
        const slot = this.slotFor(name, value);
        let p: tf.Tensor = value;
        let g: tf.Tensor = gradient;
        let decoupledDecay: number | undefined;
        if (this.decoupledWeightDecay) {
          if (wd !== 0) decoupledDecay = this.fixedDecay ? 1 - wd : 1 - lr * wd;
        } else if (wd !== 0) g = tf.add(g, tf.mul(p, wd));
        slot.step += 1;
        const t = slot.step;
        const bc1 = 1 - beta1 ** t;
        const bc2 = 1 - beta2 ** t;
        // p -= alpha * m / (sqrt(s) / root + eps), or p -= alpha * m while the variance is
        // not yet tractable (sgd).
        let root = Math.sqrt(bc2);
        let alpha = lr / bc1;
        let sgd = false;
        if (this.rectify) {
          const beta2t = beta2 ** t;
          const nSmaMax = 2 / (1 - beta2) - 1;
          const nSma = nSmaMax - (2 * t * beta2t) / (1 - beta2t);
          if (nSma >= 5) {
            root = 1;
            alpha =
              (Math.sqrt(
                (((((1 - beta2t) * (nSma - 4)) / (nSmaMax - 4)) * (nSma - 2)) / nSma) *
                  (nSmaMax / (nSmaMax - 2)),
              ) /
                bc1) *
              lr;
          } else {
            sgd = true;
            if (!this.degeneratedToSgd) alpha = 0;
          }
        }
        if (!slot.maxS && this.canFuse(p, g, slot)) {
          const attrs: AdaBeliefUpdateAttrs = {
            decay: decoupledDecay ?? 1,
            beta1,
            beta2,
            epsilon: eps,
            root,
            alpha,
            sgd,
          };
          const [pNext, mNext, sNext] = tf
            .engine()
            .runKernel(
              ADABELIEF_UPDATE_KERNEL,
              { p, g, m: slot.m, s: slot.s },
              attrs as unknown as tf.NamedAttrMap,
            ) as tf.Tensor[];
          slot.m.assign(mNext as tf.Tensor);
          slot.s.assign(sNext as tf.Tensor);
          value.assign(pNext as tf.Tensor);
          continue;
        }
        if (decoupledDecay !== undefined) p = tf.mul(p, decoupledDecay);
        const m = tf.add(tf.mul(slot.m, beta1), tf.mul(g, 1 - beta1));
        const residual = tf.sub(g, m);
        // Epsilon goes into s in place, as in the official implementation.
        const s = tf.add(tf.add(tf.mul(slot.s, beta2), tf.mul(tf.square(residual), 1 - beta2)), eps);
        slot.m.assign(m);
        slot.s.assign(s);
        // AMSGrad's running maximum enters the denominator only without rectification, as in
        // adabelief-pytorch 0.2.0.
        let belief = s;
        if (slot.maxS) {
          const maxS = tf.maximum(slot.maxS, s);
          slot.maxS.assign(maxS);
          if (!this.rectify) belief = maxS;
        }
        const sd = tf.sqrt(belief);
        const step = sgd ? m : tf.div(m, tf.add(root === 1 ? sd : tf.div(sd, root), eps));
        if (alpha !== 0) p = tf.sub(p, tf.mul(step, alpha));
        if (p !== value) value.assign(p);
      }
    });
    this.incrementIterations();
  }

  override dispose(): void {
    for (const slot of this.slots.values()) tf.dispose([slot.m, slot.s, ...(slot.maxS ? [slot.maxS] : [])]);
    this.slots.clear();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const weights: NamedTensor[] = [await this.saveIterations()];
    for (const [name, slot] of this.slots) {
      weights.push({ name: `${name}/m`, tensor: slot.m }, { name: `${name}/s`, tensor: slot.s });
      if (slot.maxS) weights.push({ name: `${name}/max_s`, tensor: slot.maxS });
      weights.push({ name: `${name}/step`, tensor: tf.scalar(slot.step, 'int32') });
    }
    return weights;
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.dispose();
    const byVar = new Map<string, Partial<Record<'m' | 's' | 'max_s' | 'step', tf.Tensor>>>();
    // Checkpoints written by 0.1.0 name the belief state `v` and `max_v`.
    const legacy: Record<string, string> = { v: 's', max_v: 'max_s' };
    for (const { name, tensor } of rest) {
      const cut = name.lastIndexOf('/');
      const raw = name.slice(cut + 1);
      const key = legacy[raw] ?? raw;
      check(
        cut > 0 && ['m', 's', 'max_s', 'step'].includes(key),
        'AdaBeliefOptimizer.setWeights',
        `unexpected weight '${name}' (expected <variable>/m, /s, /max_s or /step)`,
      );
      const varName = name.slice(0, cut);
      const entry = byVar.get(varName) ?? {};
      entry[key as 'm'] = tensor;
      byVar.set(varName, entry);
    }
    for (const [name, w] of byVar) {
      check(w.m && w.s, 'AdaBeliefOptimizer.setWeights', `variable '${name}' lacks its m or s state`);
      check(
        !this.amsgrad || w.max_s,
        'AdaBeliefOptimizer.setWeights',
        `variable '${name}' lacks max_s (amsgrad)`,
      );
      const step = w.step ? (await w.step.data())[0]! : this.iterations;
      this.slots.set(name, {
        m: tf.variable(w.m, false),
        s: tf.variable(w.s, false),
        maxS: this.amsgrad && w.max_s ? tf.variable(w.max_s, false) : null,
        step,
      });
    }
  }

  getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
      decoupledWeightDecay: this.decoupledWeightDecay,
      fixedDecay: this.fixedDecay,
      rectify: this.rectify,
      amsgrad: this.amsgrad,
      degeneratedToSgd: this.degeneratedToSgd,
    };
  }

  /** @nocollapse */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new cls(config as AdaBeliefConfig);
  }
}

/**
 * Registers AdaBelief with tfjs serialization (idempotent), so saved models and optimizers load.
 * Not run at import (the package has no side effects): the constructor and every loader of this
 * library call it.
 */
export function registerAdaBelief(): void {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  if (!(CLASS_NAME in map)) tf.serialization.registerClass(AdaBeliefOptimizer);
}

/**
 * Creates an {@link AdaBeliefOptimizer}. Defaults follow adabelief-pytorch 0.2.0; the paper's
 * CIFAR setting is `{ epsilon: 1e-8, weightDecay: 5e-4, decoupledWeightDecay: false, rectify: false }`.
 *
 * @example
 * model.compile({ optimizer: adaBelief({ learningRate: 1e-3 }), loss: 'categoricalCrossentropy' });
 */
export function adaBelief(config: AdaBeliefConfig = {}): AdaBeliefOptimizer {
  return new AdaBeliefOptimizer(config);
}
