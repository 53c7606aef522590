import { check, MedimgError } from '../util/errors.js';
import { checkPaired, type LabelInput, type ProbabilityInput, toLabels, toProbabilities } from './inputs.js';

/**
 * Area under the ROC curve of a binary problem, by the rank-sum (Mann-Whitney) formula with
 * ties counted half, which equals scikit-learn's trapezoidal AUC. NaN if one class is absent.
 */
export function binaryAuc(positive: readonly boolean[], scores: readonly number[]): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = avg;
    i = j + 1;
  }
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; i++) {
    if (positive[i]) {
      nPos++;
      rankSum += ranks[i] as number;
    }
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * The ROC walk shared by {@link rocCurve} and the operating-point search: cases by decreasing
 * score, one point per distinct score (tied scores are called together), with the counts of
 * positives (`tp`) and negatives (`fp`) at or above it.
 */
export function* rocPoints(
  positive: readonly boolean[],
  scores: readonly number[],
): Generator<{ threshold: number; tp: number; fp: number }> {
  const order = Array.from(scores.keys()).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    const idx = order[i] as number;
    if (positive[idx]) tp++;
    else fp++;
    const next = order[i + 1];
    if (next === undefined || scores[next] !== scores[idx])
      yield { threshold: scores[idx] as number, tp, fp };
  }
}

/** ROC curve points of a binary problem (scikit-learn's `roc_curve` with `drop_intermediate=False`). */
export function rocCurve(
  positive: readonly boolean[],
  scores: readonly number[],
): { fpr: number[]; tpr: number[]; thresholds: number[] } {
  const nPos = positive.filter(Boolean).length;
  const nNeg = positive.length - nPos;
  check(nPos > 0 && nNeg > 0, 'rocCurve', 'needs both positive and negative samples');
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Number.POSITIVE_INFINITY];
  for (const { threshold, tp, fp } of rocPoints(positive, scores)) {
    fpr.push(fp / nNeg);
    tpr.push(tp / nPos);
    thresholds.push(threshold);
  }
  return { fpr, tpr, thresholds };
}

export type RocAverage = 'macro' | 'weighted' | 'none';

/**
 * One-vs-rest ROC-AUC of a multi-class classifier from its class probabilities, as
 * scikit-learn's `roc_auc_score(multi_class='ovr')`. `average: 'none'` returns one AUC per
 * class (NaN for a class absent from `yTrue`); averaging over an absent class throws.
 */
export function rocAuc(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { average: 'none' },
): number[];
export function rocAuc(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options?: { average?: 'macro' | 'weighted'; absentClasses?: 'throw' | 'skip' },
): number;
export function rocAuc(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { average?: RocAverage; absentClasses?: 'throw' | 'skip' } = {},
): number | number[] {
  const op = 'rocAuc';
  const average = options.average ?? 'macro';
  check(
    ['macro', 'weighted', 'none'].includes(average),
    op,
    `average must be 'macro', 'weighted' or 'none', got ${average}`,
  );
  const probs = toProbabilities(op, probabilities);
  const n = probs[0]?.length ?? 0;
  const t = toLabels(op, 'yTrue', yTrue, n);
  checkPaired(op, t, probs);
  check(n >= 2, op, 'probabilities need at least 2 classes');
  const perClass = Array.from({ length: n }, (_, k) =>
    binaryAuc(
      t.map((y) => y === k),
      probs.map((row) => row[k] as number),
    ),
  );
  if (average === 'none') return perClass;
  const absent = perClass.flatMap((v, k) => (Number.isNaN(v) ? [k] : []));
  if (absent.length && options.absentClasses === 'skip') {
    // Average over the classes that have samples (NaN when none has).
    const present = perClass.flatMap((v, k) => (Number.isNaN(v) ? [] : [k]));
    if (!present.length) return Number.NaN;
    if (average === 'macro') return present.reduce((a, k) => a + (perClass[k] as number), 0) / present.length;
    const counts = present.map((k) => t.filter((y) => y === k).length);
    const total = counts.reduce((a, b) => a + b, 0);
    return present.reduce((a, k, i) => a + (perClass[k] as number) * (counts[i] as number), 0) / total;
  }
  if (absent.length) {
    throw new MedimgError(
      op,
      `ROC-AUC is undefined for class ${absent.join(', ')}: ${absent.length > 1 ? 'they have' : 'it has'} no samples in yTrue (use average: 'none')`,
    );
  }
  if (average === 'macro') return perClass.reduce((a, b) => a + b, 0) / n;
  const counts = perClass.map((_, k) => t.filter((y) => y === k).length);
  return perClass.reduce((a, v, k) => a + v * (counts[k] as number), 0) / t.length;
}
