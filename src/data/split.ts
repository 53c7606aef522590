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
  const byLabel = unitsByLabel(samples, together);
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
 * Units of splitting per label: groups of duplicates (samples sharing a hash) when `together`,
 * else single samples; a group goes with the label of its first sample.
 */
function unitsByLabel<S extends LabeledSample>(samples: readonly S[], together: boolean): Map<number, S[][]> {
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
  return byLabel;
}

/**
 * Stratified k-fold cross-validation (scikit-learn's `StratifiedKFold` with shuffling): every
 * sample is in the validation part of exactly one fold, each class is spread evenly over the
 * folds, and duplicates (same `hash`) stay in one fold. For small sets such as BUSI (624 images),
 * where one split's score varies by several points, report the mean and spread over the folds.
 *
 * @example
 * for (const [k, { train, validation }] of stratifiedKFold(samples, { folds: 5, seed: 1 }).entries()) { ... }
 */
export function stratifiedKFold<S extends LabeledSample>(
  samples: readonly S[],
  options: { folds: number; seed: number; keepDuplicatesTogether?: boolean },
): { train: S[]; validation: S[] }[] {
  const op = 'stratifiedKFold';
  const k = options?.folds;
  check(Number.isInteger(k) && k >= 2, op, `folds must be an integer >= 2, got ${String(k)}`);
  check(Number.isInteger(options.seed), op, `seed must be an integer, got ${String(options.seed)}`);
  check(samples.length >= k, op, `${samples.length} samples cannot fill ${k} folds`);
  const rng = new Random(options.seed);
  const byLabel = unitsByLabel(samples, options.keepDuplicatesTogether ?? true);
  const folds: S[][] = Array.from({ length: k }, () => []);
  const sizes = new Array<number>(k).fill(0);
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const perFold = new Array<number>(k).fill(0);
    // Largest duplicate groups first, then each unit to the fold with the fewest of this class
    // (ties: the fewest samples overall, then the lowest index).
    const units = rng.shuffle(byLabel.get(label) as S[][]).sort((a, b) => b.length - a.length);
    for (const unit of units) {
      let best = 0;
      for (let f = 1; f < k; f++)
        if (
          (perFold[f] as number) < (perFold[best] as number) ||
          (perFold[f] === perFold[best] && (sizes[f] as number) < (sizes[best] as number))
        )
          best = f;
      (folds[best] as S[]).push(...unit);
      perFold[best] = (perFold[best] as number) + unit.length;
      sizes[best] = (sizes[best] as number) + unit.length;
    }
  }
  return folds.map((validation, f) => ({
    train: folds.filter((_, g) => g !== f).flat(),
    validation,
  }));
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

/**
 * Keeps a held-out test set held out: drops every test sample whose content (hash) also occurs
 * in `training` (the training and validation files), and returns what was dropped with its
 * matches, so that the score is on images the model has never seen. The Kaggle brain-MRI
 * release has 103 such files in its Testing folder.
 *
 * @example
 * const test = await hashSamples((await imageFolder('Testing', { classNames })).samples);
 * const { kept, dropped } = withoutLeaks(test, [...train, ...validation]);
 * console.log(`${dropped.length} test files duplicate training files and are not scored`);
 */
export function withoutLeaks<S extends LabeledSample>(
  test: readonly S[],
  training: readonly LabeledSample[],
): { kept: S[]; dropped: { sample: S; matches: LabeledSample[] }[] } {
  const dropped = findLeaks(test, training);
  const leaked = new Set(dropped.map((d) => d.sample));
  return { kept: test.filter((s) => !leaked.has(s)), dropped };
}
