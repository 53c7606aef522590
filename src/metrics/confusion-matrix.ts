import { check } from '../util/errors.js';
import { checkPaired, type LabelInput, type ProbabilityInput, toLabels } from './inputs.js';

/**
 * Confusion matrix with rows = true class and columns = predicted class (scikit-learn's
 * layout). Predictions may be labels or probabilities (argmax taken).
 *
 * @example
 * confusionMatrix([0, 1, 1], [0, 1, 0], { numClasses: 2 }); // [[1, 0], [1, 1]]
 */
export function confusionMatrix(
  yTrue: LabelInput,
  yPred: LabelInput | ProbabilityInput,
  options: { numClasses: number },
): number[][] {
  const op = 'confusionMatrix';
  const n = options?.numClasses;
  check(Number.isInteger(n) && n > 0, op, `numClasses must be a positive integer, got ${String(n)}`);
  const t = toLabels(op, 'yTrue', yTrue, n);
  const p = toLabels(op, 'yPred', yPred, n);
  checkPaired(op, t, p);
  const m = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < t.length; i++) (m[t[i] as number] as number[])[p[i] as number]! += 1;
  return m;
}
