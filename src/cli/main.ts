#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  arraySource,
  BACKEND_NAMES,
  type BackendName,
  classWeights as balancedWeights,
  Compose,
  cosineDecay,
  type EpochLog,
  evaluate,
  fileCheckpointStore,
  findDuplicates,
  findLeaks,
  folderSource,
  GaussianBlur,
  gradCam,
  imageFolder,
  learningRateScheduler,
  loadClassifier,
  loadKerasWeights,
  MedimgError,
  mobilenetV2,
  progressCallback,
  RandomErasing,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  resnet50v2,
  type SampleSource,
  SYNTHETIC_NORMAL_CLASS,
  saveClassifier,
  setupBackend,
  simpleCnn,
  stratifiedSplit,
  syntheticDataset,
  type Transform,
  train,
  transferLearn,
  VERSION,
  validateSamples,
  writeEvaluation,
  writeGradCamPng,
  writeTrainingCurves,
} from '../node.js';

class UsageError extends Error {}

const out = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};
const err = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

type Values = Record<string, string | boolean | string[] | undefined>;

const HELP: Record<string, string> = {
  main: `medimg-classify ${VERSION}: train and evaluate medical image classifiers on TensorFlow.js

Usage: medimg-classify <command> [options]

Commands:
  demo           train and evaluate a small CNN on built-in synthetic brain-MRI phantoms
  train          train a classifier on a class-per-folder dataset
  evaluate       evaluate a saved classifier on a class-per-folder dataset
  predict        classify image files with a saved classifier (optionally with Grad-CAM)
  inspect-data   counts, sizes, unreadable files, duplicates and leaks of a dataset

Run 'medimg-classify <command> --help' for a command's options.`,
  demo: `Usage: medimg-classify demo [--out DIR] [--kind brain-mri|breast-ultrasound] [--epochs N] [--backend NAME] [--threads N] [--seed N]

Generates synthetic phantom images (no download), trains a small CNN with AdaBelief, prints the
classification report and missed findings, and writes pictures (training curves, confusion
matrices, ROC curves, Grad-CAM overlays) and a saved classifier to --out (default runs/demo).`,
  train: `Usage: medimg-classify train --data DIR [options]

  --data DIR               class-per-folder training data (DIR/<class>/<image>)
  --val DIR                separate validation folder (else --validation-split of --data)
  --validation-split F     fraction held out, stratified, duplicates kept together (default 0.2)
  --model NAME             simple-cnn (default) | resnet50v2 | mobilenetv2
  --alpha A                MobileNetV2 width (default 0.35)
  --weights FILE           Keras .h5 with backbone weights (e.g. ImageNet MobileNetV2-0.35)
  --image-size N           square input size (default 128; 224 for resnet50v2/mobilenetv2)
  --letterbox              keep the aspect ratio and pad (default: stretch)
  --grayscale              1 channel (simple-cnn only; pretrained backbones need RGB)
  --augment LIST           comma list of flip,blur,erase,rotate (default none)
  --optimizer NAME         adabelief (default) | adam
  --lr X                   learning rate (default 1e-3)
  --epochs N               epochs (phase 1 for transfer models; default 10)
  --fine-tune-epochs N     phase 2 epochs with the last block unfrozen (transfer models; default 0)
  --unfreeze-from LAYER    first layer to fine-tune in phase 2 (default: the last block)
  --batch-size N           default 32
  --class-weights          weight the loss by inverse class frequency
  --exclude GLOB           files to ignore, repeatable (e.g. '*_mask*' for BUSI)
  --normal-class NAME      the healthy class, for missed-finding counts
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)
  --threads N              wasm threads (default: every core; 1 = single-threaded build)
  --seed N                 default 0
  --out DIR                output folder (default runs/train)`,
  evaluate: `Usage: medimg-classify evaluate --model DIR --data DIR [--out DIR] [--exclude GLOB] [--backend NAME] [--threads N]

Writes report.txt, report.md, metrics.json, confusion matrices and ROC curves to --out
(default DIR/evaluation).`,
  predict: `Usage: medimg-classify predict --model DIR IMAGE... [--gradcam] [--out DIR] [--json] [--backend NAME] [--threads N]

Prints the class and probabilities of each image, with a warning when the top class is normal
but an abnormal class is close. --gradcam writes a heat-map overlay PNG per image to --out.`,
  'inspect-data': `Usage: medimg-classify inspect-data DIR [--against DIR] [--exclude GLOB] [--near BITS]

Prints class counts, image sizes and channels, unreadable files, DICOM modality, bits,
photometric interpretation and transfer syntax counts, exact (and --near) duplicates,
and with --against, images that also occur in another folder (leaks).`,
};

function parse(
  command: string,
  argv: string[],
  options: ParseArgsConfig['options'],
  positionals = false,
): { values: Values; positionals: string[] } {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify.*$/, '')}\n\n${HELP[command]}`);
  }
}

function num(
  name: string,
  value: string | undefined,
  fallback: number,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (
    !Number.isFinite(v) ||
    (opts.integer && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) ||
    (opts.max !== undefined && v > opts.max)
  ) {
    throw new UsageError(
      `--${name} must be ${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}, got '${value}'`,
    );
  }
  return v;
}

async function backend(name: string | undefined, threads: string | undefined) {
  // tfjs's cpu backend prints an "install tfjs-node" banner on first use; the CLI reports the
  // backend choice itself (with why tfjs-node was skipped), so the banner is only noise here.
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
  const b = (name ?? 'auto') as BackendName;
  if (!(BACKEND_NAMES as readonly string[]).includes(b))
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${b}'`);
  const t = threads === undefined ? undefined : num('threads', threads, 1, { integer: true, min: 1 });
  const info = await setupBackend(b, t === undefined ? {} : { threads: t });
  out(
    `backend: ${info.name} (${info.package}${info.threads ? `, ${info.threads} thread${info.threads > 1 ? 's' : ''}` : ''})${info.skipped.length ? `; skipped ${info.skipped.map((s) => s.name).join(', ')}` : ''}`,
  );
  if (info.threadsNote) out(`note: ${info.threadsNote}`);
  return info;
}

function progress() {
  const live = Boolean(process.stdout.isTTY);
  return progressCallback({
    live,
    redraw: (s) => process.stdout.write(`\r${s.padEnd(100)}${s ? '' : '\r'}`),
    write: out,
  });
}

function augmentations(list: string | undefined, seed: number): Transform[] {
  if (!list) return [];
  return list
    .split(',')
    .map((name) => {
      switch (name.trim()) {
        case 'flip':
          return new RandomHorizontalFlip();
        case 'blur':
          return new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] });
        case 'erase':
          return new RandomErasing({ p: 0.5 });
        case 'rotate':
          return new RandomRotation({ degrees: 10 });
        default:
          throw new UsageError(`--augment: unknown augmentation '${name}' (flip, blur, erase, rotate)`);
      }
    })
    .map((t, i) => {
      t.reseed(seed + i);
      return t;
    });
}

async function printEvaluation(
  metrics: Awaited<ReturnType<typeof evaluate>>,
  dir: string,
  classNames: string[],
) {
  const { text, files } = await writeEvaluation(metrics, dir, { classNames });
  out(text);
  out(`pictures: ${files.map((f) => f.png).join(', ')}`);
}

async function demo(argv: string[]) {
  const { values } = parse('demo', argv, {
    out: { type: 'string' },
    kind: { type: 'string' },
    epochs: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
  });
  if (values.help) return out(HELP.demo);
  const kind = (values.kind ?? 'brain-mri') as 'brain-mri' | 'breast-ultrasound';
  if (kind !== 'brain-mri' && kind !== 'breast-ultrasound')
    throw new UsageError(`--kind must be brain-mri or breast-ultrasound, got '${kind}'`);
  const epochs = num('epochs', values.epochs as string | undefined, 24, { integer: true, min: 1 });
  const seed = num('seed', values.seed as string | undefined, 0, { integer: true });
  const dir = resolve((values.out as string | undefined) ?? 'runs/demo');
  await backend(values.backend as string | undefined, values.threads as string | undefined);
  const size = 48;
  const data = syntheticDataset({ kind, perClass: 100, size, seed: seed + 1 });
  const { train: tr, validation: va } = stratifiedSplit(data.samples, { validation: 0.25, seed });
  const source = (s: typeof tr) =>
    arraySource(s, { height: size, width: size, numClasses: data.classes.length });
  out(
    `data: ${data.samples.length} synthetic ${kind} phantoms (${data.classes.join(', ')}), ${size}x${size}; ${tr.length} train / ${va.length} validation`,
  );
  const model = simpleCnn({
    inputShape: [size, size, 1],
    numClasses: data.classes.length,
    filters: [16, 32, 64],
    dense: 64,
    dropout: 0.3,
    seed,
  });
  const preprocess = new Rescale({ scale: 1 / 255 });
  const augment = new Compose(
    [
      new RandomHorizontalFlip(),
      new GaussianBlur({ kernelSize: 3, sigma: [0.1, 1] }),
      new Rescale({ scale: 1 / 255 }),
    ],
    { seed },
  );
  const optimizer = adaBelief({ learningRate: 2e-3 });
  const started = Date.now();
  const result = await train({
    model,
    train: source(tr),
    validation: source(va),
    optimizer,
    epochs,
    batchSize: 16,
    transform: augment,
    validationTransform: preprocess,
    seed,
    monitor: 'val_f1',
    checkpoints: fileCheckpointStore(join(dir, 'checkpoints')),
    callbacks: [
      learningRateScheduler(optimizer, cosineDecay({ initial: 2e-3, epochs, minLearningRate: 1e-4 })),
      progress(),
    ],
  });
  out(
    `trained ${result.epochsRun} epochs in ${((Date.now() - started) / 1000).toFixed(0)}s; best val_f1 ${result.best?.toFixed(4)} at epoch ${(result.bestEpoch ?? 0) + 1}`,
  );
  const normalClass = SYNTHETIC_NORMAL_CLASS[kind];
  const metrics = await evaluate(model, source(va), {
    classNames: data.classes,
    normalClass,
    transform: preprocess,
  });
  await printEvaluation(metrics, join(dir, 'evaluation'), data.classes);
  const curves = await writeTrainingCurves(result.history, join(dir, 'training-curves'));
  out(`training curves: ${curves.png}`);
  await writeFile(join(dir, 'history.json'), `${JSON.stringify(result.history, null, 2)}\n`);
  // Grad-CAM of one validation image per class.
  await mkdir(join(dir, 'gradcam'), { recursive: true });
  for (let c = 0; c < data.classes.length; c++) {
    const sample = va.find((s) => s.label === c);
    if (!sample) continue;
    const image = tf.tensor3d(sample.pixels, [size, size, 1]);
    const x = preprocess.apply(image);
    const cam = gradCam(model, x);
    await writeGradCamPng(image, cam.heatmap, join(dir, 'gradcam', `${data.classes[c]}.png`));
    tf.dispose([image, x, cam.heatmap]);
  }
  out(`Grad-CAM overlays: ${join(dir, 'gradcam')}`);
  await saveClassifier(join(dir, 'classifier'), {
    model,
    classNames: data.classes,
    decode: { channels: 1, resize: { height: size, width: size, fit: 'contain' } },
    preprocessing: preprocess,
    normalClass,
    metrics: { accuracy: metrics.report.accuracy, macroF1: metrics.report.macro.f1 },
  });
  out(
    `saved classifier: ${join(dir, 'classifier')} (try: medimg-classify predict --model ${join(dir, 'classifier')} IMAGE)`,
  );
}

async function trainCommand(argv: string[]) {
  const { values } = parse('train', argv, {
    data: { type: 'string' },
    val: { type: 'string' },
    'validation-split': { type: 'string' },
    model: { type: 'string' },
    alpha: { type: 'string' },
    weights: { type: 'string' },
    'image-size': { type: 'string' },
    letterbox: { type: 'boolean' },
    grayscale: { type: 'boolean' },
    augment: { type: 'string' },
    optimizer: { type: 'string' },
    lr: { type: 'string' },
    epochs: { type: 'string' },
    'fine-tune-epochs': { type: 'string' },
    'unfreeze-from': { type: 'string' },
    'batch-size': { type: 'string' },
    'class-weights': { type: 'boolean' },
    exclude: { type: 'string', multiple: true },
    'normal-class': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) return out(HELP.train);
  if (!values.data) throw new UsageError(`--data is required\n\n${HELP.train}`);
  const modelName = (values.model as string | undefined) ?? 'simple-cnn';
  if (!['simple-cnn', 'resnet50v2', 'mobilenetv2'].includes(modelName))
    throw new UsageError(`--model must be simple-cnn, resnet50v2 or mobilenetv2, got '${modelName}'`);
  const pretrainedArch = modelName !== 'simple-cnn';
  if (pretrainedArch && values.grayscale)
    throw new UsageError('--grayscale works with --model simple-cnn only (pretrained backbones expect RGB)');
  const size = num('image-size', values['image-size'] as string | undefined, pretrainedArch ? 224 : 128, {
    integer: true,
    min: 32,
  });
  const seed = num('seed', values.seed as string | undefined, 0, { integer: true });
  const epochs = num('epochs', values.epochs as string | undefined, 10, { integer: true, min: 1 });
  const batchSize = num('batch-size', values['batch-size'] as string | undefined, 32, {
    integer: true,
    min: 1,
  });
  const lr = num('lr', values.lr as string | undefined, 1e-3, { min: 0 });
  const split = num('validation-split', values['validation-split'] as string | undefined, 0.2, {
    min: 0.01,
    max: 0.9,
  });
  const optimizerName = (values.optimizer as string | undefined) ?? 'adabelief';
  if (!['adabelief', 'adam'].includes(optimizerName))
    throw new UsageError(`--optimizer must be adabelief or adam, got '${optimizerName}'`);
  const makeOptimizer = (rate: number) =>
    optimizerName === 'adam' ? tf.train.adam(rate) : adaBelief({ learningRate: rate });
  const dir = resolve((values.out as string | undefined) ?? 'runs/train');
  await backend(values.backend as string | undefined, values.threads as string | undefined);
  const exclude = (values.exclude as string[] | undefined) ?? [];
  const folder = await imageFolder(values.data as string, { exclude });
  const channels: 1 | 3 = values.grayscale ? 1 : 3;
  const decode = {
    channels,
    resize: { height: size, width: size, fit: values.letterbox ? ('contain' as const) : ('fill' as const) },
  };
  out(
    `data: ${folder.samples.length} images in ${folder.classes.length} classes (${folder.classes.join(', ')})`,
  );
  const checked = await validateSamples(folder.samples, { ...decode, onError: 'skip' });
  for (const s of checked.skipped) err(`skipped ${s.path}: ${s.reason}`);
  let trainSamples = checked.ok;
  let valSamples: typeof trainSamples;
  if (values.val) {
    const v = await imageFolder(values.val as string, { exclude, classNames: folder.classes });
    valSamples = (await validateSamples(v.samples, { ...decode, onError: 'skip' })).ok;
  } else {
    const dups = await findDuplicates(trainSamples);
    const parts = stratifiedSplit(dups.samples, { validation: split, seed });
    trainSamples = parts.train;
    valSamples = parts.validation;
    out(
      `split: ${trainSamples.length} train / ${valSamples.length} validation (${dups.exact.length} duplicate groups kept on one side)`,
    );
  }
  const n = folder.classes.length;
  const trainSource: SampleSource = folderSource(trainSamples, n, { ...decode, cache: true });
  const valSource: SampleSource = folderSource(valSamples, n, { ...decode, cache: true });
  const preprocess = pretrainedArch
    ? new Rescale({ scale: 1 / 127.5, offset: -1 })
    : new Rescale({ scale: 1 / 255 });
  const augment = augmentations(values.augment as string | undefined, seed);
  const transform = augment.length ? new Compose([...augment, preprocess], { seed }) : preprocess;
  const weights = values['class-weights'] ? balancedWeights(trainSamples, n) : undefined;
  const normalClass = values['normal-class'] as string | undefined;
  if (normalClass && !folder.classes.includes(normalClass))
    throw new UsageError(`--normal-class '${normalClass}' is not one of ${folder.classes.join(', ')}`);
  let model: tfl.LayersModel;
  let history: EpochLog[];
  if (!pretrainedArch) {
    model = simpleCnn({ inputShape: [size, size, channels], numClasses: n, seed });
    const result = await train({
      model,
      train: trainSource,
      validation: valSource,
      optimizer: makeOptimizer(lr),
      epochs,
      batchSize,
      transform,
      validationTransform: preprocess,
      seed,
      ...(weights ? { classWeights: weights } : {}),
      checkpoints: fileCheckpointStore(join(dir, 'checkpoints')),
      callbacks: [progress()],
    });
    history = result.history;
  } else {
    const backbone =
      modelName === 'resnet50v2'
        ? resnet50v2({ inputShape: [size, size, 3], seed })
        : mobilenetV2({
            alpha: num('alpha', values.alpha as string | undefined, 0.35),
            inputShape: [size, size, 3],
            seed,
          });
    if (values.weights) {
      const match = await loadKerasWeights(backbone, values.weights as string, { allowUnexpected: true });
      out(`loaded ${match.loaded.length} backbone weights from ${values.weights}`);
    } else out('warning: no --weights given: the backbone starts from random weights');
    const fineTune = num('fine-tune-epochs', values['fine-tune-epochs'] as string | undefined, 0, {
      integer: true,
      min: 0,
    });
    const unfreezeFrom = values['unfreeze-from'] as string | undefined;
    const result = await transferLearn({
      backbone,
      numClasses: n,
      train: trainSource,
      validation: valSource,
      transform,
      validationTransform: preprocess,
      batchSize,
      seed,
      ...(weights ? { classWeights: weights } : {}),
      phase1: { epochs, optimizer: makeOptimizer(lr) },
      phase2: {
        epochs: fineTune,
        optimizer: makeOptimizer(lr / 10),
        ...(unfreezeFrom ? { unfreeze: { from: unfreezeFrom } } : {}),
      },
      checkpoints: {
        phase1: fileCheckpointStore(join(dir, 'checkpoints', 'phase1')),
        phase2: fileCheckpointStore(join(dir, 'checkpoints', 'phase2')),
      },
      callbacks: [progress()],
      log: out,
    });
    model = result.model;
    history = [
      ...result.phase1.history,
      ...(result.phase2?.history.map((h) => ({ ...h, epoch: h.epoch + epochs })) ?? []),
    ];
  }
  const metrics = await evaluate(model, valSource, {
    classNames: folder.classes,
    transform: preprocess,
    ...(normalClass ? { normalClass } : {}),
  });
  await printEvaluation(metrics, join(dir, 'evaluation'), folder.classes);
  const curves = await writeTrainingCurves(history, join(dir, 'training-curves'));
  out(`training curves: ${curves.png}`);
  await saveClassifier(join(dir, 'classifier'), {
    model,
    classNames: folder.classes,
    decode,
    preprocessing: preprocess,
    normalClass: normalClass ?? null,
    metrics: { accuracy: metrics.report.accuracy, macroF1: metrics.report.macro.f1 },
  });
  out(`saved classifier: ${join(dir, 'classifier')}`);
}

async function evaluateCommand(argv: string[]) {
  const { values } = parse('evaluate', argv, {
    model: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    exclude: { type: 'string', multiple: true },
    backend: { type: 'string' },
    threads: { type: 'string' },
  });
  if (values.help) return out(HELP.evaluate);
  if (!values.model || !values.data)
    throw new UsageError(`--model and --data are required\n\n${HELP.evaluate}`);
  await backend(values.backend as string | undefined, values.threads as string | undefined);
  const clf = await loadClassifier(values.model as string);
  const folder = await imageFolder(values.data as string, {
    exclude: (values.exclude as string[] | undefined) ?? [],
    classNames: clf.meta.classNames,
  });
  const source = folderSource(folder.samples, folder.classes.length, clf.meta.decode);
  const metrics = await evaluate(clf.model, source, {
    classNames: clf.meta.classNames,
    ...(clf.preprocessing ? { transform: clf.preprocessing } : {}),
    ...(clf.meta.normalClass ? { normalClass: clf.meta.normalClass } : {}),
  });
  await printEvaluation(
    metrics,
    resolve((values.out as string | undefined) ?? join(values.model as string, 'evaluation')),
    clf.meta.classNames,
  );
}

async function predictCommand(argv: string[]) {
  const { values, positionals } = parse(
    'predict',
    argv,
    {
      model: { type: 'string' },
      gradcam: { type: 'boolean' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      backend: { type: 'string' },
      threads: { type: 'string' },
    },
    true,
  );
  if (values.help) return out(HELP.predict);
  if (!values.model) throw new UsageError(`--model is required\n\n${HELP.predict}`);
  if (!positionals.length) throw new UsageError(`give at least one IMAGE\n\n${HELP.predict}`);
  await backend(values.backend as string | undefined, values.threads as string | undefined);
  const clf = await loadClassifier(values.model as string);
  const dir = resolve((values.out as string | undefined) ?? 'runs/predict');
  const results = [];
  for (const path of positionals) {
    const p = await clf.predict(path);
    results.push({ path, ...p });
    if (!values.json) {
      out(
        `${path}: ${p.className} (${Object.entries(p.probabilities)
          .map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`)
          .join(', ')})`,
      );
      if (p.warning) out(`  WARNING: ${p.warning}`);
    }
    if (values.gradcam) {
      const { decodeImage } = await import('../data/decode.js');
      const image = await decodeImage(path, clf.meta.decode);
      const x = clf.preprocessing ? clf.preprocessing.apply(image) : image;
      const cam = gradCam(clf.model, x);
      const file = join(
        dir,
        `${path
          .split('/')
          .pop()
          ?.replace(/\.[^.]+$/, '')}-gradcam.png`,
      );
      await writeGradCamPng(image, cam.heatmap, file);
      if (!values.json) out(`  Grad-CAM: ${file}`);
      tf.dispose([image, x, cam.heatmap]);
    }
  }
  if (values.json) out(JSON.stringify(results, null, 2));
}

async function inspectCommand(argv: string[]) {
  const { values, positionals } = parse(
    'inspect-data',
    argv,
    { against: { type: 'string' }, exclude: { type: 'string', multiple: true }, near: { type: 'string' } },
    true,
  );
  if (values.help) return out(HELP['inspect-data']);
  if (positionals.length !== 1) throw new UsageError(`give exactly one DIR\n\n${HELP['inspect-data']}`);
  const exclude = (values.exclude as string[] | undefined) ?? [];
  const folder = await imageFolder(positionals[0] as string, { exclude });
  out(`${folder.root}: ${folder.samples.length} images in ${folder.classes.length} classes`);
  for (const [i, c] of folder.classes.entries())
    out(`  ${c}: ${folder.samples.filter((s) => s.label === i).length}`);
  const { decodePixels } = await import('../data/decode.js');
  const sizes = new Map<string, number>();
  const channelCounts = new Map<string, number>();
  const { default: sharp } = await import('sharp');
  const { skipped } = await validateSamples(folder.samples, {
    channels: 1,
    onError: 'skip',
    onProgress: () => {},
  });
  for (const s of folder.samples.slice(0, 2000)) {
    try {
      const m = await sharp(s.path).metadata();
      sizes.set(`${m.width}x${m.height}`, (sizes.get(`${m.width}x${m.height}`) ?? 0) + 1);
      channelCounts.set(
        `${m.channels} (${m.format})`,
        (channelCounts.get(`${m.channels} (${m.format})`) ?? 0) + 1,
      );
    } catch {
      // reported as unreadable below
    }
  }
  void decodePixels;
  out(`channels: ${[...channelCounts].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  out(
    `sizes: ${sizes.size} distinct; most common ${[...sizes]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([k, v]) => `${k} (${v})`)
      .join(', ')}`,
  );
  out(`unreadable: ${skipped.length}`);
  for (const s of skipped) out(`  ${s.path}: ${s.reason}`);
  const { formatDicomSummary, summarizeDicom } = await import('../data/dicom-file.js');
  for (const line of formatDicomSummary(await summarizeDicom(folder.samples.map((s) => s.path)))) out(line);
  const near =
    values.near === undefined
      ? undefined
      : num('near', values.near as string, 4, { integer: true, min: 0, max: 64 });
  const dups = await findDuplicates(folder.samples, near === undefined ? {} : { near });
  out(`exact duplicate groups: ${dups.exact.length} (${dups.exact.reduce((a, g) => a + g.length, 0)} files)`);
  for (const g of dups.exact.slice(0, 20)) out(`  ${g.map((s) => s.path).join('  ==  ')}`);
  if (near !== undefined) out(`near-duplicate groups (dHash <= ${near} bits): ${dups.near.length}`);
  if (values.against) {
    const other = await imageFolder(values.against as string, { exclude });
    const b = await findDuplicates(other.samples);
    const leaks = findLeaks(dups.samples, b.samples);
    out(`leaks against ${values.against}: ${leaks.length}`);
    for (const l of leaks.slice(0, 20))
      out(`  ${l.sample.path}  ==  ${l.matches.map((m) => m.path).join(', ')}`);
  }
}

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  demo,
  train: trainCommand,
  evaluate: evaluateCommand,
  predict: predictCommand,
  'inspect-data': inspectCommand,
};

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    out(HELP.main);
    return command ? 0 : 1;
  }
  if (command === '--version') {
    out(VERSION);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    err(`medimg-classify: unknown command '${command}'\n\n${HELP.main}`);
    return 2;
  }
  try {
    await run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`medimg-classify ${command}: ${error.message}`);
      return 2;
    }
    if (error instanceof MedimgError) {
      err(`medimg-classify ${command}: ${error.message}`);
      return 1;
    }
    err(`medimg-classify ${command}: unexpected error: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}

// Run when executed directly (the npm bin), not when imported by tests.
const invokedDirectly =
  process.argv[1] && /(?:^|[\\/])(cli\.(?:c?js|ts)|main\.ts|medimg-classify)$/.test(process.argv[1]);
if (invokedDirectly) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
