/**
 * Patch: `tf.train.adam` updates each variable with one kernel where the backend has one (wasm:
 * `MedimgAdamUpdate`, a single pass over the heap) instead of tfjs's 14 ops per variable, each
 * reading and writing the whole tensor. The optimizer's state (its moment variables, `accBeta1`,
 * `accBeta2`, `iterations`), its serialization and its numbers are unchanged: the kernel computes
 * the same float32 operations in the same order. Users' own models trained with `fit` or
 * `trainOnBatch` and this library's `train` both go through it. Elsewhere (other backends, an
 * update with a non-float32 variable) tfjs's own update runs. Global, installed by `setupBackend('wasm')`;
 * `setFusedAdam(false)` switches it off.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADAM_UPDATE_KERNEL, type AdamUpdateAttrs } from '../kernel-names.js';

type NamedTensor = { name: string; tensor: tf.Tensor };
type Slot = { originalName: string; variable: tf.Variable };

/** The fields of tfjs's AdamOptimizer this update reads and writes. */
interface AdamState {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Slot[];
  accumulatedSecondMoment: Slot[];
  incrementIterations(): void;
}

type Apply = (this: AdamState, variableGradients: tf.NamedTensorMap | NamedTensor[]) => void;

const PATCHED = Symbol.for('medimg-classify.fusedAdam');
let enabled = true;

/** Turns the fused update off or on (on once `setupBackend('wasm')` has run). Same numbers either way. */
export function setFusedAdam(on: boolean): void {
  enabled = on;
}

/** Replaces `AdamOptimizer.prototype.applyGradients` (idempotent). */
export function installFusedAdam(): void {
  const proto = tf.AdamOptimizer.prototype as unknown as { applyGradients: Apply; [PATCHED]?: true };
  if (proto[PATCHED]) return;
  const original = proto.applyGradients;
  proto.applyGradients = function (this: AdamState, variableGradients) {
    if (
      !enabled ||
      tf.getKernel(ADAM_UPDATE_KERNEL, tf.getBackend()) === undefined ||
      !allFloat32(variableGradients)
    )
      return original.call(this, variableGradients);
    fusedApply(this, variableGradients);
  };
  proto[PATCHED] = true;
}

/** Whether every variable and its gradient are float32 tensors of one size (the kernel's inputs). */
function allFloat32(variableGradients: tf.NamedTensorMap | NamedTensor[]): boolean {
  const entries = Array.isArray(variableGradients)
    ? variableGradients.map((v) => [v.name, v.tensor] as const)
    : Object.entries(variableGradients);
  return entries.every(([name, g]) => {
    const value = tf.engine().registeredVariables[name];
    return g == null || (value?.dtype === 'float32' && g.dtype === 'float32' && g.size === value.size);
  });
}

function fusedApply(state: AdamState, variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
  const names = Array.isArray(variableGradients)
    ? variableGradients.map((v) => v.name)
    : Object.keys(variableGradients);
  // tfjs's sub(1, accBeta) in float32: 1 - a is exact in float64 for a float32 a, then rounded.
  const c1 = Math.fround(1 - (state.accBeta1.dataSync()[0] as number));
  const c2 = Math.fround(1 - (state.accBeta2.dataSync()[0] as number));
  const attrs: AdamUpdateAttrs = {
    beta1: state.beta1,
    beta2: state.beta2,
    c1,
    c2,
    epsilon: state.epsilon,
    learningRate: state.learningRate,
  };
  tf.tidy(() => {
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name] as tf.Variable;
      // The moment slots exactly as tfjs creates them (names, order, not trainable).
      state.accumulatedFirstMoment[i] ??= {
        originalName: `${name}/m`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      state.accumulatedSecondMoment[i] ??= {
        originalName: `${name}/v`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const gradient = Array.isArray(variableGradients)
        ? (variableGradients[i] as NamedTensor).tensor
        : variableGradients[name];
      if (gradient == null) return;
      const m = (state.accumulatedFirstMoment[i] as Slot).variable;
      const v = (state.accumulatedSecondMoment[i] as Slot).variable;
      const [p1, m1, v1] = tf
        .engine()
        .runKernel(
          ADAM_UPDATE_KERNEL,
          { p: value, g: gradient, m, v },
          attrs as unknown as tf.NamedAttrMap,
        ) as tf.Tensor[];
      m.assign(m1 as tf.Tensor);
      v.assign(v1 as tf.Tensor);
      value.assign(p1 as tf.Tensor);
    });
    state.accBeta1.assign(tf.mul(state.accBeta1, state.beta1));
    state.accBeta2.assign(tf.mul(state.accBeta2, state.beta2));
  });
  state.incrementIterations();
}
