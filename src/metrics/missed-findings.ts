import { check } from '../util/errors.js';
import { checkPaired, type LabelInput, type ProbabilityInput, toLabels } from './inputs.js';

/** What {@link missedFindings} returns. */
export interface MissedFindings {
  /** Abnormal cases (true class != normal) predicted as the normal class. */
  count: number;
  /** Number of abnormal cases. */
  abnormal: number;
  /** count / abnormal (0 when there are no abnormal cases). */
  rate: number;
  /** Per abnormal true class: how many of its cases were called normal. */
  perClass: { trueClass: number; className?: string; count: number; of: number }[];
  /** Sample indices of the missed findings, in order. */
  indices: number[];
}

/**
 * Counts abnormal cases that the classifier called normal: in a screening setting the costliest
 * error (the brain-MRI project's key figure was "no tumour predicted as normal").
 *
 * @example
 * missedFindings(yTrue, yPred, { normalClass: 2, classNames }); // { count: 0, abnormal: 918, ... }
 */
export function missedFindings(
  yTrue: LabelInput,
  yPred: LabelInput | ProbabilityInput,
  options: { normalClass: number; classNames?: readonly string[]; numClasses?: number },
): MissedFindings {
  const op = 'missedFindings';
  const normal = options?.normalClass;
  check(
    Number.isInteger(normal) && normal >= 0,
    op,
    `normalClass must be a class index, got ${String(normal)}`,
  );
  const n = options.numClasses ?? options.classNames?.length;
  check(n === undefined || normal < n, op, `normalClass ${normal} is outside [0, ${n})`);
  const t = toLabels(op, 'yTrue', yTrue, n);
  const p = toLabels(op, 'yPred', yPred, n);
  checkPaired(op, t, p);
  const classes = [...new Set(t)].filter((k) => k !== normal).sort((a, b) => a - b);
  const indices: number[] = [];
  t.forEach((y, i) => {
    if (y !== normal && p[i] === normal) indices.push(i);
  });
  const abnormal = t.filter((y) => y !== normal).length;
  const perClass = classes.map((k) => ({
    trueClass: k,
    ...(options.classNames ? { className: options.classNames[k] as string } : {}),
    count: indices.filter((i) => t[i] === k).length,
    of: t.filter((y) => y === k).length,
  }));
  return {
    count: indices.length,
    abnormal,
    rate: abnormal ? indices.length / abnormal : 0,
    perClass,
    indices,
  };
}
