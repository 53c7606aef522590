import { check, checkNumber } from '../util/errors.js';
import { Random } from '../util/random.js';
import { checkPaired, inferNumClasses, type LabelInput, type ProbabilityInput, toLabels } from './inputs.js';

/** A point estimate with a confidence interval. */
export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}

export interface BootstrapOptions {
  /** Resamples. Default 1000. */
  iterations?: number;
  /** Confidence level. Default 0.95. */
  confidence?: number;
  seed: number;
  numClasses?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  // Linear interpolation between closest ranks (NumPy's default).
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/**
 * Percentile-bootstrap confidence intervals for accuracy and per-class recall (sensitivity),
 * resampling cases with replacement from a seeded generator. Classes with no cases get NaN.
 *
 * @example
 * const ci = bootstrapConfidence(yTrue, yPred, { seed: 1 });
 * console.log(`accuracy ${ci.accuracy.estimate} (95% CI ${ci.accuracy.lower}-${ci.accuracy.upper})`);
 */
export function bootstrapConfidence(
  yTrue: LabelInput,
  yPred: LabelInput | ProbabilityInput,
  options: BootstrapOptions,
): { accuracy: Interval; recall: Interval[] } {
  const op = 'bootstrapConfidence';
  const iterations = checkNumber(options?.iterations ?? 1000, op, 'iterations', { integer: true, min: 10 });
  const confidence = checkNumber(options.confidence ?? 0.95, op, 'confidence', {
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
  });
  check(Number.isInteger(options.seed), op, `seed must be an integer, got ${String(options.seed)}`);
  const t = toLabels(op, 'yTrue', yTrue, options.numClasses);
  const p = toLabels(op, 'yPred', yPred, options.numClasses);
  checkPaired(op, t, p);
  const n = inferNumClasses(op, options.numClasses, t, p);
  const rng = new Random(options.seed);
  const size = t.length;
  const accs = new Float64Array(iterations);
  const recalls = Array.from({ length: n }, () => [] as number[]);
  const hits = new Float64Array(n);
  const totals = new Float64Array(n);
  for (let b = 0; b < iterations; b++) {
    hits.fill(0);
    totals.fill(0);
    let correct = 0;
    for (let i = 0; i < size; i++) {
      const j = rng.int(0, size);
      const y = t[j] as number;
      const ok = y === p[j];
      if (ok) correct++;
      totals[y]! += 1;
      if (ok) hits[y]! += 1;
    }
    accs[b] = correct / size;
    for (let k = 0; k < n; k++)
      if ((totals[k] as number) > 0) recalls[k]!.push((hits[k] as number) / (totals[k] as number));
  }
  const alpha = (1 - confidence) / 2;
  const interval = (estimate: number, samples: Float64Array): Interval => {
    if (samples.length === 0) return { estimate, lower: Number.NaN, upper: Number.NaN };
    samples.sort();
    return { estimate, lower: percentile(samples, alpha), upper: percentile(samples, 1 - alpha) };
  };
  const accuracy = t.filter((y, i) => y === p[i]).length / size;
  const recall = recalls.map((samples, k) => {
    const of = t.filter((y) => y === k).length;
    const est = of ? t.filter((y, i) => y === k && p[i] === k).length / of : Number.NaN;
    return interval(est, Float64Array.from(samples));
  });
  return { accuracy: interval(accuracy, accs), recall };
}
