import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadClassifier,
  Rescale,
  saveClassifier,
  setupBackend,
  simpleCnn,
  syntheticDataset,
} from '../../src/node.js';
import { runCli } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-evaluate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const size = 32;
const classNames = ['benign', 'malignant', 'normal'];
const withRules = join(dir, 'run', 'classifier');
const plain = join(dir, 'plain');
const data = join(dir, 'data');
const THRESHOLD = 0.5;
const TEMPERATURE = 1.5;

beforeAll(async () => {
  await setupBackend('wasm');
  const net = simpleCnn({ inputShape: [size, size, 1], numClasses: 3, filters: [4], dense: 4, seed: 1 });
  const common = {
    model: net,
    classNames,
    decode: { channels: 1 as const, resize: { height: size, width: size, fit: 'contain' as const } },
    preprocessing: new Rescale({ scale: 1 / 255 }),
    normalClass: 'normal',
  };
  await saveClassifier(withRules, {
    ...common,
    modelCard: { command: 'medimg-classify train --data somewhere', seed: 7 },
    temperature: TEMPERATURE,
    operatingPoint: {
      threshold: THRESHOLD,
      sensitivityTarget: 0.95,
      validation: { sensitivity: 0.96, specificity: 0.7, images: 80 },
    },
    classThresholds: { benign: 0.2, malignant: 0.3, normal: 0.25 },
    referral: {
      by: 'maxProbability',
      threshold: 0.36,
      targetAccuracy: 0.9,
      validation: { coverage: 0.8, accuracy: 0.9, images: 80 },
    },
  });
  await saveClassifier(plain, common);
  net.dispose();
  // The training run's history beside the classifier folder: evaluate draws its curves.
  writeFileSync(
    join(dir, 'run', 'history.json'),
    JSON.stringify([
      { epoch: 0, loss: 1.1, accuracy: 0.4, f1: 0.3, val_loss: 1.05, val_accuracy: 0.45, val_f1: 0.35 },
      { epoch: 1, loss: 0.9, accuracy: 0.6, f1: 0.55, val_loss: 0.95, val_accuracy: 0.5, val_f1: 0.45 },
    ]),
  );
  const images = syntheticDataset({ kind: 'breast-ultrasound', perClass: 4, size, seed: 11 });
  for (const [i, s] of images.samples.entries()) {
    const folder = join(data, classNames[s.label]!);
    mkdirSync(folder, { recursive: true });
    await sharp(Buffer.from(Uint8Array.from(s.pixels, Math.round)), {
      raw: { width: size, height: size, channels: 1 },
    })
      .png()
      .toFile(join(folder, `img,${i}.png`));
  }
});

/** Parses the RFC 4180 rows of predictions.csv (paths hold a comma, so they are quoted). */
function csvRows(path: string): string[][] {
  return readFileSync(path, 'utf8')
    .split('\r\n')
    .filter(Boolean)
    .map((line) => {
      const cells: string[] = [];
      const re = /("(?:[^"]|"")*"|[^,]*)(,|$)/g;
      for (const m of line.matchAll(re)) {
        cells.push(m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replace(/""/g, '"') : m[1]!);
        if (m[2] === '') break;
      }
      return cells;
    });
}

describe('medimg-classify evaluate', () => {
  it('checks its flags before reading the classifier or any image', async () => {
    const broken = join(dir, 'broken');
    mkdirSync(join(broken, 'normal'), { recursive: true });
    writeFileSync(join(broken, 'normal', 'x.png'), 'not an image');
    const cases: [string[], RegExp][] = [
      [
        ['--tta', '3'],
        /--tta must be 1 \(off\), 2 \(average each image and its flip\) or 4 \(each image, its horizontal and vertical flips and both\), got '3'/,
      ],
      [['--sensitivity', '0'], /--sensitivity must be a number > 0 and <= 1, got '0'/],
      [['--sensitivity', '1.2'], /--sensitivity must be a number > 0 and <= 1, got '1.2'/],
      [['--refer-accuracy', 'high'], /--refer-accuracy must be a number > 0 and <= 1, got 'high'/],
      [['--worst=-1'], /--worst must be an integer >= 0, got '-1'/],
      [['--batch-size', '0'], /--batch-size must be an integer >= 1/],
    ];
    for (const [flags, message] of cases) {
      const r = await run('evaluate', '--model', join(dir, 'nope'), '--data', broken, ...flags);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.text, flags.join(' ')).toMatch(message);
      expect(r.text).not.toMatch(/x\.png|nope|backend:/);
    }
  });

  it('--tta 4 needs a classifier trained with both flips: the error names the flips it has', async () => {
    const r = await run('evaluate', '--model', plain, '--data', data, '--tta', '4', '--backend', 'wasm');
    expect(r.code, r.text).toBe(2);
    expect(r.text).toMatch(
      /--tta 4 needs both the horizontal and the vertical flip, but the available flips \(those the model was trained with\) are: horizontal; tta can be 1 or 2/,
    );
    expect(r.text).not.toMatch(/img,\d+\.png|report page/);
  });

  it("applies the classifier's saved rules frozen and writes the report page, CSV and worst cases", async () => {
    const out = join(dir, 'eval-saved');
    const r = await run(
      'evaluate',
      '--model',
      withRules,
      '--data',
      data,
      '--out',
      out,
      '--worst',
      '4',
      '--backend',
      'wasm',
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(
      /Operating point \(abnormal vs normal\): abnormal when P\(not normal\) >= 0\.5000, chosen on validation for sensitivity 95\.0%, applied frozen/,
    );
    expect(r.text).toMatch(/report page: .*eval-saved\/report\.html/);
    for (const f of [
      'report.html',
      'report.txt',
      'metrics.json',
      'predictions.csv',
      'worst-cases.png',
      'reliability.png',
      'coverage.png',
      'roc-operating-point.png',
      'training-curves.png',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    const rows = csvRows(join(out, 'predictions.csv'));
    expect(rows[0]).toEqual([
      'path',
      'true',
      'predicted',
      'predicted_argmax',
      'p_benign',
      'p_malignant',
      'p_normal',
      'loss',
      'missed_finding',
    ]);
    expect(rows).toHaveLength(1 + 12);
    // Every image once, with the saved temperature and threshold: the same as predict.
    const clf = await loadClassifier(withRules);
    for (const row of rows.slice(1)) {
      const [path, truth, predicted, mostProbable] = row as [string, string, string, string];
      expect(path).toMatch(/img,\d+\.png$/);
      expect(path).toContain(`/${truth}/`);
      const p = await clf.predict(path);
      expect(predicted).toBe(p.className);
      const probs = row.slice(4, 7).map(Number);
      expect(mostProbable).toBe(classNames[probs.indexOf(Math.max(...probs))]);
      expect(Number(row[6])).toBeCloseTo(p.probabilities.normal!, 5);
      expect(predicted === 'normal').toBe(1 - Number(row[6]) < THRESHOLD);
      expect(row[8]).toBe(String(truth !== 'normal' && predicted === 'normal'));
    }
    clf.dispose();
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.temperature).toBe(TEMPERATURE);
    expect(metrics.review.operatingPoint.threshold).toBe(THRESHOLD);
    expect(metrics.review.chosenHere).toBe(false);
    expect(metrics.review.classThresholds.map((t: { threshold: number }) => t.threshold)).toEqual([
      0.2, 0.3, 0.25,
    ]);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('saved with the classifier, chosen on its validation data');
    expect(html).toContain('medimg-classify train --data somewhere');
    expect(html).toContain('id="training-curves"');
    expect(html).not.toMatch(/<script|src="(?!data:)/);
  }, 120_000);

  it('--sensitivity chooses the rules on this data (and says so); a classifier without rules gets them chosen here', async () => {
    const out = join(dir, 'eval-here');
    const r = await run(
      'evaluate',
      '--model',
      withRules,
      '--data',
      data,
      '--out',
      out,
      '--sensitivity',
      '0.9',
      '--tta',
      '2',
      '--worst',
      '0',
      '--backend',
      'wasm',
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(
      /decision rules chosen on these 12 images \(--sensitivity\): their figures are optimistic/,
    );
    expect(r.text).toMatch(/\(on this data: optimistic\)/);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.tta).toBe(2);
    expect(metrics.review.chosenHere).toBe(true);
    expect(metrics.review.operatingPoint.sensitivity.estimate).toBeGreaterThanOrEqual(0.9);
    expect(existsSync(join(out, 'worst-cases.png'))).toBe(false);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('chosen on these images: optimistic');
    const none = await run(
      'evaluate',
      '--model',
      plain,
      '--data',
      data,
      '--out',
      join(dir, 'eval-plain'),
      '--backend',
      'wasm',
    );
    expect(none.code, none.text).toBe(0);
    expect(none.text).toMatch(/decision rules chosen on these 12 images \(the classifier has none saved\)/);
    const html = readFileSync(join(dir, 'eval-plain', 'report.html'), 'utf8');
    expect(html).toContain('No model card');
    expect(html).not.toContain('id="training-curves"');
  }, 120_000);
});

describe('medimg-classify evaluate --refer-accuracy', () => {
  it('two targets give two referral cut-offs: the higher target refers more images', async () => {
    // The classifier has no saved rules: they are chosen on these images, with each target.
    const referral = async (target: string) => {
      const out = join(dir, `refer-${target}`);
      const r = await run(
        'evaluate',
        '--model',
        plain,
        '--data',
        data,
        '--out',
        out,
        '--refer-accuracy',
        target,
        '--worst',
        '0',
        '--backend',
        'wasm',
      );
      expect(r.code, r.text).toBe(0);
      const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
      const rule = metrics.review.referral.rules.find((x: { by: string }) => x.by === 'maxProbability');
      return { metrics, rule, text: r.text };
    };
    const low = await referral('0.1');
    const high = await referral('1');
    // The untrained model is right on some images and wrong on others.
    expect(low.metrics.accuracy).toBeGreaterThan(0.1);
    expect(low.metrics.accuracy).toBeLessThan(1);
    expect(low.rule.targetAccuracy).toBe(0.1);
    expect(high.rule.targetAccuracy).toBe(1);
    // 0.1: every image kept, the cut-off at the least certain image.
    expect(low.rule.coverage).toBe(1);
    expect(low.rule.referred).toBe(0);
    expect(low.text).toMatch(/chosen on validation for 10\.0% accuracy\): keeps 12 of 12 \(100\.0%\)/);
    // 1: only images the model is right on can be kept, so some are referred at a higher cut-off
    // (null when no cut-off reaches 100%: every image is referred).
    expect(high.rule.referred).toBeGreaterThan(0);
    expect(high.rule.coverage).toBeLessThan(1);
    if (high.rule.threshold === null) expect(high.rule.kept).toBe(0);
    else {
      expect(high.rule.threshold).toBeGreaterThan(low.rule.threshold);
      expect(high.rule.accuracy).toBe(1);
    }
  }, 120_000);
});

describe('medimg-classify predict with saved rules', () => {
  it('prints the rules, decides by threshold, flags referrals, and adds their CSV columns', async () => {
    const csv = join(dir, 'predict.csv');
    const r = await run('predict', '--model', withRules, data, '--csv', csv, '--backend', 'wasm');
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(
      /rules \(chosen on validation\): temperature 1\.500; abnormal when P\(not normal\) >= 0\.5000; refer when the top probability < 0\.3600/,
    );
    expect(r.text).toMatch(
      /img,\d+\.png: (benign|malignant|normal) \(.*\), decided by threshold\n {2}(abnormal|normal): P\(not normal\)/,
    );
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toBe(
      'path,predicted,p_benign,p_malignant,p_normal,possible_missed_finding,error,p_not_normal,threshold,refer_to_human',
    );
    expect(rows).toHaveLength(13);
    for (const line of rows.slice(1)) {
      const cells = line.split(/,(?![^"]*")/);
      const [pNot, t, refer] = cells.slice(-3).map(Number) as [number, number, number];
      expect(t).toBe(THRESHOLD);
      expect(cells[1] === 'normal').toBe(pNot < THRESHOLD);
      const top = Math.max(...cells.slice(2, 5).map(Number));
      expect(refer).toBe(top < 0.36 ? 1 : 0);
      if (refer) expect(r.text).toContain('REFER: uncertain: top probability');
    }
    const bad = await run('predict', '--model', withRules, data, '--tta', '5');
    expect(bad.code).toBe(2);
    expect(bad.text).toMatch(/--tta must be 1 \(off\), 2 \(average each image and its flip\) or 4 .*got .5./);
  }, 120_000);
});
