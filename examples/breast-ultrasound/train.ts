/**
 * Reproduction of the breast-ultrasound (BUSI) project: 3 classes (benign, malignant, normal), a
 * pretrained backbone trained with the project's augmentation (GaussianBlur, RandomErasing,
 * Normalize) and the AdaBelief optimizer instead of Adam, judged by accuracy, loss and F1.
 *
 *   npm run build
 *   npx tsx examples/breast-ultrasound/train.ts [--optimizer adabelief|adam|both] [--epochs N]
 *       [--folds 5] [--fold K] [--stage pretrained|cnn|all] [--data DIR] [--test DIR]
 *       [--weights resnet50v2_notop.h5] [--unfreeze-from LAYER] [--quick] [--out DIR] [--threads N] [--seed N]
 *
 * BUSI is small (624 images), so one split's score moves by several points: every run is scored
 * on each of `--folds` stratified folds (duplicates kept in one fold) and reported as the mean and
 * standard deviation. `--optimizer both` (the default) trains Adam and AdaBelief on the same
 * folds. Stages: `pretrained` (ResNet50V2 with `--weights`, else the ImageNet MobileNetV2-0.35 in
 * ../shared/models; its last stage fine-tuned with a new head) and `cnn` (the project's first,
 * simple CNN on 128x128 grayscale). `--test DIR` scores each fold's model on a held-out folder
 * once (files duplicating training images left out). The source trained 200 epochs; the default
 * here is 30, see docs/results.md for why and what each gave.
 *
 * Data: `--data` (default ../shared/data/busi/images), masks (`*_mask*`) excluded; the image that
 * is byte-identical in benign and malignant is reported. Without real data: synthetic phantoms.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  adaBelief,
  backboneSpec,
  Compose,
  classWeights,
  cosineDecay,
  createBackbone,
  type DecodeSpec,
  fileCheckpointStore,
  GaussianBlur,
  learningRateScheduler,
  loadKerasWeights,
  Normalize,
  RandomErasing,
  RandomHorizontalFlip,
  Rescale,
  type SampleSource,
  setupBackend,
  simpleCnn,
  stratifiedKFold,
  syntheticDataset,
  train,
  transferLearn,
} from 'medimg-classify/node';
import {
  finishStage,
  phantomSource,
  progress,
  readDataset,
  readHeldOutTest,
  type Sample,
  SHARED,
  type StageSummary,
  sources,
} from '../common.js';

const { values } = parseArgs({
  options: {
    optimizer: { type: 'string' },
    epochs: { type: 'string' },
    folds: { type: 'string' },
    fold: { type: 'string' },
    stage: { type: 'string' },
    data: { type: 'string' },
    test: { type: 'string' },
    weights: { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
    'learning-rate': { type: 'string' },
    'unfreeze-from': { type: 'string' },
  },
});
const usage = (message: string): never => {
  console.error(`breast-ultrasound: ${message}`);
  process.exit(2);
};
const int = (name: string, v: string | undefined, fallback: number, min: number) => {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
};
const quick = values.quick ?? false;
const optimizers =
  (values.optimizer ?? 'both') === 'both' ? ['adabelief', 'adam'] : [values.optimizer as string];
for (const o of optimizers)
  if (o !== 'adam' && o !== 'adabelief') usage(`--optimizer must be adabelief, adam or both, got '${o}'`);
const stageArg = values.stage ?? 'pretrained';
if (!['pretrained', 'cnn', 'all'].includes(stageArg))
  usage(`--stage must be pretrained, cnn or all, got '${stageArg}'`);
const epochs = int('epochs', values.epochs, quick ? 2 : 30, 1);
const folds = int('folds', values.folds, 5, 2);
const onlyFold = values.fold === undefined ? undefined : int('fold', values.fold, 1, 1);
if (onlyFold !== undefined && onlyFold > folds) usage(`--fold must be 1..${folds}, got ${onlyFold}`);
const seed = int('seed', values.seed, 1, 0);
const learningRate = Number(values['learning-rate'] ?? 1e-3);
if (!(learningRate > 0)) usage(`--learning-rate must be a positive number, got '${values['learning-rate']}'`);
const threads = values.threads === undefined ? undefined : int('threads', values.threads, 1, 1);
const dataDir = resolve(values.data ?? join(SHARED, 'data/busi/images'));
const mobilenetFile = join(SHARED, 'models/teachable-machine-busi/keras_model.h5');
const out = resolve(values.out ?? 'runs/breast-ultrasound');
if (values.test && !existsSync(values.test)) usage(`--test folder ${values.test} does not exist`);
if (values.weights && !existsSync(values.weights)) usage(`--weights file ${values.weights} does not exist`);

const backend = await setupBackend('auto', threads === undefined ? {} : { threads });
console.log(
  `backend: ${backend.name} (${backend.package}${backend.threads ? `, ${backend.threads} threads` : ''})`,
);

const normalClass = 'normal';
const exclude = ['*_mask*'];
let classes: string[];
let foldSets: {
  train: (d: DecodeSpec) => SampleSource;
  validation: (d: DecodeSpec) => SampleSource;
  weights: number[];
}[];
let testSet: ((d: DecodeSpec) => SampleSource) | undefined;
if (existsSync(dataDir)) {
  const data = await readDataset(dataDir, exclude);
  classes = data.classes;
  for (const g of data.duplicateGroups.filter((g) => new Set(g.map((s) => s.label)).size > 1))
    console.log(
      `note: one image in several classes (kept in one fold): ${g.map((s) => s.path).join(' == ')}`,
    );
  const pool = quick ? data.samples.filter((_, i) => i % 3 === 0) : data.samples;
  const parts = stratifiedKFold(pool, { folds, seed: 42 });
  console.log(
    `data: ${dataDir}: ${pool.length} images (masks excluded), ${folds} stratified folds of ~${Math.round(pool.length / folds)}`,
  );
  const test: Sample[] | undefined = values.test
    ? await readHeldOutTest(values.test, classes, data.samples, exclude)
    : undefined;
  const source = sources(classes.length);
  foldSets = parts.map((p, k) => ({
    train: (d) => source(p.train, d, `train${k}`),
    validation: (d) => source(p.validation, d, `validation${k}`),
    weights: classWeights(p.train, classes.length),
  }));
  if (test) testSet = (d) => source(test, d, 'test');
} else {
  console.log(`data: ${dataDir} is absent, using synthetic phantoms`);
  const size = 64;
  const d = syntheticDataset({ kind: 'breast-ultrasound', perClass: quick ? 30 : 120, size, seed: 3 });
  classes = d.classes;
  const phantoms = (part: typeof d.samples) => phantomSource(part, size, classes.length);
  foldSets = stratifiedKFold(d.samples, { folds, seed: 42 }).map((p) => ({
    train: phantoms(p.train),
    validation: phantoms(p.validation),
    weights: classWeights(p.train, classes.length),
  }));
}

// The project's augmentation: GaussianBlur, RandomErasing, Normalize(0.5, 0.5) on [0, 1] (that is
// x / 127.5 - 1, the pretrained backbones' own scaling), plus horizontal flips.
const normalize = new Compose([new Rescale({ scale: 1 / 255 }), new Normalize({ mean: [0.5], std: [0.5] })]);
const augment = (k: number) =>
  new Compose(
    [
      new RandomHorizontalFlip(),
      new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
      new RandomErasing({ p: 0.5 }),
      normalize,
    ],
    { seed: seed * 100 + k },
  );
const makeOptimizer = (name: string) =>
  name === 'adam' ? tf.train.adam(learningRate) : adaBelief({ learningRate });

const weightsFile = values.weights ?? (existsSync(mobilenetFile) ? mobilenetFile : undefined);
// Everything architecture-specific comes from the library's backbone registry.
const spec = backboneSpec(values.weights ? 'resnet50v2' : 'mobilenetv2');

const runs: { name: string; folds: StageSummary[] }[] = [];
const foldList = onlyFold === undefined ? foldSets.map((_, k) => k) : [onlyFold - 1];
const stageNames = stageArg === 'all' ? ['cnn', 'pretrained'] : [stageArg];
for (const stageName of stageNames) {
  if (stageName === 'pretrained' && !weightsFile) {
    console.log(
      'stage pretrained skipped: no pretrained weights (../shared/models is absent and no --weights)',
    );
    continue;
  }
  for (const opt of optimizers) {
    const name = stageName === 'cnn' ? `simple-cnn-${opt}` : `${spec.name}-${opt}`;
    const results: StageSummary[] = [];
    for (const k of foldList) {
      const f = foldSets[k]!;
      const stage = `${name}/fold-${k + 1}`;
      console.log(`\n== ${stage}: ${epochs} epochs, ${opt}, learning rate ${learningRate} with cosine decay`);
      const optimizer = makeOptimizer(opt);
      const schedule = learningRateScheduler(optimizer, cosineDecay({ initial: learningRate, epochs }));
      const t0 = Date.now();
      if (stageName === 'cnn') {
        const size = quick ? 64 : 128;
        const decode: DecodeSpec = { channels: 1, resize: { height: size, width: size, fit: 'contain' } };
        const model = simpleCnn({ inputShape: [size, size, 1], numClasses: classes.length, seed });
        const r = await train({
          model,
          train: f.train(decode),
          validation: f.validation(decode),
          optimizer,
          epochs,
          batchSize: 32,
          seed,
          transform: augment(k),
          validationTransform: normalize,
          classWeights: f.weights,
          checkpoints: fileCheckpointStore(join(out, stage, 'checkpoints')),
          callbacks: [schedule, progress()],
        });
        results.push(
          await finishStage({
            stage,
            out,
            model,
            classNames: classes,
            normalClass,
            decode,
            preprocess: normalize,
            trainTransform: augment(k),
            validation: f.validation(decode),
            ...(testSet ? { test: testSet(decode) } : {}),
            history: r.history,
            seconds: (Date.now() - t0) / 1000,
          }),
        );
        model.dispose();
      } else {
        const size = quick ? 96 : 224;
        const decode: DecodeSpec = { channels: 3, resize: { height: size, width: size, fit: 'contain' } };
        const backbone = createBackbone(spec.name, { inputShape: [size, size, 3] });
        await loadKerasWeights(backbone, weightsFile as string, { allowUnexpected: true });
        const r = await transferLearn({
          backbone,
          numClasses: classes.length,
          train: f.train(decode),
          validation: f.validation(decode),
          transform: augment(k),
          validationTransform: normalize,
          classWeights: f.weights,
          batchSize: spec.fineTuneBatchSize,
          seed,
          phase1: { epochs: 0 },
          phase2: {
            epochs,
            unfreeze: { from: values['unfreeze-from'] ?? spec.lastBlock },
            optimizer,
            callbacks: [schedule],
          },
          checkpoints: { phase2: fileCheckpointStore(join(out, stage, 'checkpoints')) },
          callbacks: [progress()],
          log: console.log,
        });
        results.push(
          await finishStage({
            stage,
            out,
            model: r.model,
            classNames: classes,
            normalClass,
            decode,
            preprocess: normalize,
            trainTransform: augment(k),
            validation: f.validation(decode),
            ...(testSet ? { test: testSet(decode) } : {}),
            history: r.phase2?.history ?? [],
            seconds: (Date.now() - t0) / 1000,
          }),
        );
        r.model.dispose();
      }
    }
    runs.push({ name, folds: results });
  }
}

const meanSd = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, sd };
};
const fmt = (xs: number[], scale = 100, digits = 1) => {
  const { mean, sd } = meanSd(xs.map((x) => x * scale));
  return `${mean.toFixed(digits)} ± ${sd.toFixed(digits)}`;
};
const aggregate = runs.map((r) => {
  const rows = (split: 'validation' | 'test') => {
    const s = r.folds.map((f) => f[split]).filter((x) => x !== undefined);
    if (!s.length) return undefined;
    return {
      folds: s.length,
      accuracy: meanSd(s.map((x) => x.accuracy)),
      macroF1: meanSd(s.map((x) => x.macroF1)),
      loss: meanSd(s.map((x) => x.loss ?? Number.NaN)),
      malignantRecall: meanSd(s.map((x) => x.recall.malignant ?? Number.NaN)),
      missed: s.reduce((a, x) => a + (x.missed ?? 0), 0),
      abnormal: s.reduce((a, x) => a + (x.abnormal ?? 0), 0),
      text: `accuracy ${fmt(s.map((x) => x.accuracy))}%  macro F1 ${fmt(
        s.map((x) => x.macroF1),
        1,
        3,
      )}  loss ${fmt(
        s.map((x) => x.loss ?? Number.NaN),
        1,
        3,
      )}  malignant recall ${fmt(s.map((x) => x.recall.malignant ?? Number.NaN))}%  lesions called normal ${s.reduce((a, x) => a + (x.missed ?? 0), 0)}/${s.reduce((a, x) => a + (x.abnormal ?? 0), 0)}`,
    };
  };
  return {
    name: r.name,
    validation: rows('validation'),
    test: rows('test'),
    seconds: r.folds.reduce((a, f) => a + f.seconds, 0),
  };
});
console.log(`\nmean ± sd over ${foldList.length} fold(s), ${epochs} epochs each`);
for (const a of aggregate) {
  console.log(`${a.name.padEnd(22)} validation  ${a.validation?.text}  (${(a.seconds / 60).toFixed(1)} min)`);
  if (a.test) console.log(`${''.padEnd(22)} test        ${a.test.text}`);
}
await mkdir(out, { recursive: true });
await writeFile(
  join(out, `summary-${stageArg}-${optimizers.join('-')}-${epochs}ep.json`),
  `${JSON.stringify({ backend, data: dataDir, epochs, learningRate, folds: foldList.map((k) => k + 1), runs, aggregate }, null, 2)}\n`,
);
console.log(`\npictures, reports and classifiers: ${out}`);
