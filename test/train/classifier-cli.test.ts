import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  arraySource,
  Compose,
  describePrediction,
  evaluate,
  gradCam,
  isRandomTransform,
  loadClassifier,
  mobilenetV2,
  RandomErasing,
  Rescale,
  recalibrateBatchNorm,
  saveClassifier,
  setupBackend,
  simpleCnn,
  syntheticDataset,
  train,
  transferLearn,
  transferModel,
  writeEvaluation,
} from '../../src/node.js';
import { runCli } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-clf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const size = 24;
const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 8, size, seed: 2 });
const source = arraySource(data.samples, { height: size, width: size, numClasses: 3 });
const pre = new Rescale({ scale: 1 / 255 });

describe('saved classifiers, evaluation and Grad-CAM', () => {
  let model: ReturnType<typeof simpleCnn>;
  beforeAll(async () => {
    await setupBackend('wasm');
    model = simpleCnn({ inputShape: [size, size, 1], numClasses: 3, filters: [4, 8], dense: 8, seed: 1 });
    await train({
      model,
      train: source,
      optimizer: adaBelief({ learningRate: 3e-3 }),
      epochs: 2,
      batchSize: 8,
      transform: pre,
    });
    // Write two samples as PNG files, as a user would have them.
    mkdirSync(join(dir, 'images'));
    for (const i of [0, 1]) {
      const s = data.samples[i]!;
      await sharp(Buffer.from(Uint8Array.from(s.pixels, Math.round)), {
        raw: { width: size, height: size, channels: 1 },
      })
        .png()
        .toFile(join(dir, 'images', `${i}.png`));
    }
  });

  it('round-trips through a folder and predicts from a file exactly as from the tensor, with the saved preprocessing', async () => {
    const meta = await saveClassifier(join(dir, 'clf'), {
      model,
      classNames: data.classes,
      decode: { channels: 1 },
      preprocessing: pre,
      normalClass: 'normal',
      metrics: { accuracy: 0.5 },
    });
    expect(meta.preprocessing).toEqual({ name: 'Rescale', config: { scale: 1 / 255 } });
    expect(JSON.parse(readFileSync(join(dir, 'clf/classifier.json'), 'utf8')).classNames).toEqual([
      'benign',
      'malignant',
      'normal',
    ]);
    const clf = await loadClassifier(join(dir, 'clf'));
    const image = tf.tensor3d(Float32Array.from(data.samples[0]!.pixels, Math.round), [size, size, 1]);
    const direct = tf.tidy(() => (model.predict(tf.expandDims(pre.apply(image), 0)) as tf.Tensor).dataSync());
    // The first prediction folds BatchNormalization into the convolutions; the folded weights
    // stay with the model (freed by dispose), so leaks are counted from the second.
    await clf.predict(join(dir, 'images/0.png'));
    const before = tf.memory().numTensors;
    const p = await clf.predict(join(dir, 'images/0.png'));
    expect(tf.memory().numTensors).toBe(before);
    expect(
      Object.values(p.probabilities)
        .map((v, i) => Math.abs(v - direct[i]!))
        .every((d) => d < 1e-5),
    ).toBe(true);
    expect(p.className).toBe(data.classes[direct.indexOf(Math.max(...direct))]);
    await expect(loadClassifier(join(dir, 'nope'))).rejects.toThrow(
      /cannot read .*nope\/classifier\.json: ENOENT \(is this a classifier folder\?\)/,
    );
    image.dispose();
    clf.dispose();
  });

  it('warns when the top class is normal but an abnormal class is close (missed-finding guard)', () => {
    const meta = { classNames: ['benign', 'malignant', 'normal'], normalClass: 'normal' } as Parameters<
      typeof describePrediction
    >[1];
    expect(describePrediction([0.1, 0.35, 0.55], meta, 0.25).warning).toMatch(
      /^Called normal, but malignant is close \(35\.0% vs 55\.0%\)/,
    );
    expect(describePrediction([0.05, 0.1, 0.85], meta, 0.25).warning).toBeUndefined();
    expect(describePrediction([0.5, 0.1, 0.4], meta, 0.25).warning).toBeUndefined();
  });

  it('evaluate + writeEvaluation produce the report, missed findings and pictures', async () => {
    const m = await evaluate(model, source, {
      classNames: data.classes,
      normalClass: 'normal',
      transform: pre,
    });
    expect(m.report.support).toBe(24);
    expect(m.missedFindings!.abnormal).toBe(16);
    const out = await writeEvaluation(m, join(dir, 'eval'), { classNames: data.classes });
    expect(out.text).toMatch(/Missed findings \(abnormal called normal\): \d+ of 16/);
    for (const f of [
      'report.txt',
      'report.md',
      'metrics.json',
      'confusion-matrix.png',
      'confusion-matrix-normalized.svg',
      'roc.png',
    ]) {
      expect(existsSync(join(dir, 'eval', f)), f).toBe(true);
    }
  });

  it('Grad-CAM: a [0, 1] heat map at the input size, for the chosen class, leak-free', () => {
    const x = pre.apply(tf.tensor3d(data.samples[1]!.pixels, [size, size, 1]));
    const before = tf.memory().numTensors;
    const r = gradCam(model, x, { classIndex: 1 });
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(r.heatmap.shape).toEqual([size, size]);
    expect(r.classIndex).toBe(1);
    expect(r.layerName).toBe('block2_pool');
    const v = Array.from(r.heatmap.dataSync());
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThanOrEqual(1 + 1e-6);
    expect(() => gradCam(model, x, { layerName: 'nope' })).toThrow(/no top-level layer named 'nope'/);
    tf.dispose([x, r.heatmap]);
  });

  it('Grad-CAM on a transfer model: the nested backbone (applied in two models) is the feature layer', () => {
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 });
    const clf = transferModel({ backbone, numClasses: 3, seed: 2 });
    const x = tf.randomUniform([32, 32, 3], -1, 1, 'float32', 4) as tf.Tensor3D;
    // A first call folds the backbone's BatchNormalization into its convolutions; the folded
    // weights stay with the model (freed by dispose), so leaks are counted from the second call.
    tf.dispose(gradCam(clf, x).heatmap);
    const before = tf.memory().numTensors;
    const r = gradCam(clf, x);
    expect(r.layerName).toBe('mobilenetv2_0.35_32');
    expect(r.heatmap.shape).toEqual([32, 32]);
    const p = tf.tidy(() => Array.from((clf.predict(tf.expandDims(x, 0)) as tf.Tensor).dataSync()));
    r.probabilities.forEach((v, i) => expect(v).toBeCloseTo(p[i]!, 5));
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, r.heatmap]);
    clf.dispose();
  });
});

describe('transferLearn', () => {
  it('phase 1 on cached features when the pipeline is deterministic, then phase 2 fine-tunes the last block', async () => {
    await setupBackend('wasm');
    expect(isRandomTransform(pre)).toBe(false);
    expect(isRandomTransform(new Compose([pre, new RandomErasing()]))).toBe(true);
    const rgb = arraySource(
      data.samples.map((s) => ({
        label: s.label,
        pixels: Float32Array.from(
          { length: 32 * 32 * 3 },
          (_, i) => s.pixels[Math.floor(i / 3) % (size * size)]!,
        ),
      })),
      { height: 32, width: 32, channels: 3, numClasses: 3 },
    );
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 });
    const conv1 = Array.from(backbone.getLayer('Conv1').getWeights()[0]!.dataSync());
    const lines: string[] = [];
    const r = await transferLearn({
      backbone,
      numClasses: 3,
      train: rgb,
      transform: new Rescale({ scale: 1 / 127.5, offset: -1 }),
      phase1: { epochs: 2 },
      phase2: { epochs: 1, unfreeze: { lastBlocks: 1 } },
      batchSize: 8,
      log: (l) => lines.push(l),
    });
    expect(lines[0]).toMatch(/computing backbone features once/);
    expect(r.phase1.history).toHaveLength(2);
    expect(r.phase2!.history).toHaveLength(1);
    expect(Array.from(backbone.getLayer('Conv1').getWeights()[0]!.dataSync())).toEqual(conv1);
    expect(r.model.trainableWeights.map((w) => w.originalName)).toContain('block_16_project/kernel');
    r.model.dispose();
  }, 120_000);

  it('transferLearn: phase 1 skipped, phase 2 with its own callbacks and BatchNorm policy, statistics recalibrated at the end', async () => {
    await setupBackend('wasm');
    const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 8, size: 32, seed: 4 });
    const rgb = arraySource(
      data.samples.map((s) => ({
        label: s.label,
        pixels: Float32Array.from({ length: 32 * 32 * 3 }, (_, i) => s.pixels[Math.floor(i / 3)]!),
      })),
      { height: 32, width: 32, channels: 3, numClasses: 3 },
    );
    const preprocess = new Rescale({ scale: 1 / 127.5, offset: -1 });
    const lines: string[] = [];
    const phase2Epochs: number[] = [];
    const r = await transferLearn({
      backbone: mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 }),
      numClasses: 3,
      train: rgb,
      // Recalibration runs over the training images with the training pipeline (deterministic here).
      transform: preprocess,
      validationTransform: new Rescale({ scale: 1 / 255 }),
      phase1: { epochs: 0 },
      phase2: {
        epochs: 2,
        unfreeze: { from: 'block_16_expand' },
        batchNorm: { momentum: 0.8 },
        callbacks: [{ onEpochEnd: (e) => void phase2Epochs.push(e) }],
      },
      batchSize: 8,
      log: (l) => lines.push(l),
    });
    expect(lines[0]).toMatch(/phase 1 skipped/);
    expect(lines.at(-1)).toBe(
      'recalibrated the moving statistics of 4 BatchNormalization layers on 24 images',
    );
    expect(r.phase1.history).toEqual([]);
    expect(phase2Epochs).toEqual([0, 1]);
    const bn = r.model.getLayer('mobilenetv2_0.35_32') as tfl.LayersModel;
    expect((bn.getLayer('Conv_1_bn') as unknown as { momentum: number }).momentum).toBe(0.8);
    // Recalibrated: a second pass over the same images with the weights fixed changes nothing.
    const stats = () =>
      bn
        .getLayer('Conv_1_bn')
        .getWeights()
        .slice(2)
        .map((w) => Array.from(w.dataSync()));
    const after = stats();
    await recalibrateBatchNorm(r.model, rgb, { transform: preprocess, batchSize: 8 });
    stats().forEach((s, i) => s.forEach((v, k) => expect(v).toBeCloseTo(after[i]![k]!, 5)));
    await expect(
      transferLearn({
        backbone: mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3] }),
        numClasses: 3,
        train: rgb,
        phase1: { epochs: 0 },
      }),
    ).rejects.toThrow(/phase1.epochs and phase2.epochs are both 0/);
    r.model.dispose();
  }, 120_000);
});

describe('CLI', () => {
  const run = runCli;

  it('--help everywhere, and non-zero exits that name the bad flag or file', async () => {
    expect((await run('--help')).code).toBe(0);
    for (const c of ['demo', 'train', 'evaluate', 'predict', 'inspect-data']) {
      const r = await run(c, '--help');
      expect(r.code, c).toBe(0);
      expect(r.text, c).toMatch(/^Usage: medimg-classify/);
    }
    const bad = await run('train', '--data', dir, '--epochz', '3');
    expect(bad.code).toBe(2);
    expect(bad.text).toMatch(/Unknown option '--epochz'/);
    const num = await run('train', '--data', dir, '--epochs', 'many');
    expect(num.text).toMatch(/--epochs must be an integer >= 1, got 'many'/);
    const missing = await run('predict', '--model', join(dir, 'nope'), 'x.png');
    expect(missing.code).toBe(1);
    expect(missing.text).toMatch(/cannot read .*nope\/classifier\.json/);
    expect((await run('frobnicate')).code).toBe(2);
  });

  it('train on a class-per-folder dataset, then predict with Grad-CAM and inspect-data', async () => {
    const root = join(dir, 'folder');
    for (const [i, s] of data.samples.entries()) {
      const cls = data.classes[s.label]!;
      mkdirSync(join(root, cls), { recursive: true });
      await sharp(Buffer.from(Uint8Array.from(s.pixels, Math.round)), {
        raw: { width: size, height: size, channels: 1 },
      })
        .png()
        .toFile(join(root, cls, `${cls} (${i}).png`));
    }
    const out = join(dir, 'run');
    const t = await run(
      'train',
      '--data',
      root,
      '--image-size',
      '32',
      '--grayscale',
      '--letterbox',
      '--epochs',
      '1',
      '--batch-size',
      '8',
      '--augment',
      'flip,blur',
      '--normal-class',
      'normal',
      '--backend',
      'wasm',
      '--out',
      out,
    );
    expect(t.text).toMatch(/split: \d+ train \/ \d+ validation/);
    expect(t.code).toBe(0);
    for (const f of [
      'classifier/classifier.json',
      'training-curves.png',
      'evaluation/confusion-matrix.png',
      'checkpoints/last.ckpt',
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    // The training flips are saved as the classifier's TTA views.
    expect(JSON.parse(readFileSync(join(out, 'classifier/classifier.json'), 'utf8')).flips).toEqual([
      'horizontal',
    ]);
    const p = await run(
      'predict',
      '--model',
      join(out, 'classifier'),
      '--gradcam',
      '--out',
      join(dir, 'pred'),
      join(root, 'benign', 'benign (0).png'),
    );
    expect(p.code).toBe(0);
    expect(p.text).toMatch(
      /benign \(0\)\.png: (benign|malignant|normal) \(benign \d+\.\d%, malignant \d+\.\d%, normal \d+\.\d%\)/,
    );
    expect(existsSync(join(dir, 'pred', 'benign (0).png-gradcam.png'))).toBe(true);
    const i = await run('inspect-data', root, '--against', root);
    expect(i.text).toMatch(/24 images in 3 classes/);
    expect(i.text).toMatch(/leaks against .*: 24/);
  }, 120_000);

  it('the built bin runs', () => {
    const cli = resolve(__dirname, '../../dist/cli.js');
    if (!existsSync(cli))
      execFileSync('npm', ['run', 'build', '--silent'], { cwd: resolve(__dirname, '../..') });
    const r = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 120_000);
});
