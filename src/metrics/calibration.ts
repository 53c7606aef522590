import { check, checkNumber } from '../util/errors.js';
import {
  argmax,
  checkPaired,
  checkUnitInterval,
  type LabelInput,
  type ProbabilityInput,
  readCases,
  toLabels,
  toProbabilities,
} from './inputs.js';

/** One bin of a reliability diagram. */
export interface ReliabilityBin {
  /** Lower edge (exclusive, except 0 for the first bin). */
  lower: number;
  /** Upper edge (inclusive). */
  upper: number;
  /** Cases whose confidence falls in the bin. */
  count: number;
  /** Fraction of those cases whose argmax class is right (NaN for an empty bin). */
  accuracy: number;
  /** Mean confidence (max probability) of those cases (NaN for an empty bin). */
  confidence: number;
}

function binCount(op: string, options: { bins?: number } | undefined): number {
  return checkNumber(options?.bins ?? 15, op, 'bins', { integer: true, min: 1 });
}

/**
 * Bin edges as NumPy's `linspace(0, 1, bins + 1)`: edge i is i * (1 / bins), the last exactly 1.
 */
function binEdges(bins: number): number[] {
  const step = 1 / bins;
  return Array.from({ length: bins + 1 }, (_, i) => (i === bins ? 1 : i * step));
}

function reliability(op: string, yTrue: LabelInput, probabilities: ProbabilityInput, bins: number) {
  const { labels, probs } = readCases(op, yTrue, probabilities);
  const edges = binEdges(bins);
  const count = new Float64Array(bins);
  const correct = new Float64Array(bins);
  const confSum = new Float64Array(bins);
  probs.forEach((row, i) => {
    const pred = argmax(row);
    const conf = row[pred] as number;
    // Bin (edges[b], edges[b + 1]]; a confidence of exactly 0 goes to the first bin.
    let b = Math.min(bins - 1, Math.max(0, Math.ceil(conf * bins) - 1));
    while (b > 0 && conf <= (edges[b] as number)) b--;
    while (b < bins - 1 && conf > (edges[b + 1] as number)) b++;
    count[b]! += 1;
    confSum[b]! += conf;
    if (pred === labels[i]) correct[b]! += 1;
  });
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const n = count[b] as number;
    out.push({
      lower: edges[b] as number,
      upper: edges[b + 1] as number,
      count: n,
      accuracy: n ? (correct[b] as number) / n : Number.NaN,
      confidence: n ? (confSum[b] as number) / n : Number.NaN,
    });
  }
  return { bins: out, total: labels.length };
}

/**
 * Reliability-diagram bins: the cases grouped by confidence (their largest class probability)
 * into `bins` equal-width bins over [0, 1], with each bin's accuracy (argmax right) and mean
 * confidence. Bin i holds confidences in (i/bins, (i+1)/bins], the first bin also 0, with the
 * edges computed as NumPy's `linspace(0, 1, bins + 1)` (Guo et al. 2017's convention).
 * A calibrated model has accuracy = confidence in every bin.
 *
 * @example
 * reliabilityBins(yTrue, probabilities, { bins: 10 }).filter((b) => b.count > 0);
 */
export function reliabilityBins(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { bins?: number } = {},
): ReliabilityBin[] {
  const op = 'reliabilityBins';
  return reliability(op, yTrue, probabilities, binCount(op, options)).bins;
}

/**
 * Expected calibration error (Guo et al. 2017): the mean, weighted by the fraction of cases in
 * each bin, of |accuracy - mean confidence| over the {@link reliabilityBins} (default 15 bins);
 * empty bins count zero. 0 for a perfectly calibrated model; in [0, 1].
 *
 * @example
 * expectedCalibrationError(yTrue, probabilities); // e.g. 0.224 for an overconfident model
 */
export function expectedCalibrationError(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { bins?: number } = {},
): number {
  const op = 'expectedCalibrationError';
  const { bins, total } = reliability(op, yTrue, probabilities, binCount(op, options));
  let ece = 0;
  for (const b of bins) if (b.count) ece += (Math.abs(b.accuracy - b.confidence) * b.count) / total;
  return ece;
}

/** How {@link fitTemperature} and {@link applyTemperature} read their scores. */
export type ScoreKind = 'probabilities' | 'logits';

/** Options of {@link fitTemperature}. */
export interface TemperatureOptions {
  /** What the scores are. Default 'probabilities' (their logarithms are used as logits). */
  input?: ScoreKind;
  /** Probabilities are clipped to at least this before the logarithm. Default 1e-12. */
  epsilon?: number;
  /** Search range of the temperature. Default [0.01, 100]. */
  minTemperature?: number;
  maxTemperature?: number;
  /** Stops when a step changes 1/T by less than tolerance * (1/T). Default 1e-12. */
  tolerance?: number;
  /** Default 100. */
  maxIterations?: number;
}

/** What {@link fitTemperature} returns. */
export interface TemperatureFit {
  /** The fitted temperature T: divide the logits by it. */
  temperature: number;
  /** Mean negative log-likelihood at T = 1. */
  nllBefore: number;
  /** Mean negative log-likelihood at the fitted T. */
  nllAfter: number;
  /** Newton / bisection steps taken (typically 4-7). */
  iterations: number;
  /** True when the optimum lies at (or beyond) minTemperature or maxTemperature. */
  atBound: boolean;
  /** True when the step tolerance was reached (or the optimum is at a bound). */
  converged: boolean;
}

function toLogits(op: string, scores: ProbabilityInput, input: ScoreKind, epsilon: number): number[][] {
  const rows = toProbabilities(op, scores);
  if (input === 'logits') return rows;
  checkUnitInterval(op, rows);
  return rows.map((row) => row.map((p) => Math.log(Math.max(p, epsilon))));
}

function checkInput(op: string, input: unknown): ScoreKind {
  check(
    input === 'probabilities' || input === 'logits',
    op,
    () => `input must be 'probabilities' or 'logits', got ${String(input)}`,
  );
  return input;
}

/**
 * Mean NLL of softmax(s * z) and its first two derivatives in s = 1/T. The NLL is convex in s:
 * d/ds = mean(E[z] - z_y), d2/ds2 = mean(Var[z]) under softmax(s * z).
 */
function nllAndDerivatives(logits: readonly (readonly number[])[], labels: readonly number[], s: number) {
  let f = 0;
  let g = 0;
  let h = 0;
  const k = logits[0]?.length ?? 0;
  const w = new Float64Array(k);
  logits.forEach((z, i) => {
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) m = Math.max(m, s * (z[j] as number));
    let sum = 0;
    for (let j = 0; j < k; j++) {
      w[j] = Math.exp(s * (z[j] as number) - m);
      sum += w[j] as number;
    }
    let mean = 0;
    for (let j = 0; j < k; j++) mean += ((w[j] as number) / sum) * (z[j] as number);
    let variance = 0;
    for (let j = 0; j < k; j++) variance += ((w[j] as number) / sum) * ((z[j] as number) - mean) ** 2;
    const zy = z[labels[i] as number] as number;
    f += m + Math.log(sum) - s * zy;
    g += mean - zy;
    h += variance;
  });
  const n = logits.length;
  return { f: f / n, g: g / n, h: h / n };
}

/**
 * Temperature scaling (Guo et al. 2017): the single T > 0 that minimises the mean negative
 * log-likelihood of softmax(logits / T) on held-out (validation) data; apply it, frozen, to the
 * test data with {@link applyTemperature}. T > 1 softens an overconfident model, T < 1 sharpens an
 * underconfident one; the argmax, hence accuracy, never changes.
 *
 * From probabilities (the default) the logits are log(max(p, epsilon)): softmax(log p / T) is
 * the same as dividing the model's logits by T. The NLL is convex in 1/T, so the fit is a
 * safeguarded Newton iteration on 1/T (bisection when a step leaves the bracket), in float64,
 * without tfjs. It agrees with PyTorch's LBFGS on log T to ~1e-9.
 *
 * @example
 * const { temperature } = fitTemperature(valTrue, valProbs);
 * const calibrated = applyTemperature(testProbs, temperature);
 */
export function fitTemperature(
  yTrue: LabelInput,
  scores: ProbabilityInput,
  options: TemperatureOptions = {},
): TemperatureFit {
  const op = 'fitTemperature';
  const input = checkInput(op, options.input ?? 'probabilities');
  const epsilon = checkNumber(options.epsilon ?? 1e-12, op, 'epsilon', {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const minT = checkNumber(options.minTemperature ?? 0.01, op, 'minTemperature', {
    min: 0,
    minExclusive: true,
  });
  const maxT = checkNumber(options.maxTemperature ?? 100, op, 'maxTemperature', {
    min: minT,
    minExclusive: true,
  });
  const tolerance = checkNumber(options.tolerance ?? 1e-12, op, 'tolerance', { min: 0, minExclusive: true });
  const maxIterations = checkNumber(options.maxIterations ?? 100, op, 'maxIterations', {
    integer: true,
    min: 1,
  });
  const logits = toLogits(op, scores, input, epsilon);
  const numClasses = logits[0]?.length ?? 0;
  const labels = toLabels(op, 'yTrue', yTrue, numClasses || undefined);
  checkPaired(op, labels, logits);
  check(numClasses >= 2, op, `scores need at least 2 classes, got ${numClasses}`);

  const at = (s: number) => nllAndDerivatives(logits, labels, s);
  const nllBefore = at(1).f;
  const done = (s: number, iterations: number, atBound: boolean, converged: boolean): TemperatureFit => ({
    temperature: 1 / s,
    nllBefore,
    nllAfter: at(s).f,
    iterations,
    atBound,
    converged,
  });
  // Bracket in s = 1/T; the derivative increases with s.
  let lo = 1 / maxT;
  let hi = 1 / minT;
  if (at(lo).g >= 0) return done(lo, 0, true, true);
  if (at(hi).g <= 0) return done(hi, 0, true, true);
  let s = Math.min(Math.max(1, lo), hi);
  for (let it = 1; it <= maxIterations; it++) {
    const { g, h } = at(s);
    if (g === 0) return done(s, it, false, true);
    if (g < 0) lo = s;
    else hi = s;
    const newton = h > 0 ? s - g / h : Number.NaN;
    // Converged when the Newton step is negligible (it may then not even move s off the bracket end).
    if (Math.abs(newton - s) <= tolerance * s)
      return done(Math.min(Math.max(newton, lo), hi), it, false, true);
    // Otherwise Newton inside the bracket, else bisect it (geometrically: s spans decades).
    s = newton > lo && newton < hi ? newton : Math.sqrt(lo * hi);
    if (hi - lo <= tolerance * s) return done(s, it, false, true);
  }
  return done(s, maxIterations, false, false);
}

/**
 * Rescales probabilities (or logits) by a temperature: softmax(log p / T) per row, or
 * softmax(logits / T) with `{ input: 'logits' }`. A probability of exactly 0 stays 0; at T = 1
 * the rows are only renormalised to sum to 1.
 *
 * @example
 * applyTemperature([[0.9, 0.1]], 2); // ≈ [[0.75, 0.25]]: sqrt(0.9) : sqrt(0.1)
 */
export function applyTemperature(
  scores: ProbabilityInput,
  temperature: number,
  options: { input?: ScoreKind } = {},
): number[][] {
  const op = 'applyTemperature';
  const t = checkNumber(temperature, op, 'temperature', { min: 0, minExclusive: true });
  const input = checkInput(op, options.input ?? 'probabilities');
  const rows = toProbabilities(op, scores);
  if (input === 'probabilities') checkUnitInterval(op, rows);
  return rows.map((row) => {
    const z = input === 'logits' ? row : row.map((p) => Math.log(p));
    const m = Math.max(...z.map((v) => v / t));
    check(m > Number.NEGATIVE_INFINITY, op, 'a row of probabilities is all zero');
    const e = z.map((v) => Math.exp(v / t - m));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  });
}
