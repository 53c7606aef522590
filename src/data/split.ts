import { check, MedimgError } from '../util/errors.js';
import { Random } from '../util/random.js';

/** The least a sample needs for splitting: a label, and optionally a content hash and a path. */
export interface LabeledSample {
  label: number;
  /** Content hash; samples with the same hash are duplicates (see `findDuplicates`). */
  hash?: string;
  path?: string;
}

/**
 * Splits samples into train and validation sets per class (stratified), with a seeded shuffle.
 * With `keepDuplicatesTogether` (default), samples sharing a `hash` always land in the same
 * split, so an image and its copy never leak across it.
 *
 * @example
 * const { train, validation } = stratifiedSplit(dataset.samples, { validation: 0.2, seed: 42 });
 */
export function stratifiedSplit<S extends LabeledSample>(
  samples: readonly S[],
  options: { validation: number; seed: number; keepDuplicatesTogether?: boolean },
): { train: S[]; validation: S[] } {
  const op = 'stratifiedSplit';
  const fraction = options?.validation;
  check(
    typeof fraction === 'number' && fraction > 0 && fraction < 1,
    op,
    `validation must be a fraction in (0, 1), got ${String(fraction)}`,
  );
  check(Number.isInteger(options.seed), op, `seed must be an integer, got ${String(options.seed)}`);
  check(samples.length > 0, op, 'no samples to split');
  const together = options.keepDuplicatesTogether ?? true;
  const rng = new Random(options.seed);
  // Units are groups of duplicates (or single samples), split per label.
  const groups = new Map<string, S[]>();
  samples.forEach((s, i) => {
    const key = together && s.hash ? `h:${s.hash}` : `i:${i}`;
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  });
  const byLabel = new Map<number, S[][]>();
  for (const g of groups.values()) {
    const label = (g[0] as S).label;
    const list = byLabel.get(label) ?? [];
    list.push(g);
    byLabel.set(label, list);
  }
  const train: S[] = [];
  const validation: S[] = [];
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const units = rng.shuffle(byLabel.get(label) as S[][]);
    const total = units.reduce((a, u) => a + u.length, 0);
    const target = Math.round(total * fraction);
    let taken = 0;
    for (const unit of units) {
      if (taken < target && (taken + unit.length <= target || taken === 0)) {
        validation.push(...unit);
        taken += unit.length;
      } else train.push(...unit);
    }
  }
  return { train, validation };
}

/**
 * Class weights inversely proportional to class frequency, `n / (k * count)` (scikit-learn's
 * "balanced"), for imbalanced sets such as BUSI (350 / 168 / 106).
 */
export function classWeights(samples: readonly LabeledSample[], numClasses?: number): number[] {
  check(samples.length > 0, 'classWeights', 'no samples');
  const k = numClasses ?? Math.max(...samples.map((s) => s.label)) + 1;
  const counts = new Array<number>(k).fill(0);
  for (const s of samples) counts[s.label]! += 1;
  return counts.map((c) => (c === 0 ? 0 : samples.length / (k * c)));
}

/** Samples of `a` whose content also occurs in `b` (by hash), e.g. train images in the test set. */
export function findLeaks<S extends LabeledSample>(
  a: readonly S[],
  b: readonly LabeledSample[],
): { sample: S; matches: LabeledSample[] }[] {
  const index = new Map<string, LabeledSample[]>();
  for (const s of b) {
    if (!s.hash)
      throw new MedimgError(
        'findLeaks',
        `sample ${s.path ?? ''} has no hash: run findDuplicates or hashSamples first`,
      );
    const list = index.get(s.hash) ?? [];
    list.push(s);
    index.set(s.hash, list);
  }
  const out: { sample: S; matches: LabeledSample[] }[] = [];
  for (const s of a) {
    if (!s.hash)
      throw new MedimgError(
        'findLeaks',
        `sample ${s.path ?? ''} has no hash: run findDuplicates or hashSamples first`,
      );
    const m = index.get(s.hash);
    if (m) out.push({ sample: s, matches: m });
  }
  return out;
}
