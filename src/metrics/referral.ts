import { check, checkNumber } from '../util/errors.js';
import {
  argmax,
  checkUnitInterval,
  type LabelInput,
  type ProbabilityInput,
  readCases,
  toProbabilities,
} from './inputs.js';

/*
 * Uncertainty you can act on: the model keeps the cases it is sure of and refers the others to a
 * human reader. A coverage-accuracy curve shows, for every cut-off, how many cases the model keeps
 * and how accurate it is on them.
 */

/**
 * How a case's certainty is measured: its largest class probability (keep when >= threshold) or
 * the entropy of its probabilities in nats, -sum p ln p with 0 ln 0 = 0 (keep when <= threshold).
 */
export type ReferralBy = 'maxProbability' | 'entropy';

/** What {@link coverageAccuracy} returns: one point per distinct certainty value. */
export interface CoverageCurve {
  by: ReferralBy;
  /**
   * Cut-offs from the most to the least certain: descending max probabilities, or ascending
   * entropies. Point i keeps the cases with maxProbability >= thresholds[i] (entropy <=
   * thresholds[i]) and refers the rest.
   */
  thresholds: number[];
  /** Fraction of cases kept at each cut-off; ends at 1. */
  coverage: number[];
  /** Accuracy (argmax right) on the kept cases. */
  accuracy: number[];
  /** Number of cases kept. */
  kept: number[];
}

/** What {@link referralThreshold} returns. */
export interface ReferralPoint {
  by: ReferralBy;
  /**
   * The cut-off: keep cases with maxProbability >= threshold (entropy <= threshold). Infinity
   * (-Infinity for entropy) when no cut-off reaches the target: refer every case.
   */
  threshold: number;
  coverage: number;
  /** Accuracy on the kept cases; NaN when none are kept. */
  accuracy: number;
  kept: number;
  /** Cases referred to a human reader. */
  referred: number;
}

function checkBy(op: string, by: unknown): ReferralBy {
  check(
    by === 'maxProbability' || by === 'entropy',
    op,
    () => `by must be 'maxProbability' or 'entropy', got ${String(by)}`,
  );
  return by;
}

function scoresOf(probs: readonly (readonly number[])[], by: ReferralBy): number[] {
  if (by === 'maxProbability') return probs.map((row) => row[argmax(row)] as number);
  // Summed in ascending order of p, so that the same probabilities in another order (another
  // class) give exactly the same entropy and tie.
  return probs.map((row) => {
    let sum = 0;
    for (const p of [...row].sort((a, b) => a - b)) if (p > 0) sum += p * Math.log(p);
    return 0 - sum;
  });
}

/**
 * The value each case's certainty is judged by: its largest probability (`'maxProbability'`) or
 * the entropy of its probabilities in nats (`'entropy'`, higher = less certain).
 *
 * @example
 * referralScores([[0.5, 0.5], [1, 0]], 'entropy'); // [0.6931471805599453, 0]
 */
export function referralScores(probabilities: ProbabilityInput, by: ReferralBy = 'maxProbability'): number[] {
  const op = 'referralScores';
  checkBy(op, by);
  const probs = toProbabilities(op, probabilities);
  checkUnitInterval(op, probs);
  return scoresOf(probs, by);
}

/**
 * The coverage-accuracy curve of referring uncertain cases to a human: for every distinct
 * certainty value, from the most certain down, the fraction of cases the model keeps (those at
 * least that certain; tied cases are kept or referred together) and its accuracy on them.
 * A model whose uncertainty means something has accuracy falling as coverage rises.
 *
 * @example
 * const { coverage, accuracy } = coverageAccuracy(yTrue, probabilities, { by: 'entropy' });
 */
export function coverageAccuracy(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { by?: ReferralBy } = {},
): CoverageCurve {
  const op = 'coverageAccuracy';
  const by = checkBy(op, options?.by ?? 'maxProbability');
  const { labels, probs } = readCases(op, yTrue, probabilities);
  const scores = scoresOf(probs, by);
  const sign = by === 'maxProbability' ? -1 : 1;
  const order = Array.from(scores.keys()).sort(
    (a, b) => sign * ((scores[a] as number) - (scores[b] as number)),
  );
  const n = labels.length;
  const curve: CoverageCurve = { by, thresholds: [], coverage: [], accuracy: [], kept: [] };
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const idx = order[i] as number;
    if (argmax(probs[idx] as number[]) === labels[idx]) correct++;
    const next = order[i + 1];
    if (next === undefined || scores[next] !== scores[idx]) {
      curve.thresholds.push(scores[idx] as number);
      curve.coverage.push((i + 1) / n);
      curve.accuracy.push(correct / (i + 1));
      curve.kept.push(i + 1);
    }
  }
  return curve;
}

/**
 * The referral cut-off that keeps the most cases while the model's accuracy on the kept cases
 * is >= `targetAccuracy` (the largest-coverage point of {@link coverageAccuracy} that reaches it;
 * accuracy need not fall monotonically, so a less certain cut-off can qualify where a more
 * certain one does not). Choose it on validation data and apply it frozen with
 * {@link referCases}.
 *
 * @example
 * const r = referralThreshold(valTrue, valProbs, { targetAccuracy: 0.95 });
 * console.log(`keeps ${(100 * r.coverage).toFixed(0)}% of cases, refers ${r.referred}`);
 */
export function referralThreshold(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { targetAccuracy: number; by?: ReferralBy },
): ReferralPoint {
  const op = 'referralThreshold';
  const target = checkNumber(options?.targetAccuracy, op, 'targetAccuracy', {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const by = checkBy(op, options.by ?? 'maxProbability');
  const curve = coverageAccuracy(yTrue, probabilities, { by });
  const n = curve.kept[curve.kept.length - 1] as number;
  for (let i = curve.thresholds.length - 1; i >= 0; i--) {
    if ((curve.accuracy[i] as number) >= target) {
      const kept = curve.kept[i] as number;
      return {
        by,
        threshold: curve.thresholds[i] as number,
        coverage: curve.coverage[i] as number,
        accuracy: curve.accuracy[i] as number,
        kept,
        referred: n - kept,
      };
    }
  }
  return {
    by,
    threshold: by === 'maxProbability' ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY,
    coverage: 0,
    accuracy: Number.NaN,
    kept: 0,
    referred: n,
  };
}

/**
 * Indices (ascending) of the cases to refer to a human under a frozen cut-off: max probability
 * below `threshold`, or entropy above it.
 *
 * @example
 * referCases(testProbs, { threshold: 0.93 }); // [4, 17, ...]
 */
export function referCases(
  probabilities: ProbabilityInput,
  options: { threshold: number; by?: ReferralBy },
): number[] {
  const op = 'referCases';
  const threshold = options?.threshold;
  check(
    typeof threshold === 'number' && !Number.isNaN(threshold),
    op,
    () => `threshold must be a number, got ${String(threshold)}`,
  );
  const by = checkBy(op, options.by ?? 'maxProbability');
  const probs = toProbabilities(op, probabilities);
  checkUnitInterval(op, probs);
  const scores = scoresOf(probs, by);
  return scores.flatMap((s, i) => ((by === 'maxProbability' ? s < threshold : s > threshold) ? [i] : []));
}
