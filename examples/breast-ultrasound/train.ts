/**
 * Reproduction of the breast-ultrasound (BUSI) project: 3 classes (benign, malignant, normal),
 * a simple 2D CNN, then a pretrained ResNet-family backbone, trained with augmentation
 * (GaussianBlur, RandomErasing, Normalize) and the AdaBelief optimizer instead of Adam, judged by
 * accuracy, loss and F1.
 *
 *   npm run build && npx tsx examples/breast-ultrasound/train.ts [--data DIR] [--epochs 200] [--size N] [--quick] [--out DIR]
 *
 * Data: ../shared/data/busi/images (masks excluded; the benign/malignant byte-identical image is
 * reported) when present, else synthetic phantoms. Class weights counter the 350/168/106 imbalance.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  adaBelief,
  arraySource,
  Compose,
  classWeights,
  evaluate,
  fileCheckpointStore,
  findDuplicates,
  folderSource,
  GaussianBlur,
  imageFolder,
  loadKerasWeights,
  mobilenetV2,
  Normalize,
  progressCallback,
  RandomErasing,
  RandomHorizontalFlip,
  Rescale,
  type SampleSource,
  saveClassifier,
  setupBackend,
  simpleCnn,
  stratifiedSplit,
  syntheticDataset,
  train,
  transferLearn,
  writeEvaluation,
  writeTrainingCurves,
} from 'medimg-classify/node';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    epochs: { type: 'string' },
    size: { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
  },
});
const here = import.meta.dirname;
const dataDir = values.data ?? resolve(here, '../../../shared/data/busi/images');
const kerasFile = resolve(here, '../../../shared/models/teachable-machine-tumor-yes-no/keras_model.h5');
const quick = values.quick ?? false;
const epochs = Number(values.epochs ?? (quick ? 4 : 200));
const size = Number(values.size ?? (quick ? 64 : 128));
const out = resolve(values.out ?? 'runs/breast-ultrasound');
const progress = progressCallback({
  live: Boolean(process.stdout.isTTY),
  redraw: (s) => process.stdout.write(`\r${s.padEnd(100)}`),
});

const backend = await setupBackend('auto');
console.log(`backend: ${backend.name} (${backend.package})`);

let classes: string[];
let makeSource: (part: 'train' | 'validation', channels: 1 | 3, s: number) => SampleSource;
let weights: number[];
if (existsSync(dataDir)) {
  const folder = await imageFolder(dataDir, { exclude: ['*_mask*'] });
  const { samples, exact } = await findDuplicates(folder.samples);
  for (const g of exact.filter((g) => new Set(g.map((s) => s.label)).size > 1)) {
    console.log(`note: identical image in several classes: ${g.map((s) => s.path).join(' == ')}`);
  }
  const pool = quick ? samples.filter((_, i) => i % 3 === 0) : samples;
  const split = stratifiedSplit(pool, { validation: 0.2, seed: 7 });
  classes = folder.classes;
  weights = classWeights(split.train, classes.length);
  console.log(
    `data: ${pool.length} BUSI images; ${split.train.length} train / ${split.validation.length} validation; class weights ${weights.map((w) => w.toFixed(2)).join(', ')}`,
  );
  makeSource = (part, channels, s) =>
    folderSource(split[part], classes.length, {
      channels,
      resize: { height: s, width: s, fit: 'contain' },
      cache: true,
    });
} else {
  console.log(`data: ${dataDir} is absent, using synthetic phantoms`);
  const d = syntheticDataset({ kind: 'breast-ultrasound', perClass: quick ? 50 : 150, size, seed: 3 });
  const split = stratifiedSplit(d.samples, { validation: 0.2, seed: 7 });
  classes = d.classes;
  weights = classWeights(split.train, classes.length);
  makeSource = (part, channels) =>
    arraySource(
      split[part].map((x) => ({
        label: x.label,
        pixels:
          channels === 1
            ? x.pixels
            : Float32Array.from({ length: x.pixels.length * 3 }, (_, i) => x.pixels[Math.floor(i / 3)]!),
      })),
      { height: size, width: size, channels, numClasses: classes.length },
    );
}

// The project's augmentation: GaussianBlur, RandomErasing, Normalize (on [0, 1]).
const normalize = new Compose([new Rescale({ scale: 1 / 255 }), new Normalize({ mean: [0.5], std: [0.5] })]);
const augment = new Compose(
  [
    new RandomHorizontalFlip(),
    new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
    new RandomErasing({ p: 0.5 }),
    normalize,
  ],
  { seed: 11 },
);
const rows: string[] = [];

async function finish(
  stage: string,
  model: Parameters<typeof evaluate>[0],
  validation: SampleSource,
  preprocess: Compose | Rescale,
  channels: 1 | 3,
  s: number,
) {
  const m = await evaluate(model, validation, {
    classNames: classes,
    normalClass: 'normal',
    transform: preprocess,
  });
  await writeEvaluation(m, join(out, stage, 'evaluation'), { classNames: classes, title: stage });
  await saveClassifier(join(out, stage, 'classifier'), {
    model,
    classNames: classes,
    decode: { channels, resize: { height: s, width: s, fit: 'contain' } },
    preprocessing: preprocess,
    normalClass: 'normal',
  });
  console.log(
    `\n[${stage}]\n${m.report.toString()}loss ${m.loss?.toFixed(4)}; lesions called normal: ${m.missedFindings!.count} of ${m.missedFindings!.abnormal}`,
  );
  rows.push(
    `${stage.padEnd(28)} accuracy ${m.report.accuracy.toFixed(3)}  loss ${m.loss?.toFixed(3)}  macro F1 ${m.report.macro.f1.toFixed(3)}`,
  );
}

// 1. Simple 2D CNN with AdaBelief.
{
  const model = simpleCnn({ inputShape: [size, size, 1], numClasses: classes.length, seed: 1 });
  const validation = makeSource('validation', 1, size);
  const r = await train({
    model,
    train: makeSource('train', 1, size),
    validation,
    optimizer: adaBelief({ learningRate: 1e-3 }),
    epochs,
    batchSize: 16,
    transform: augment,
    validationTransform: normalize,
    classWeights: weights,
    monitor: 'val_f1',
    earlyStopping: { patience: Math.max(10, Math.round(epochs / 5)) },
    checkpoints: fileCheckpointStore(join(out, '1-simple-cnn', 'checkpoints')),
    resume: true,
    callbacks: [progress],
  });
  await writeTrainingCurves(r.history, join(out, '1-simple-cnn', 'training-curves'));
  await finish('1-simple-cnn', model, validation, normalize, 1, size);
}

// 2. Pretrained backbone (ImageNet MobileNetV2-0.35 from ../shared/models; the project used a ResNet).
if (existsSync(kerasFile)) {
  const tl = quick ? 96 : 160;
  const backbone = mobilenetV2({ alpha: 0.35, inputShape: [tl, tl, 3] });
  await loadKerasWeights(backbone, kerasFile, { allowUnexpected: true });
  const preprocess = new Rescale({ scale: 1 / 127.5, offset: -1 });
  const tlAugment = new Compose(
    [
      new RandomHorizontalFlip(),
      new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
      new RandomErasing({ p: 0.5 }),
      preprocess,
    ],
    { seed: 12 },
  );
  const validation = makeSource('validation', 3, tl);
  const r = await transferLearn({
    backbone,
    numClasses: classes.length,
    train: makeSource('train', 3, tl),
    validation,
    transform: tlAugment,
    validationTransform: preprocess,
    classWeights: weights,
    batchSize: 16,
    seed: 1,
    phase1: { epochs: Math.max(2, Math.round(epochs / 4)), learningRate: 1e-3 },
    phase2: { epochs: Math.max(1, Math.round(epochs / 4)), learningRate: 1e-4, unfreeze: { lastBlocks: 2 } },
    callbacks: [progress],
    log: console.log,
  });
  await writeTrainingCurves(
    [...r.phase1.history, ...(r.phase2?.history ?? [])],
    join(out, '2-pretrained', 'training-curves'),
  );
  await finish('2-pretrained', r.model, validation, preprocess, 3, tl);
} else console.log('stage 2 skipped: ../shared/models absent');

console.log(`\n${rows.join('\n')}\npictures and classifiers: ${out}`);
