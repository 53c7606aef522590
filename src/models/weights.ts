import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { MedimgError } from '../util/errors.js';

/** A weight value to assign by name (`layer/weight`, Keras's name without `:0`). */
export interface NamedWeight {
  shape: number[];
  data: Float32Array;
}

/** What {@link assignWeightsByName} found. */
export interface WeightMatch {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  mismatched: { name: string; expected: number[]; got: number[] }[];
}

/** Keras-style name of a tfjs weight: `layer/kernel` (tfjs suffixes duplicates with `_1`; strip it). */
export function weightKey(variable: tfl.LayerVariable): string {
  return variable.originalName.replace(/:0$/, '');
}

/**
 * Assigns weights to a model by name. Throws a {@link MedimgError} that lists missing,
 * unexpected and shape-mismatched weights, unless `allowMissing` / `allowUnexpected` say
 * otherwise (mismatched shapes always throw); nothing is assigned when it throws.
 */
export function assignWeightsByName(
  model: tfl.LayersModel,
  weights: Map<string, NamedWeight>,
  options: { op?: string; source?: string; allowMissing?: boolean; allowUnexpected?: boolean } = {},
): WeightMatch {
  const op = options.op ?? 'loadWeights';
  const result: WeightMatch = { loaded: [], missing: [], unexpected: [], mismatched: [] };
  const plan: [tfl.LayerVariable, NamedWeight][] = [];
  const seen = new Set<string>();
  for (const variable of model.weights) {
    const key = weightKey(variable);
    seen.add(key);
    const value = weights.get(key);
    if (!value) {
      result.missing.push(key);
      continue;
    }
    const expected = variable.shape as number[];
    if (expected.length !== value.shape.length || expected.some((d, i) => d !== value.shape[i])) {
      result.mismatched.push({ name: key, expected, got: value.shape });
      continue;
    }
    plan.push([variable, value]);
  }
  for (const key of weights.keys()) if (!seen.has(key)) result.unexpected.push(key);
  const problems: string[] = [];
  if (result.mismatched.length) {
    problems.push(
      `shape mismatch: ${result.mismatched.map((m) => `${m.name} expects [${m.expected}] but the file has [${m.got}]`).join('; ')}`,
    );
  }
  if (result.missing.length && !options.allowMissing)
    problems.push(`missing from the file: ${preview(result.missing)}`);
  if (result.unexpected.length && !options.allowUnexpected)
    problems.push(`not in the model: ${preview(result.unexpected)}`);
  if (problems.length) {
    throw new MedimgError(
      op,
      `${options.source ? `${options.source}: ` : ''}weights do not fit the model (${problems.join('. ')})`,
    );
  }
  for (const [variable, value] of plan) {
    tf.tidy(() => {
      variable.write(tf.tensor(value.data, value.shape));
    });
    result.loaded.push(weightKey(variable));
  }
  return result;
}

function preview(names: string[]): string {
  return names.length > 8 ? `${names.slice(0, 8).join(', ')} and ${names.length - 8} more` : names.join(', ');
}
