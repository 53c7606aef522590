import { check, checkNumber } from '../util/errors.js';
import { confusionMatrix } from './confusion-matrix.js';
import {
  argmax,
  checkClassIndex,
  checkPaired,
  type LabelInput,
  type ProbabilityInput,
  readCases,
  toLabels,
} from './inputs.js';
import { predictWithThreshold } from './operating-point.js';

/*
 * Per-case interpretation, after fastai's ClassificationInterpretation: the cases the model got
 * most wrong, the class pairs it confuses most, and every prediction as a CSV for a reader.
 */

/** One evaluated case. */
export interface CaseRecord {
  /** Position of the case in its data set. */
  index: number;
  /** Image file, when known. */
  path?: string;
  /** True class index. */
  yTrue: number;
  /** Class probabilities. */
  probabilities: readonly number[];
  /** The case's loss (e.g. cross-entropy). */
  loss: number;
}

/**
 * Builds {@link CaseRecord}s from labels and probabilities. The loss is given or, by default,
 * the categorical cross-entropy -ln p[yTrue] with p clipped to [1e-7, 1 - 1e-7], as the
 * library's evaluation loss (Keras' clipping).
 *
 * @example
 * const cases = caseRecords(yTrue, probabilities, { paths });
 * topLosses(cases, 9);
 */
export function caseRecords(
  yTrue: LabelInput,
  probabilities: ProbabilityInput,
  options: { paths?: readonly string[]; losses?: ArrayLike<number> } = {},
): CaseRecord[] {
  const op = 'caseRecords';
  const { labels, probs } = readCases(op, yTrue, probabilities);
  const { paths, losses } = options;
  check(
    paths === undefined || paths.length === labels.length,
    op,
    () => `${paths?.length} paths for ${labels.length} cases`,
  );
  check(
    losses === undefined || losses.length === labels.length,
    op,
    () => `${losses?.length} losses for ${labels.length} cases`,
  );
  return labels.map((y, i) => {
    const p = probs[i] as number[];
    const loss = losses
      ? (losses[i] as number)
      : -Math.log(Math.min(Math.max(p[y] as number, 1e-7), 1 - 1e-7));
    check(!Number.isNaN(loss), op, `losses[${i}] is NaN`);
    return { index: i, ...(paths ? { path: paths[i] as string } : {}), yTrue: y, probabilities: p, loss };
  });
}

/**
 * The k cases with the largest loss, largest first; equal losses in ascending `index` order
 * (so the result never depends on the input order). k larger than the number of cases returns
 * them all. The input is not modified.
 *
 * @example
 * topLosses(cases, 3).map((c) => c.path); // the three worst-predicted images
 */
export function topLosses(cases: readonly CaseRecord[], k: number): CaseRecord[] {
  const op = 'topLosses';
  check(Array.isArray(cases), op, 'cases must be an array of case records');
  checkNumber(k, op, 'k', { integer: true, min: 0 });
  cases.forEach((c, i) => {
    check(
      typeof c?.loss === 'number' && !Number.isNaN(c.loss),
      op,
      () => `cases[${i}].loss must be a number, got ${String(c?.loss)}`,
    );
    check(
      Number.isInteger(c.index),
      op,
      () => `cases[${i}].index must be an integer, got ${String(c.index)}`,
    );
  });
  return [...cases].sort((a, b) => b.loss - a.loss || a.index - b.index).slice(0, k);
}

/**
 * The off-diagonal cells of the confusion matrix with at least `minCount` cases, as
 * `[actual, predicted, count]` with class names, count descending; equal counts keep the
 * matrix's row-major order (actual, then predicted, ascending), as fastai's `most_confused`.
 *
 * @example
 * mostConfused(yTrue, probabilities, { classNames, minCount: 2 }); // [['glioma', 'meningioma', 15], ...]
 */
export function mostConfused(
  yTrue: LabelInput,
  yPred: LabelInput | ProbabilityInput,
  options: { classNames: readonly string[]; minCount?: number },
): [actual: string, predicted: string, count: number][] {
  const op = 'mostConfused';
  const names = options?.classNames;
  check(Array.isArray(names) && names.length > 0, op, 'classNames must be a non-empty array of class names');
  const minCount = checkNumber(options.minCount ?? 1, op, 'minCount', { integer: true, min: 1 });
  const t = toLabels(op, 'yTrue', yTrue, names.length);
  const p = toLabels(op, 'yPred', yPred, names.length);
  checkPaired(op, t, p);
  const m = confusionMatrix(t, p, { numClasses: names.length });
  const out: [string, string, number][] = [];
  m.forEach((row, i) =>
    row.forEach((count, j) => {
      if (i !== j && count >= minCount) out.push([names[i] as string, names[j] as string, count]);
    }),
  );
  return out.sort((a, b) => b[2] - a[2]);
}

/** One CSV field as RFC 4180 writes it: quoted when it holds a comma, quote, CR or LF. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * Every prediction as RFC 4180 CSV text (CRLF line ends, ending with one): header
 * `path,true,predicted,predicted_argmax,p_<class>...,loss` and, when `normalClass` is given,
 * `missed_finding` (`true` for an abnormal case predicted normal). `predicted` is the argmax or,
 * with `threshold` (needs `normalClass`), {@link predictWithThreshold}'s class;
 * `predicted_argmax` is always the most probable class. Numbers are written in full
 * (JavaScript's shortest round-trip form); a missing path is an empty field; fields with a comma,
 * double quote or line break are quoted, with quotes doubled.
 *
 * @example
 * await writeFile('predictions.csv', predictionsCsv(cases, classNames, { normalClass: 2 }));
 */
export function predictionsCsv(
  cases: readonly CaseRecord[],
  classNames: readonly string[],
  options: { normalClass?: number; threshold?: number } = {},
): string {
  const op = 'predictionsCsv';
  check(Array.isArray(cases), op, 'cases must be an array of case records');
  check(Array.isArray(classNames) && classNames.length >= 2, op, 'classNames must name at least 2 classes');
  const k = classNames.length;
  const { normalClass, threshold } = options;
  if (normalClass !== undefined) checkClassIndex(op, 'normalClass', normalClass, k);
  check(
    threshold === undefined || normalClass !== undefined,
    op,
    'a threshold needs normalClass: it applies to P(not normal)',
  );
  cases.forEach((c, i) => {
    check(
      Array.isArray(c?.probabilities) && c.probabilities.length === k,
      op,
      () => `cases[${i}] has ${c?.probabilities?.length} probabilities for ${k} classes`,
    );
    checkClassIndex(op, `cases[${i}].yTrue`, c.yTrue, k);
  });
  const predicted =
    threshold !== undefined && normalClass !== undefined && cases.length
      ? predictWithThreshold(
          cases.map((c) => c.probabilities),
          { normalClass, threshold },
        )
      : cases.map((c) => argmax(c.probabilities));
  const header = [
    'path',
    'true',
    'predicted',
    'predicted_argmax',
    ...classNames.map((n) => `p_${n}`),
    'loss',
  ];
  if (normalClass !== undefined) header.push('missed_finding');
  const lines = [header.map(csvField).join(',')];
  cases.forEach((c, i) => {
    const pred = predicted[i] as number;
    const fields = [
      c.path ?? '',
      classNames[c.yTrue] as string,
      classNames[pred] as string,
      classNames[argmax(c.probabilities)] as string,
      ...c.probabilities.map(String),
      String(c.loss),
    ];
    if (normalClass !== undefined) fields.push(String(c.yTrue !== normalClass && pred === normalClass));
    lines.push(fields.map(csvField).join(','));
  });
  return `${lines.join('\r\n')}\r\n`;
}
