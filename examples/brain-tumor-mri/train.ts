/**
 * Reproduction of the brain-tumour MRI project (4 classes: glioma, meningioma, notumor, pituitary).
 *
 *   npm run build && npx tsx examples/brain-tumor-mri/train.ts [--data DIR] [--epochs N] [--size N] [--quick] [--out DIR]
 *
 * Stages, as in the source project:
 *   1. SimpleCNN on grayscale images, plain resize (the project's 93-94% baseline)
 *   2. the same with aspect-preserving letterbox (the project's step to 95%)
 *   3. transfer learning, frozen pretrained backbone + new head (ResNet50V2 in the project, 97%)
 *   4. unfreeze only the last block and fine-tune (99%, no tumour predicted as normal)
 * The only pretrained weights reachable offline are the ImageNet MobileNetV2-0.35 inside the
 * Keras files in ../shared/models, so stages 3-4 use that backbone here; pass --resnet-weights
 * with Keras's resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5 to use ResNet50V2 instead.
 *
 * Data: ../shared/data/brain-mri/Training when present (validation carved out of it, duplicates
 * kept on one side), else synthetic phantoms. Runs on tfjs-node-gpu / tfjs-node when installed,
 * else on wasm with this library's training kernels.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  adaBelief,
  arraySource,
  Compose,
  evaluate,
  fileCheckpointStore,
  findDuplicates,
  folderSource,
  imageFolder,
  loadKerasWeights,
  mobilenetV2,
  progressCallback,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  resnet50v2,
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
    'resnet-weights': { type: 'string' },
  },
});
const here = import.meta.dirname;
const dataDir = values.data ?? resolve(here, '../../../shared/data/brain-mri/Training');
const modelsDir = resolve(here, '../../../shared/models');
const quick = values.quick ?? false;
const epochs = Number(values.epochs ?? (quick ? 3 : 15));
const size = Number(values.size ?? (quick ? 64 : 128));
const out = resolve(values.out ?? 'runs/brain-tumor-mri');
const progress = progressCallback({
  live: Boolean(process.stdout.isTTY),
  redraw: (s) => process.stdout.write(`\r${s.padEnd(100)}`),
});

const backend = await setupBackend('auto');
console.log(`backend: ${backend.name} (${backend.package})`);

interface Split {
  classes: string[];
  train: (fit: 'fill' | 'contain', channels: 1 | 3, s: number) => SampleSource;
  validation: (fit: 'fill' | 'contain', channels: 1 | 3, s: number) => SampleSource;
}

async function loadData(): Promise<Split> {
  if (existsSync(dataDir)) {
    const folder = await imageFolder(dataDir);
    const { samples, exact } = await findDuplicates(folder.samples);
    const pool = quick ? samples.filter((_, i) => i % 8 === 0) : samples;
    const { train: tr, validation: va } = stratifiedSplit(pool, { validation: 0.2, seed: 42 });
    console.log(
      `data: ${dataDir}: ${pool.length} images, ${exact.length} duplicate groups kept on one side; ${tr.length} train / ${va.length} validation`,
    );
    const n = folder.classes.length;
    return {
      classes: folder.classes,
      train: (fit, channels, s) =>
        folderSource(tr, n, { channels, resize: { height: s, width: s, fit }, cache: true }),
      validation: (fit, channels, s) =>
        folderSource(va, n, { channels, resize: { height: s, width: s, fit }, cache: true }),
    };
  }
  console.log(`data: ${dataDir} is absent, using synthetic phantoms`);
  const d = syntheticDataset({ kind: 'brain-mri', perClass: quick ? 60 : 200, size, seed: 1 });
  const { train: tr, validation: va } = stratifiedSplit(d.samples, { validation: 0.2, seed: 42 });
  const src = (s: typeof tr, channels: 1 | 3) =>
    arraySource(
      s.map((x) => ({
        label: x.label,
        pixels:
          channels === 1
            ? x.pixels
            : Float32Array.from({ length: x.pixels.length * 3 }, (_, i) => x.pixels[Math.floor(i / 3)]!),
      })),
      { height: size, width: size, channels, numClasses: d.classes.length },
    );
  return { classes: d.classes, train: (_f, c) => src(tr, c), validation: (_f, c) => src(va, c) };
}

const data = await loadData();
const normalClass = 'notumor';
const summary: Record<string, { accuracy: number; macroF1: number; missed: number; abnormal: number }> = {};

async function report(
  stage: string,
  model: Parameters<typeof evaluate>[0],
  validation: SampleSource,
  preprocess: Rescale,
) {
  const m = await evaluate(model, validation, {
    classNames: data.classes,
    normalClass,
    transform: preprocess,
  });
  await writeEvaluation(m, join(out, stage, 'evaluation'), { classNames: data.classes, title: stage });
  summary[stage] = {
    accuracy: m.report.accuracy,
    macroF1: m.report.macro.f1,
    missed: m.missedFindings!.count,
    abnormal: m.missedFindings!.abnormal,
  };
  console.log(
    `\n[${stage}]\n${m.report.toString()}missed findings (tumour called normal): ${m.missedFindings!.count} of ${m.missedFindings!.abnormal}\n`,
  );
  return m;
}

// Stages 1 and 2: SimpleCNN, grayscale, plain resize vs letterbox.
for (const fit of ['fill', 'contain'] as const) {
  const stage = fit === 'fill' ? '1-simple-cnn-resize' : '2-simple-cnn-letterbox';
  const preprocess = new Rescale({ scale: 1 / 255 });
  const augment = new Compose([new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 }), preprocess], {
    seed: 1,
  });
  const model = simpleCnn({ inputShape: [size, size, 1], numClasses: data.classes.length, seed: 1 });
  const validation = data.validation(fit, 1, size);
  const r = await train({
    model,
    train: data.train(fit, 1, size),
    validation,
    optimizer: adaBelief({ learningRate: 1e-3 }),
    epochs,
    batchSize: 32,
    transform: augment,
    validationTransform: preprocess,
    monitor: 'val_f1',
    checkpoints: fileCheckpointStore(join(out, stage, 'checkpoints')),
    callbacks: [progress],
  });
  await writeTrainingCurves(r.history, join(out, stage, 'training-curves'));
  await report(stage, model, validation, preprocess);
  await saveClassifier(join(out, stage, 'classifier'), {
    model,
    classNames: data.classes,
    decode: { channels: 1, resize: { height: size, width: size, fit } },
    preprocessing: preprocess,
    normalClass,
  });
  model.dispose();
}

// Stages 3 and 4: pretrained backbone, frozen then last block fine-tuned.
const tlSize = quick ? 96 : 160;
const kerasFile = join(modelsDir, 'teachable-machine-busi', 'keras_model.h5');
const resnetWeights = values['resnet-weights'];
if (!resnetWeights && !existsSync(kerasFile)) {
  console.log('stages 3-4 skipped: no pretrained weights (../shared/models absent and no --resnet-weights)');
} else {
  const backbone = resnetWeights
    ? resnet50v2({ inputShape: [tlSize, tlSize, 3] })
    : mobilenetV2({ alpha: 0.35, inputShape: [tlSize, tlSize, 3] });
  const match = await loadKerasWeights(backbone, resnetWeights ?? kerasFile, { allowUnexpected: true });
  console.log(
    `backbone ${backbone.name}: ${match.loaded.length} ImageNet weights loaded from ${resnetWeights ?? kerasFile}`,
  );
  const preprocess = new Rescale({ scale: 1 / 127.5, offset: -1 });
  const validation = data.validation('contain', 3, tlSize);
  const result = await transferLearn({
    backbone,
    numClasses: data.classes.length,
    train: data.train('contain', 3, tlSize),
    validation,
    transform: preprocess,
    validationTransform: preprocess,
    batchSize: 32,
    seed: 1,
    phase1: { epochs, learningRate: 1e-3 },
    phase2: { epochs: Math.max(1, Math.round(epochs / 2)), learningRate: 1e-4, unfreeze: { lastBlocks: 1 } },
    callbacks: [progress],
    log: console.log,
  });
  await writeTrainingCurves(
    [
      ...result.phase1.history,
      ...(result.phase2?.history ?? []).map((h) => ({ ...h, epoch: h.epoch + epochs })),
    ],
    join(out, '3-4-transfer', 'training-curves'),
  );
  await report('4-fine-tuned-last-block', result.model, validation, preprocess);
  await saveClassifier(join(out, '4-fine-tuned-last-block', 'classifier'), {
    model: result.model,
    classNames: data.classes,
    decode: { channels: 3, resize: { height: tlSize, width: tlSize, fit: 'contain' } },
    preprocessing: preprocess,
    normalClass,
  });
}

console.log('\nstage                          accuracy  macro F1  tumours called normal');
for (const [stage, s] of Object.entries(summary)) {
  console.log(
    `${stage.padEnd(30)} ${s.accuracy.toFixed(3).padStart(8)}  ${s.macroF1.toFixed(3).padStart(8)}  ${s.missed}/${s.abnormal}`,
  );
}
console.log(`\npictures and classifiers: ${out}`);
