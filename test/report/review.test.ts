/**
 * The review wiring with real values: per-case results from `evaluate`, test-time augmentation,
 * temperature, the threshold chosen on validation and applied frozen to test, what the saved
 * classifier then predicts, and the files `evaluateAndSave` writes.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  applyTemperature,
  arraySource,
  type ClassifierMeta,
  chooseRules,
  describePrediction,
  type EvaluateAndSaveResult,
  evaluate,
  evaluateAndSave,
  loadClassifier,
  predictWithTta,
  Rescale,
  setupBackend,
  simpleCnn,
  syntheticDataset,
  train,
  withTta,
  writeEvaluation,
  writeWorstCasesGrid,
} from '../../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-review-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const size = 24;
const classNames = ['benign', 'malignant', 'normal'];
const NORMAL = 2;
const pre = new Rescale({ scale: 1 / 255 });
const trainData = syntheticDataset({ kind: 'breast-ultrasound', perClass: 30, size, seed: 3 });
const valData = syntheticDataset({ kind: 'breast-ultrasound', perClass: 20, size, seed: 4 });
const testData = syntheticDataset({ kind: 'breast-ultrasound', perClass: 6, size, seed: 5 });
type Sample = (typeof valData.samples)[number];
const source = (samples: readonly Sample[]) =>
  arraySource(samples, { height: size, width: size, numClasses: 3 });

/** The samples mirrored left-right, or made left-right symmetric. */
function mirrored(samples: readonly Sample[], mode: 'flip' | 'symmetric'): Sample[] {
  return samples.map((s) => {
    const pixels = new Float32Array(size * size);
    for (let r = 0; r < size; r++)
      for (let c = 0; c < size; c++) {
        const a = s.pixels[r * size + c] as number;
        const b = s.pixels[r * size + (size - 1 - c)] as number;
        pixels[r * size + c] = mode === 'flip' ? b : (a + b) / 2;
      }
    return { ...s, pixels };
  });
}

const argmax = (row: readonly number[]) => row.indexOf(Math.max(...row));
const abnormalScores = (probs: readonly (readonly number[])[], labels: readonly number[]) =>
  probs.flatMap((p, i) => (labels[i] !== NORMAL ? [1 - (p[NORMAL] as number)] : []));

let model: tfl.LayersModel;
let saved: EvaluateAndSaveResult;

beforeAll(async () => {
  await setupBackend('wasm');
  model = simpleCnn({
    inputShape: [size, size, 1],
    numClasses: 3,
    filters: [8, 16],
    dense: 16,
    dropout: 0.2,
    seed: 1,
  });
  const history = await train({
    model,
    train: source(trainData.samples),
    validation: source(valData.samples),
    optimizer: adaBelief({ learningRate: 3e-3 }),
    epochs: 8,
    batchSize: 8,
    transform: pre,
    validationTransform: pre,
  });
  saved = await evaluateAndSave({
    dir,
    model,
    classNames,
    normalClass: 'normal',
    decode: { channels: 1, resize: { height: size, width: size, fit: 'fill' } },
    preprocessing: pre,
    validation: source(valData.samples),
    test: source(testData.samples),
    history: history.history,
    modelCard: { purpose: 'review wiring test' },
    worst: 4,
    // A model this small is far from 99% accurate anywhere: a reachable referral target.
    referralAccuracy: 0.6,
  });
}, 180_000);

describe('evaluate keeps every image', () => {
  it('cases: path, true class, probabilities, loss and prediction per image, in order; leak-free', async () => {
    const data = source(valData.samples);
    const before = tf.memory().numTensors;
    const m = await evaluate(model, data, { classNames, normalClass: 'normal', transform: pre });
    expect(tf.memory().numTensors).toBe(before);
    expect(m.cases).toHaveLength(60);
    expect(m.tta).toBe(1);
    m.cases!.forEach((c, i) => {
      expect(c.index).toBe(i);
      expect(c.path).toBe(`sample ${i}`);
      expect(c.yTrue).toBe(data.label(i));
      expect(c.probabilities).toEqual(m.probabilities![i]);
      expect(c.predicted).toBe(m.yPred[i]);
      expect(c.predicted).toBe(argmax(c.probabilities));
      expect(c.loss).toBeCloseTo(-Math.log(Math.max(c.probabilities[c.yTrue]!, 1e-7)), 10);
    });
    // The mean of the per-image losses is the evaluation loss (float32 in tfjs, float64 here).
    const mean = m.cases!.reduce((a, c) => a + c.loss, 0) / 60;
    expect(mean).toBeCloseTo(m.loss!, 5);
  });

  it('tta 2 averages each image and its horizontal flip: a flip-symmetric image predicts as without TTA', async () => {
    const symmetric = source(mirrored(valData.samples.slice(0, 12), 'symmetric'));
    const plain = await evaluate(model, symmetric, { classNames, transform: pre });
    const before = tf.memory().numTensors;
    const tta = await evaluate(model, symmetric, { classNames, transform: pre, tta: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(tta.tta).toBe(2);
    tta.probabilities!.forEach((row, i) =>
      row.forEach((p, k) => expect(p).toBeCloseTo(plain.probabilities![i]![k]!, 6)),
    );
    // An asymmetric image: the mean of the image's and its mirror's probabilities.
    const images = valData.samples.slice(0, 12);
    const a = await evaluate(model, source(images), { classNames, transform: pre });
    const b = await evaluate(model, source(mirrored(images, 'flip')), { classNames, transform: pre });
    const ab = await evaluate(model, source(images), { classNames, transform: pre, tta: 2 });
    let differs = 0;
    ab.probabilities!.forEach((row, i) =>
      row.forEach((p, k) => {
        const expected = (a.probabilities![i]![k]! + b.probabilities![i]![k]!) / 2;
        expect(p).toBeCloseTo(expected, 6);
        if (Math.abs(p - a.probabilities![i]![k]!) > 1e-4) differs++;
      }),
    );
    expect(differs).toBeGreaterThan(0);
    await expect(evaluate(model, source(images), { classNames, tta: 3 as 2 })).rejects.toThrow(
      /tta must be 1 \(no test-time augmentation\), 2 \(the image and a flip\) or 4/,
    );
  });

  it('predictWithTta and withTta: the mean of the two views, no tensor left behind', () => {
    const xs = tf.tidy(() =>
      tf.div(tf.tensor4d(Float32Array.from(valData.samples[0]!.pixels), [1, size, size, 1]), 255),
    ) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const p = predictWithTta(model, xs, 2);
    const viaView = withTta(model, 2).predict(xs) as tf.Tensor;
    const manual = tf.tidy(() =>
      tf.div(tf.add(model.predict(xs) as tf.Tensor, model.predict(tf.reverse(xs, 2)) as tf.Tensor), 2),
    );
    expect(Array.from(p.dataSync())).toEqual(Array.from(manual.dataSync()));
    expect(Array.from(viaView.dataSync())).toEqual(Array.from(manual.dataSync()));
    tf.dispose([p, viaView, manual]);
    expect(tf.memory().numTensors).toBe(before);
    expect(withTta(model, 1)).toBe(model);
    xs.dispose();
  });

  it('a temperature changes the probabilities but not the argmax; the model’s own are kept', async () => {
    const data = source(valData.samples);
    const plain = await evaluate(model, data, { classNames, normalClass: 'normal', transform: pre });
    const before = tf.memory().numTensors;
    const hot = await evaluate(model, data, {
      classNames,
      normalClass: 'normal',
      transform: pre,
      temperature: 0.5,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(hot.temperature).toBe(0.5);
    expect(hot.rawProbabilities).toEqual(plain.probabilities);
    expect(hot.yPred).toEqual(plain.yPred);
    expect(hot.report.accuracy).toBe(plain.report.accuracy);
    const expected = applyTemperature(plain.probabilities!, 0.5);
    let moved = 0;
    hot.probabilities!.forEach((row, i) =>
      row.forEach((p, k) => {
        expect(p).toBeCloseTo(expected[i]![k]!, 12);
        if (Math.abs(p - plain.probabilities![i]![k]!) > 1e-3) moved++;
      }),
    );
    expect(moved).toBeGreaterThan(0);
    expect(hot.cases!.map((c) => c.predicted)).toEqual(plain.yPred);
    expect(hot.cases![0]!.loss).toBeCloseTo(-Math.log(hot.probabilities![0]![hot.yTrue[0]!]!), 10);
  });
});

describe('rules chosen on validation, applied frozen', () => {
  it('the threshold reaches the target sensitivity on validation and is the largest that does', async () => {
    const { choices, validation } = saved;
    const t = choices.operatingPoint!.threshold;
    const scores = abnormalScores(validation.probabilities!, validation.yTrue);
    expect(scores).toHaveLength(40);
    // Target 1 (the default): the threshold is the lowest abnormal score, so every abnormal image is called.
    expect(choices.sensitivity).toBe(1);
    expect(t).toBe(Math.min(...scores));
    expect(choices.operatingPoint!.sensitivity).toBe(1);
    // Another target, chosen on the same validation probabilities.
    const raw = await evaluate(model, source(valData.samples), {
      classNames,
      normalClass: 'normal',
      transform: pre,
    });
    const { choices: c90, validation: v90 } = chooseRules(raw, {
      classNames,
      normalClass: NORMAL,
      sensitivity: 0.9,
    });
    const s90 = abnormalScores(v90.probabilities!, v90.yTrue);
    const t90 = c90.operatingPoint!.threshold;
    const sens = (threshold: number) => s90.filter((s) => s >= threshold).length / s90.length;
    expect(sens(t90)).toBeGreaterThanOrEqual(0.9);
    expect(c90.operatingPoint!.sensitivity).toBe(sens(t90));
    const higher = s90.filter((s) => s > t90);
    if (higher.length) expect(sens(Math.min(...higher))).toBeLessThan(0.9);
  });

  it('the test split gets the validation threshold and temperature frozen, with its own sensitivity and intervals', () => {
    const { choices, test, reviews } = saved;
    const t = choices.operatingPoint!.threshold;
    const op = reviews.test!.operatingPoint!;
    expect(op.result.threshold).toBe(t);
    const scores = abnormalScores(test!.probabilities!, test!.yTrue);
    const called = scores.filter((s) => s >= t).length;
    expect(op.result.abnormal).toBe(12);
    expect(op.result.sensitivity).toBe(called / 12);
    expect(op.result.missed).toBe(12 - called);
    expect(op.confidence.sensitivity.estimate).toBe(called / 12);
    expect(op.confidence.sensitivity.lower).toBeLessThanOrEqual(op.confidence.sensitivity.estimate);
    expect(reviews.test!.chosenHere).toBe(false);
    expect(reviews.validation!.chosenHere).toBe(true);
    // 60 validation images: the temperature is fitted and applied to both splits.
    const T = choices.temperature!;
    expect(T.applied).toBe(true);
    expect(test!.temperature).toBe(T.temperature);
    expect(saved.validation.temperature).toBe(T.temperature);
    expect(reviews.test!.calibration.before).toBeDefined();
    // Thresholded predictions: normal exactly when P(not normal) < t.
    op.predictions.forEach((p, i) => expect(p === NORMAL).toBe(1 - test!.probabilities![i]![NORMAL]! < t));
  });

  it('writeEvaluation with the Grad-CAM grid, and the grid alone, leave no tensor behind', async () => {
    const data = source(testData.samples);
    const m = await evaluate(model, data, { classNames, normalClass: 'normal', transform: pre });
    const before = tf.memory().numTensors;
    const w = await writeEvaluation(m, join(dir, 'leak-check'), {
      classNames,
      normalClass: 'normal',
      choices: saved.choices,
      gradCam: { model, source: data, transform: pre },
      worst: 3,
    });
    const grid = await writeWorstCasesGrid(m.cases!.slice(0, 2), join(dir, 'leak-check', 'two.png'), {
      model,
      source: data,
      transform: pre,
      classNames,
      columns: 1,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(w.worstCases?.gradCam).toBe(true);
    expect(grid.gradCam).toBe(true);
    const meta = await sharp(grid.path).metadata();
    // One column, two rows of (image | overlay) tiles of 160 pixels with their captions.
    expect(meta.width).toBe(2 * 160 + 4 + 2 * 12);
    expect(meta.height).toBe(2 * (160 + 44) + 3 * 12);
    expect(w.review!.worst).toHaveLength(3);
    expect(w.review!.operatingPoint!.result.threshold).toBe(saved.choices.operatingPoint!.threshold);
  });

  it('too few validation images: the temperature is fitted but not applied', async () => {
    const raw = await evaluate(model, source(valData.samples.slice(0, 20)), { classNames, transform: pre });
    const { choices, validation } = chooseRules(raw, { classNames, normalClass: NORMAL });
    expect(choices.temperature!.applied).toBe(false);
    expect(choices.temperature!.note).toMatch(/only 20 validation images \(fewer than 50\)/);
    expect(validation).toBe(raw);
  });

  it('evaluateAndSave writes per-image CSVs, the worst cases, the report page, and the rules in classifier.json', async () => {
    const csv = readFileSync(join(dir, 'evaluation', 'predictions.csv'), 'utf8')
      .split('\r\n')
      .filter(Boolean);
    expect(csv[0]).toBe(
      'path,true,predicted,predicted_argmax,p_benign,p_malignant,p_normal,loss,missed_finding',
    );
    expect(csv).toHaveLength(1 + 60);
    expect(
      readFileSync(join(dir, 'test-evaluation', 'predictions.csv'), 'utf8')
        .trim()
        .split('\r\n'),
    ).toHaveLength(1 + 18);
    // The CSV's prediction follows the threshold; the most probable class stays beside it.
    const t = saved.choices.operatingPoint!.threshold;
    for (const line of csv.slice(1)) {
      const cells = line.split(',');
      const probs = cells.slice(4, 7).map(Number);
      const pNormal = probs[2]!;
      expect(cells[2] === 'normal').toBe(1 - pNormal < t);
      expect(cells[3]).toBe(classNames[argmax(probs)]);
    }
    const grid = await sharp(join(dir, 'evaluation', 'worst-cases.png')).metadata();
    expect(grid.width).toBeGreaterThan(300);
    expect(grid.height).toBeGreaterThan(150);
    const html = readFileSync(join(dir, 'evaluation', 'report.html'), 'utf8');
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/<script|src="(?!data:)|href="(?!#)|url\(/);
    for (const id of ['summary', 'rules', 'split-validation', 'split-test', 'training-curves', 'model-card'])
      expect(html, id).toContain(`id="${id}"`);
    expect(html).toContain('review wiring test');
    const meta = JSON.parse(
      readFileSync(join(dir, 'classifier', 'classifier.json'), 'utf8'),
    ) as ClassifierMeta;
    expect(meta.temperature).toBe(saved.choices.temperature!.temperature);
    expect(meta.operatingPoint).toEqual({
      threshold: t,
      sensitivityTarget: 1,
      validation: { sensitivity: 1, specificity: saved.choices.operatingPoint!.specificity, images: 60 },
    });
    expect(Object.keys(meta.classThresholds!)).toEqual(classNames);
    expect(meta.tta).toBeUndefined();
    expect((meta.metrics!.test as { operatingPoint: { threshold: number } }).operatingPoint.threshold).toBe(
      t,
    );
    const metrics = JSON.parse(readFileSync(join(dir, 'test-evaluation', 'metrics.json'), 'utf8'));
    expect(metrics.review.operatingPoint.threshold).toBe(t);
    expect(metrics.review.operatingPoint.missedImages).toHaveLength(
      saved.reviews.test!.operatingPoint!.result.missed,
    );
  });
});

describe('predict with the saved rules', () => {
  const images = () => valData.samples.map((s) => tf.tensor3d(Float32Array.from(s.pixels), [size, size, 1]));

  it('with a saved threshold, predict calls normal only when P(not normal) < t, and says so', async () => {
    // The saved threshold at the median abnormal score, so that both sides are exercised.
    const copy = join(dir, 'median-threshold');
    cpSync(join(dir, 'classifier'), copy, { recursive: true });
    const meta = JSON.parse(readFileSync(join(copy, 'classifier.json'), 'utf8')) as ClassifierMeta;
    const scores = abnormalScores(saved.validation.probabilities!, saved.validation.yTrue).sort(
      (a, b) => a - b,
    );
    const t = scores[Math.floor(scores.length / 2)]!;
    meta.operatingPoint!.threshold = t;
    writeFileSync(join(copy, 'classifier.json'), JSON.stringify(meta));
    const clf = await loadClassifier(copy);
    const xs = images();
    clf.predictBatch(xs.slice(0, 1)); // folds BatchNormalization; the weights stay with the model
    const before = tf.memory().numTensors;
    const batch = clf.predictBatch(xs);
    expect(tf.memory().numTensors).toBe(before);
    let normals = 0;
    batch.forEach((p, i) => {
      expect(p.rule).toBe('threshold');
      expect(p.threshold).toBe(t);
      expect(p.abnormalScore).toBeCloseTo(1 - p.probabilities.normal!, 12);
      expect(p.className === 'normal').toBe(p.abnormalScore! < t);
      if (p.className === 'normal') {
        normals++;
        expect(p.decision).toMatch(
          /^normal: P\(not normal\) \d+\.\d% < \d+\.\d%, the threshold chosen on validation data for sensitivity 100\.0%/,
        );
      } else {
        expect(p.decision).toMatch(/^abnormal: P\(not normal\) \d+\.\d% >= /);
        // The most probable abnormal class.
        expect(p.className).toBe(
          p.probabilities.benign! >= p.probabilities.malignant! ? 'benign' : 'malignant',
        );
      }
      // The probabilities are the saved temperature's: the same as the validation evaluation.
      saved.validation.probabilities![i]!.forEach((v, k) =>
        expect(p.probabilities[classNames[k]!]).toBeCloseTo(v, 5),
      );
    });
    expect(normals).toBeGreaterThan(0);
    expect(normals).toBeLessThan(60);
    tf.dispose(xs);
    clf.dispose();
  });

  it('a saved temperature changes the probabilities, not the argmax; TTA of a symmetric image is the plain prediction', async () => {
    const copy = join(dir, 'temperature-only');
    cpSync(join(dir, 'classifier'), copy, { recursive: true });
    const meta = JSON.parse(readFileSync(join(copy, 'classifier.json'), 'utf8')) as ClassifierMeta;
    delete meta.operatingPoint;
    delete meta.referral;
    meta.temperature = 0.5;
    writeFileSync(join(copy, 'classifier.json'), JSON.stringify(meta));
    const clf = await loadClassifier(copy);
    const xs = images();
    const raw = tf.tidy(
      () => (model.predict(tf.div(tf.stack(xs), 255)) as tf.Tensor).arraySync() as number[][],
    );
    clf.predictTensor(xs[0]!); // folds BatchNormalization; the weights stay with the model
    const before = tf.memory().numTensors;
    const preds = xs.map((x) => clf.predictTensor(x));
    expect(tf.memory().numTensors).toBe(before);
    preds.forEach((p, i) => {
      expect(p.rule).toBe('argmax');
      expect(p.temperature).toBe(0.5);
      expect(p.classIndex).toBe(argmax(raw[i]!));
      const expected = applyTemperature([raw[i]!], 0.5)[0]!;
      classNames.forEach((c, k) => expect(p.probabilities[c]).toBeCloseTo(expected[k]!, 5));
    });
    expect(preds.some((p, i) => Math.abs(p.probabilities.benign! - raw[i]![0]!) > 1e-3)).toBe(true);
    // TTA: a flip-symmetric image predicts the same with and without its mirror.
    const sym = mirrored(valData.samples.slice(0, 4), 'symmetric').map((s) =>
      tf.tensor3d(Float32Array.from(s.pixels), [size, size, 1]),
    );
    const n0 = tf.memory().numTensors;
    const plain = clf.predictBatch(sym, { tta: 1 });
    const tta = clf.predictBatch(sym, { tta: 2 });
    const one = clf.predictTensor(sym[0]!, { tta: 2 });
    expect(tf.memory().numTensors).toBe(n0);
    expect(tta[0]!.tta).toBe(2);
    tta.forEach((p, i) =>
      classNames.forEach((c) => expect(p.probabilities[c]).toBeCloseTo(plain[i]!.probabilities[c]!, 6)),
    );
    classNames.forEach((c) => expect(one.probabilities[c]).toBeCloseTo(plain[0]!.probabilities[c]!, 6));
    expect(() => clf.predictTensor(sym[0]!, { tta: 3 as 2 })).toThrow(/tta must be 1/);
    // Saved without training flips: the horizontal flip only, so no 4 views.
    expect(() => clf.predictTensor(sym[0]!, { tta: 4 })).toThrow(/are: horizontal; tta can be 1 or 2/);
    tf.dispose([...xs, ...sym]);
    clf.dispose();
  });

  it('the referral rule flags exactly the images below its cut-off; bad saved rules are refused at load', async () => {
    const clf = await loadClassifier(join(dir, 'classifier'));
    const referral = clf.meta.referral;
    expect(referral?.by).toBe('maxProbability');
    const xs = images();
    const preds = clf.predictBatch(xs);
    preds.forEach((p) => {
      const top = Math.max(...Object.values(p.probabilities));
      expect(Boolean(p.referToHuman)).toBe(top < referral!.threshold);
      if (p.referToHuman) expect(p.referral).toMatch(/refer to a human reader/);
    });
    tf.dispose(xs);
    clf.dispose();
    const bad = join(dir, 'bad-rules');
    cpSync(join(dir, 'classifier'), bad, { recursive: true });
    const meta = JSON.parse(readFileSync(join(bad, 'classifier.json'), 'utf8')) as ClassifierMeta;
    meta.normalClass = null;
    writeFileSync(join(bad, 'classifier.json'), JSON.stringify(meta));
    await expect(loadClassifier(bad)).rejects.toThrow(/an operatingPoint needs a normalClass/);
    expect(existsSync(join(dir, 'classifier', 'model.json'))).toBe(true);
  });

  it('under the threshold, a normal call with a more probable abnormal class is flagged as such', () => {
    const meta = {
      classNames,
      normalClass: 'normal',
      operatingPoint: {
        threshold: 0.7,
        sensitivityTarget: 1,
        validation: { sensitivity: 1, specificity: 0.5, images: 10 },
      },
    } as ClassifierMeta;
    const p = describePrediction([0.2, 0.45, 0.35], meta, 0.2);
    expect(p.className).toBe('normal');
    expect(p.rule).toBe('threshold');
    expect(p.warning).toBe(
      'Called normal by the threshold, but malignant is more probable (45.0% vs 35.0%): review this image.',
    );
    const q = describePrediction([0.05, 0.2, 0.75], meta, 0.2);
    expect(q.className).toBe('normal');
    expect(q.warning).toBeUndefined();
    expect(describePrediction([0.05, 0.7, 0.25], meta, 0.2).className).toBe('malignant');
  });
});
