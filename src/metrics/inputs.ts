import * as tf from '@tensorflow/tfjs-core';
import { check, MedimgError } from '../util/errors.js';

/** Labels as plain arrays, typed arrays, a rank-1 label tensor or a rank-2 probability tensor. */
export type LabelInput = readonly number[] | Int32Array | Float32Array | Uint8Array | tf.Tensor;
/** Class probabilities: rows of numbers or a rank-2 tensor (N x numClasses). */
export type ProbabilityInput = readonly (readonly number[])[] | tf.Tensor;

/**
 * Converts labels to an integer array. A rank-2 tensor or array of rows is read as
 * probabilities (or one-hot) and its argmax taken. Checks range when `numClasses` is given.
 */
export function toLabels(
  op: string,
  name: string,
  input: LabelInput | ProbabilityInput,
  numClasses?: number,
): number[] {
  let labels: number[];
  if (input instanceof tf.Tensor) {
    check(!input.isDisposed, op, `${name} tensor has been disposed`);
    if (input.rank === 2) labels = Array.from(tf.tidy(() => tf.argMax(input, 1).dataSync()));
    else {
      check(
        input.rank === 1,
        op,
        `${name} must be a rank-1 label tensor or a rank-2 probability tensor, got rank ${input.rank}`,
      );
      labels = Array.from(input.dataSync());
    }
  } else if (Array.isArray(input) && input.length > 0 && Array.isArray(input[0])) {
    labels = (input as readonly (readonly number[])[]).map((row) => argmax(row));
  } else {
    check(
      Array.isArray(input) || ArrayBuffer.isView(input),
      op,
      `${name} must be an array, a typed array or a tensor, got ${typeof input}`,
    );
    labels = Array.from(input as ArrayLike<number>);
  }
  labels.forEach((v, i) => {
    if (!Number.isInteger(v)) throw new MedimgError(op, `${name}[${i}] = ${v} is not an integer class index`);
    if (v < 0 || (numClasses !== undefined && v >= numClasses)) {
      throw new MedimgError(op, `${name}[${i}] = ${v} is outside [0, ${numClasses ?? 'numClasses'})`);
    }
  });
  return labels;
}

/** Converts probabilities to rows of numbers; rejects NaN and ragged rows. */
export function toProbabilities(op: string, input: ProbabilityInput): number[][] {
  let rows: number[][];
  if (input instanceof tf.Tensor) {
    check(
      input.rank === 2,
      op,
      `probabilities must be a rank-2 tensor (N x numClasses), got rank ${input.rank}`,
    );
    rows = input.arraySync() as number[][];
  } else {
    check(Array.isArray(input), op, 'probabilities must be an array of rows or a rank-2 tensor');
    rows = input.map((r) => Array.from(r));
  }
  const width = rows[0]?.length ?? 0;
  rows.forEach((row, i) => {
    check(row.length === width, op, `probabilities row ${i} has ${row.length} values, expected ${width}`);
    row.forEach((v, j) =>
      check(Number.isFinite(v), op, `probabilities[${i}][${j}] is ${v} (NaN or infinite)`),
    );
  });
  return rows;
}

export function argmax(row: readonly number[]): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if ((row[j] as number) > (row[best] as number)) best = j;
  return best;
}

/** Checks paired label arrays: same length, not empty. */
export function checkPaired(op: string, yTrue: readonly unknown[], yPred: readonly unknown[]): void {
  check(yTrue.length > 0, op, 'empty input: no samples to evaluate');
  check(
    yTrue.length === yPred.length,
    op,
    `yTrue has ${yTrue.length} samples but the predictions have ${yPred.length}`,
  );
}

/** Infers the number of classes as max label + 1 when not given. */
export function inferNumClasses(op: string, given: number | undefined, ...lists: number[][]): number {
  if (given !== undefined) {
    check(Number.isInteger(given) && given > 0, op, `numClasses must be a positive integer, got ${given}`);
    return given;
  }
  let max = -1;
  for (const list of lists) for (const v of list) if (v > max) max = v;
  return max + 1;
}

/**
 * Reads paired labels and class probabilities for the review metrics: same length, not empty,
 * at least two classes, every probability in [0, 1], every label a class index.
 */
export function readCases(
  op: string,
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
): { labels: number[]; probs: number[][]; numClasses: number } {
  const probs = toProbabilities(op, probabilities);
  const numClasses = probs[0]?.length ?? 0;
  const labels = toLabels(op, 'yTrue', yTrue, numClasses || undefined);
  checkPaired(op, labels, probs);
  check(numClasses >= 2, op, `probabilities need at least 2 classes, got ${numClasses}`);
  checkUnitInterval(op, probs);
  return { labels, probs, numClasses };
}

/** Rejects probabilities outside [0, 1] (logits passed where probabilities were expected). */
export function checkUnitInterval(op: string, probs: readonly (readonly number[])[]): void {
  probs.forEach((row, i) =>
    row.forEach((v, j) =>
      check(
        v >= 0 && v <= 1,
        op,
        () => `probabilities[${i}][${j}] = ${v} is outside [0, 1] (logits instead of probabilities?)`,
      ),
    ),
  );
}

/** Checks that `value` is a class index in [0, numClasses) and returns it. */
export function checkClassIndex(op: string, name: string, value: unknown, numClasses: number): number {
  check(
    Number.isInteger(value) && (value as number) >= 0,
    op,
    () => `${name} must be a class index, got ${String(value)}`,
  );
  check(
    (value as number) < numClasses,
    op,
    () =>
      `${name} ${String(value)} is outside [0, ${numClasses}) (the probabilities have ${numClasses} classes)`,
  );
  return value as number;
}
