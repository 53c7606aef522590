import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  BACKBONE_NAMES,
  BACKEND_NAMES,
  type BackboneSpec,
  type BatchNormPolicy,
  backboneSpec,
  classWeights as balancedWeights,
  blockNames,
  Compose,
  cosineDecay,
  createBackbone,
  type DecodeSpec,
  type EpochLog,
  evaluateAndSave,
  type FolderSample,
  fileCheckpointStore,
  findDuplicates,
  findLeaks,
  flattenLayers,
  folderSource,
  GaussianBlur,
  hashSamples,
  learningRateScheduler,
  loadKerasWeights,
  loadPretrained,
  MedimgError,
  RandomErasing,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  reduceLearningRateOnPlateau,
  type SampleSource,
  simpleCnn,
  stepDecay,
  stratifiedSplit,
  type TrainCallbacks,
  type Transform,
  train,
  transferLearn,
  VERSION,
  validateSamples,
  withoutLeaks,
  writeFileAtomic,
} from '../../node.js';
import { type Command, choice, num, parse, str, UsageError, type Values } from '../args.js';
import { readData } from '../data.js';
import { backendFlags, err, out, progress, startBackend, ttaFlag } from '../io.js';

const AUGMENTATIONS = ['flip', 'blur', 'erase', 'rotate'] as const;
const MONITORS = ['val_loss', 'val_accuracy', 'val_f1', 'loss', 'accuracy', 'f1'] as const;
const SCHEDULES = ['none', 'cosine', 'step', 'plateau'] as const;

export const trainCmd: Command = {
  name: 'train',
  summary: 'train a classifier on a class-per-folder dataset or a CSV manifest',
  usage: `Usage: medimg-classify train --data DIR|CSV [options]

  --data DIR|CSV           class-per-folder training data (DIR/<class>/<image>, sub-folders
                           included), or a CSV manifest with a header row path,label[,split]
                           (paths relative to the CSV's folder). With a split column, its
                           train/validation/test rows are used instead of a random split
  --val DIR|CSV            separate validation data (else --validation-split of --data)
  --validation-split F     fraction held out, stratified, duplicates kept together (default 0.2)
  --test DIR|CSV           held-out test data, scored once at the end and reported separately;
                           its files that duplicate training files are left out (and counted)
  --model NAME             simple-cnn (default) | ${BACKBONE_NAMES.join(' | ')}
  --alpha A                MobileNetV2 width (default 0.35)
  --weights imagenet|FILE  pretrained backbone weights: 'imagenet' downloads Keras's published
                           file once into the cache (MEDIMG_CACHE, default ~/.cache/medimg-classify),
                           FILE is a Keras .h5 (e.g. the ImageNet MobileNetV2-0.35 of a Teachable
                           Machine export)
  --image-size N           square input size (default 128; the backbone's own for pretrained models)
  --letterbox              keep the aspect ratio and pad (default: stretch)
  --grayscale              1 channel (simple-cnn only; pretrained backbones need RGB)
  --augment LIST           comma list of ${AUGMENTATIONS.join(',')} (default none)
  --optimizer NAME         adabelief (default) | adam
  --lr X                   learning rate (default 1e-3)
  --lr-schedule NAME       ${SCHEDULES.join(' | ')} (default none)
  --epochs N               epochs (phase 1 for transfer models: frozen backbone, new head;
                           default 10; 0 skips phase 1 when --fine-tune-epochs is given)
  --fine-tune-epochs N     phase 2 epochs with the last block unfrozen (transfer models; default 0)
  --fine-tune-lr X         phase 2 learning rate (default --lr / 10)
  --unfreeze-from LAYER    first layer to fine-tune in phase 2 (default: the backbone's last
                           block from the registry, e.g. block_13_expand for MobileNetV2)
  --batchnorm POLICY       unfrozen BatchNorm layers in phase 2: a momentum (default 0.9),
                           'train' (the model's own momentum) or 'frozen' (inference mode)
  --no-recalibrate         skip recomputing BatchNorm statistics after fine-tuning
  --batch-size N           default 32
  --class-weights          weight the loss by inverse class frequency
  --monitor METRIC         ${MONITORS.join(' | ')}: picks the best epoch (default val_loss)
  --patience N             stop after N epochs without improvement of --monitor
  --resume                 continue the run in --out from its last checkpoint
  --exclude GLOB           files or folders to ignore, repeatable (e.g. '*_mask*' for BUSI)
  --normal-class NAME      the healthy class, for missed-finding counts and the abnormal-vs-normal
                           threshold saved with the classifier
  --sensitivity X          the threshold on P(not normal) is the largest reaching sensitivity X on
                           validation (default 1: misses no abnormal validation image); predict
                           then decides with it
  --refer-accuracy A       refer-to-a-human cut-off: keeps the most validation images at accuracy
                           A (default 0.99)
  --tta N                  evaluate (and predict) on each image and its horizontal flip (2, needs
                           --augment flip), or not (1, default)
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)
  --threads N              wasm threads (default: every core; 1 = single-threaded build)
  --seed N                 default 0
  --out DIR                output folder (default: a new numbered folder runs/train-NNN)

Hidden files, OS litter (.DS_Store, __MACOSX, .ipynb_checkpoints, ...) and non-images are left
out of folders, and the run says how many and which. Unreadable images are named and skipped.
Writes run.json (command, options, seed, versions, data hash, split), checkpoints, evaluation/
(validation, with report.html: one self-contained review page), test-evaluation/ (with --test),
training curves and classifier/ (with the temperature, threshold and referral cut-off chosen on
validation) to the run folder.`,
  run: (argv) => trainCommand(argv),
};

/** Every flag of `train`, checked before any image is read. */
interface TrainPlan {
  data: string;
  val?: string;
  test?: string;
  split: number;
  model: string;
  alpha: number;
  weights?: string;
  size: number;
  letterbox: boolean;
  channels: 1 | 3;
  augment: (typeof AUGMENTATIONS)[number][];
  optimizer: 'adabelief' | 'adam';
  lr: number;
  schedule: (typeof SCHEDULES)[number];
  epochs: number;
  fineTuneEpochs: number;
  fineTuneLr: number;
  unfreezeFrom?: string;
  batchNorm: BatchNormPolicy;
  recalibrate: boolean;
  batchSize: number;
  classWeights: boolean;
  monitor: (typeof MONITORS)[number];
  patience?: number;
  resume: boolean;
  exclude: string[];
  normalClass?: string;
  sensitivity: number;
  referAccuracy: number;
  tta: 1 | 2;
  backend: ReturnType<typeof backendFlags>;
  seed: number;
  out?: string;
}

function plan(values: Values): TrainPlan {
  const data = str(values.data);
  if (!data) throw new UsageError(`--data is required\n\n${trainCmd.usage}`);
  const model = choice('model', values.model, ['simple-cnn', ...BACKBONE_NAMES], 'simple-cnn');
  const pretrained = model !== 'simple-cnn';
  const spec = pretrained ? backboneSpec(model) : undefined;
  if (pretrained && values.grayscale)
    throw new UsageError('--grayscale works with --model simple-cnn only (pretrained backbones expect RGB)');
  const augment = (str(values.augment) ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
    .map((a) => {
      if (!(AUGMENTATIONS as readonly string[]).includes(a))
        throw new UsageError(`--augment: unknown augmentation '${a}' (${AUGMENTATIONS.join(', ')})`);
      return a as (typeof AUGMENTATIONS)[number];
    });
  const bnFlag = str(values.batchnorm);
  let batchNorm: BatchNormPolicy = { momentum: 0.9 };
  if (bnFlag === 'frozen' || bnFlag === 'train') batchNorm = bnFlag;
  else if (bnFlag !== undefined) {
    const m = Number(bnFlag);
    if (!(bnFlag.trim() !== '' && m >= 0 && m < 1))
      throw new UsageError(`--batchnorm must be a momentum in [0, 1), 'train' or 'frozen', got '${bnFlag}'`);
    batchNorm = { momentum: m };
  }
  const resume = Boolean(values.resume);
  if (resume && !str(values.out))
    throw new UsageError('--resume needs --out DIR: the folder of the run to continue');
  if (values['fine-tune-epochs'] !== undefined && !pretrained)
    throw new UsageError(
      `--fine-tune-epochs works with a pretrained backbone (--model ${BACKBONE_NAMES.join(', ')})`,
    );
  if (pretrained && values.epochs === '0' && !(Number(values['fine-tune-epochs'] ?? 0) > 0))
    throw new UsageError('--epochs 0 skips phase 1: give --fine-tune-epochs N (N >= 1) for phase 2');
  const patience =
    values.patience === undefined
      ? undefined
      : num('patience', values.patience, 1, { integer: true, min: 1 });
  const p: Omit<TrainPlan, 'fineTuneLr'> & { fineTuneLr?: number } = {
    data,
    split: num('validation-split', values['validation-split'], 0.2, { min: 0.01, max: 0.9 }),
    model,
    alpha: num('alpha', values.alpha, 0.35, { min: 0, minExclusive: true }),
    size: num('image-size', values['image-size'], spec?.inputSize ?? 128, { integer: true, min: 32 }),
    letterbox: Boolean(values.letterbox),
    channels: values.grayscale ? 1 : 3,
    augment,
    optimizer: choice('optimizer', values.optimizer, ['adabelief', 'adam'] as const, 'adabelief'),
    lr: num('lr', values.lr, 1e-3, { min: 0, minExclusive: true }),
    schedule: choice('lr-schedule', values['lr-schedule'], SCHEDULES, 'none'),
    epochs: num('epochs', values.epochs, 10, { integer: true, min: pretrained ? 0 : 1 }),
    fineTuneEpochs: num('fine-tune-epochs', values['fine-tune-epochs'], 0, { integer: true, min: 0 }),
    batchNorm,
    recalibrate: !values['no-recalibrate'],
    batchSize: num('batch-size', values['batch-size'], 32, { integer: true, min: 1 }),
    classWeights: Boolean(values['class-weights']),
    monitor: choice('monitor', values.monitor, MONITORS, 'val_loss'),
    resume,
    exclude: (values.exclude as string[] | undefined) ?? [],
    sensitivity: num('sensitivity', values.sensitivity, 1, { min: 0, minExclusive: true, max: 1 }),
    referAccuracy: num('refer-accuracy', values['refer-accuracy'], 0.99, {
      min: 0,
      minExclusive: true,
      max: 1,
    }),
    tta: ttaFlag(values.tta) ?? 1,
    backend: backendFlags(values.backend, values.threads),
    seed: num('seed', values.seed, 0, { integer: true }),
  };
  p.fineTuneLr = num('fine-tune-lr', values['fine-tune-lr'], p.lr / 10, { min: 0, minExclusive: true });
  if (values['fine-tune-lr'] !== undefined && !pretrained)
    throw new UsageError('--fine-tune-lr works with a pretrained backbone');

  if (values.alpha !== undefined && !spec?.alphas)
    throw new UsageError('--alpha works with --model mobilenetv2 only');
  if (spec?.alphas && !spec.alphas.includes(p.alpha))
    throw new UsageError(`--alpha must be one of ${spec.alphas.join(', ')}, got '${String(values.alpha)}'`);
  if (values.weights !== undefined && !pretrained)
    throw new UsageError(`--weights works with a pretrained backbone (--model ${BACKBONE_NAMES.join(', ')})`);
  if (values['unfreeze-from'] !== undefined && !pretrained)
    throw new UsageError('--unfreeze-from works with a pretrained backbone');
  if (p.tta === 2 && !p.augment.includes('flip'))
    throw new UsageError(
      "--tta 2 averages each image and its horizontal flip, a view the model has to be trained on: add 'flip' to --augment",
    );
  const optional = {
    val: str(values.val),
    test: str(values.test),
    weights: str(values.weights),
    unfreezeFrom: str(values['unfreeze-from']),
    normalClass: str(values['normal-class']),
    out: str(values.out),
    patience,
  };
  for (const [k, v] of Object.entries(optional))
    if (v !== undefined) (p as unknown as Values)[k] = v as string;
  const weightsFile = optional.weights !== 'imagenet' ? optional.weights : undefined;
  if (weightsFile !== undefined) {
    const info = statSync(weightsFile, { throwIfNoEntry: false });
    if (!info?.isFile())
      throw new UsageError(
        `--weights: cannot read ${weightsFile}: ${info ? 'a folder, not a file' : 'ENOENT (no such file)'}; give 'imagenet' or a Keras .h5 file`,
      );
  }
  if (resume && optional.out) {
    // The checkpoints train (SimpleCNN) or transferLearn (its two phases) continue from.
    const dir = resolve(optional.out);
    const last = (pretrained ? ['phase1', 'phase2'] : ['']).map((phase) =>
      join('checkpoints', phase, 'last.ckpt'),
    );
    if (!last.some((f) => existsSync(join(dir, f))))
      throw new UsageError(
        `--resume: ${dir} has no checkpoint to continue from (no ${last.join(' or ')}); leave out --resume to start a new run`,
      );
  }
  return p as TrainPlan;
}

/** The next free `runs/train-NNN` folder. */
async function numberedRunFolder(base = 'runs', prefix = 'train'): Promise<string> {
  const names = await readdir(base).catch(() => [] as string[]);
  const used = names.map((n) => /^train-(\d+)$/.exec(n)?.[1]).filter((n): n is string => n !== undefined);
  const next = used.reduce((m, n) => Math.max(m, Number(n)), 0) + 1;
  return resolve(base, `${prefix}-${String(next).padStart(3, '0')}`);
}

function augmentations(names: TrainPlan['augment'], seed: number): Transform[] {
  return names.map((name, i) => {
    const t = {
      flip: () => new RandomHorizontalFlip(),
      blur: () => new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
      erase: () => new RandomErasing({ p: 0.5 }),
      rotate: () => new RandomRotation({ degrees: 10 }),
    }[name]();
    t.reseed(seed + i);
    return t;
  });
}

function scheduleCallbacks(
  p: TrainPlan,
  optimizer: tf.Optimizer,
  lr: number,
  epochs: number,
): TrainCallbacks[] {
  switch (p.schedule) {
    case 'cosine':
      return [learningRateScheduler(optimizer, cosineDecay({ initial: lr, epochs }))];
    case 'step':
      return [
        learningRateScheduler(
          optimizer,
          stepDecay({ initial: lr, stepSize: Math.max(1, Math.round(epochs / 3)) }),
        ),
      ];
    case 'plateau':
      return [
        reduceLearningRateOnPlateau(optimizer, {
          monitor: p.monitor,
          mode: /loss/.test(p.monitor) ? 'min' : 'max',
          patience: 2,
          factor: 0.3,
        }),
      ];
    default:
      return [];
  }
}

/** Every flag of `train` (parsed strictly: an unknown flag is an error). */
const FLAGS = {
  data: { type: 'string' },
  val: { type: 'string' },
  test: { type: 'string' },
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
  'lr-schedule': { type: 'string' },
  epochs: { type: 'string' },
  'fine-tune-epochs': { type: 'string' },
  'fine-tune-lr': { type: 'string' },
  'unfreeze-from': { type: 'string' },
  batchnorm: { type: 'string' },
  'no-recalibrate': { type: 'boolean' },
  'batch-size': { type: 'string' },
  'class-weights': { type: 'boolean' },
  monitor: { type: 'string' },
  patience: { type: 'string' },
  resume: { type: 'boolean' },
  exclude: { type: 'string', multiple: true },
  'normal-class': { type: 'string' },
  sensitivity: { type: 'string' },
  'refer-accuracy': { type: 'string' },
  tta: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
} satisfies ParseArgsConfig['options'];

type Decode = DecodeSpec;
type HashedSample = FolderSample & { hash: string };

/** The run's samples: train, validation and the held-out test set, with what was left out. */
interface RunData {
  classes: string[];
  train: HashedSample[];
  validation: HashedSample[];
  test?: HashedSample[];
  testLeftOut: string[];
  validationLabel: string;
  testLabel: string | null;
}

async function trainCommand(argv: string[]): Promise<void> {
  const { values } = parse(trainCmd, argv, FLAGS);
  if (values.help) return out(trainCmd.usage);
  const p = plan(values);
  const spec = p.model !== 'simple-cnn' ? backboneSpec(p.model) : undefined;
  const decode: Decode = {
    channels: p.channels,
    resize: { height: p.size, width: p.size, fit: p.letterbox ? 'contain' : 'fill' },
  };
  const listed = await listData(p, values);
  const backend = await startBackend(p.backend);
  // The backbone and its weights before any image is read or anything is written: a failed
  // download or a wrong --unfreeze-from leaves --out as it was.
  const backbone = spec ? await loadBackbone(p, spec) : undefined;
  const dir = p.out ? resolve(p.out) : await numberedRunFolder();
  await mkdir(dir, { recursive: true });
  out(`run folder: ${dir}`);
  const data = await splitData(p, listed, decode);
  const runInfo = runRecord(argv, p, data, backend);
  await writeFileAtomic(join(dir, 'run.json'), `${JSON.stringify(runInfo, null, 2)}\n`);
  // A pretrained backbone's own pipeline (the registry's), x / 255 for a CNN from scratch.
  const preprocess: Transform = spec ? spec.preprocessing() : new Rescale({ scale: 1 / 255 });
  const n = data.classes.length;
  const validation = folderSource(data.validation, n, { ...decode, cache: true });
  const { model, history, transform } = await fitModel(
    p,
    dir,
    data,
    decode,
    preprocess,
    validation,
    backbone,
  );
  const finishedAt = new Date().toISOString();
  await writeFileAtomic(join(dir, 'run.json'), `${JSON.stringify({ ...runInfo, finishedAt }, null, 2)}\n`);
  await evaluateAndSave({
    dir,
    model,
    classNames: data.classes,
    normalClass: p.normalClass ?? null,
    decode,
    preprocessing: preprocess,
    trainTransform: transform,
    validation,
    ...(data.test ? { test: folderSource(data.test, n, decode) } : {}),
    history,
    modelCard: { ...runInfo, split: undefined, finishedAt },
    log: out,
    sensitivity: p.sensitivity,
    referralAccuracy: p.referAccuracy,
    tta: p.tta,
    title: `Model review: ${basename(dir)}`,
  });
}

/**
 * Lists the data (folders or manifests; no image is read): class names, the normal class and a
 * manifest's split column are checked before anything else happens.
 */
async function listData(p: TrainPlan, values: Values) {
  const folder = await readData(p.data, { exclude: p.exclude });
  const classes = folder.classes;
  if (p.normalClass && !classes.includes(p.normalClass))
    throw new UsageError(`--normal-class '${p.normalClass}' is not one of ${classes.join(', ')}`);
  // A manifest's split column: its rows replace --val, --validation-split and --test.
  const rows = (split: string) => folder.samples.filter((s) => s.split === split).length;
  const manifestVal = folder.hasSplit && rows('validation') > 0;
  const manifestTest = folder.hasSplit && rows('test') > 0;
  if (folder.hasSplit && rows('train') === 0)
    throw new MedimgError('train', `${p.data} has a split column but no 'train' rows`);
  if (manifestVal && (p.val || values['validation-split'] !== undefined))
    throw new UsageError(
      `${p.val ? '--val' : '--validation-split'}: ${p.data} already has validation rows (its split column); drop the flag or the split column`,
    );
  if (manifestTest && p.test)
    throw new UsageError(
      `--test: ${p.data} already has test rows (its split column); drop the flag or the split column`,
    );
  const valFolder = p.val ? await readData(p.val, { exclude: p.exclude, classNames: classes }) : undefined;
  const testFolder = p.test ? await readData(p.test, { exclude: p.exclude, classNames: classes }) : undefined;
  return { folder, valFolder, testFolder, manifestVal, manifestTest };
}

/**
 * Decodes every listed image once (unreadable ones are named and skipped), hashes them, and
 * makes the split: the validation folder or manifest rows, else a stratified split with
 * duplicates on one side; the test set without its copies of training files.
 */
async function splitData(
  p: TrainPlan,
  listed: Awaited<ReturnType<typeof listData>>,
  decode: Decode,
): Promise<RunData> {
  const { folder, valFolder, testFolder, manifestVal, manifestTest } = listed;
  const classes = folder.classes;
  out(`data: ${folder.samples.length} images in ${classes.length} classes (${classes.join(', ')})`);
  const checkAll = async <S extends FolderSample>(samples: S[], what: string) => {
    const checked = await validateSamples(samples, {
      ...decode,
      onError: 'skip',
      onProgress: (done, total) => {
        if (process.stdout.isTTY) process.stdout.write(`\rchecking ${what}: ${done}/${total}`);
      },
    });
    if (process.stdout.isTTY) process.stdout.write('\r'.padEnd(60));
    for (const s of checked.skipped) err(`skipped ${s.path}: ${s.reason}`);
    return checked.ok;
  };
  const readable = await checkAll(folder.samples, p.data);
  const unreadableClasses = classes.filter((_, i) => !readable.some((s) => s.label === i));
  if (unreadableClasses.length)
    throw new MedimgError(
      'train',
      `${p.data}: no readable images in class ${unreadableClasses.join(', ')} (see the skipped files above)`,
    );
  const dups = await findDuplicates(readable);
  let train = folder.hasSplit ? dups.samples.filter((s) => s.split === 'train') : dups.samples;
  let validation: HashedSample[];
  if (valFolder) {
    validation = await hashSamples(await checkAll(valFolder.samples, p.val as string));
  } else if (manifestVal) {
    validation = dups.samples.filter((s) => s.split === 'validation');
    const leaks = findLeaks(validation, train).length;
    out(
      `split: ${train.length} train / ${validation.length} validation, from the split column of ${p.data}${leaks ? ` (warning: ${leaks} validation images duplicate training images)` : ''}`,
    );
  } else {
    const parts = stratifiedSplit(train, { validation: p.split, seed: p.seed });
    train = parts.train;
    validation = parts.validation;
    out(
      `split: ${train.length} train / ${validation.length} validation (${dups.exact.length} duplicate groups kept on one side)`,
    );
  }
  const data: RunData = {
    classes,
    train,
    validation,
    testLeftOut: [],
    validationLabel: p.val
      ? resolve(p.val)
      : manifestVal
        ? `validation rows of ${resolve(p.data)}`
        : `${p.split} of --data (seed ${p.seed})`,
    testLabel: p.test ? resolve(p.test) : manifestTest ? `test rows of ${resolve(p.data)}` : null,
  };
  if (testFolder || manifestTest) {
    const hashed = testFolder
      ? await hashSamples(await checkAll(testFolder.samples, p.test as string))
      : dups.samples.filter((s) => s.split === 'test');
    const { kept, dropped } = withoutLeaks(hashed, [...train, ...validation]);
    data.test = kept;
    data.testLeftOut = dropped.map((d) => d.sample.path);
    out(
      `test: ${hashed.length} images in ${testFolder ? p.test : `the test rows of ${p.data}`}; ${dropped.length} duplicate training or validation files and are left out of the score; ${kept.length} scored`,
    );
  }
  return data;
}

/** `run.json`: the command, resolved options, seed, versions, a hash of the data and the split. */
function runRecord(
  argv: string[],
  p: TrainPlan,
  data: RunData,
  backend: { name: string; package: string; threads?: number },
) {
  const rel = (s: { path: string }) => relative(dirname(resolve(p.data)), resolve(s.path));
  const dataHash = createHash('sha256')
    .update(
      [...data.train, ...data.validation]
        .map((s) => `${rel(s)}\t${s.hash}`)
        .sort()
        .join('\n'),
    )
    .digest('hex');
  return {
    command: `medimg-classify train ${argv.join(' ')}`,
    options: p,
    seed: p.seed,
    versions: {
      library: VERSION,
      tfjsCore: tf.version_core,
      tfjsLayers: tfl.version_layers,
      node: process.version,
      backend: { name: backend.name, package: backend.package, threads: backend.threads ?? null },
    },
    data: {
      train: resolve(p.data),
      validation: data.validationLabel,
      test: data.testLabel,
      classes: data.classes,
      sha256: dataHash,
      counts: { train: data.train.length, validation: data.validation.length, test: data.test?.length ?? 0 },
    },
    split: {
      train: data.train.map(rel),
      validation: data.validation.map(rel),
      test: data.test?.map(rel) ?? [],
      testLeftOut: data.testLeftOut,
    },
    startedAt: new Date().toISOString(),
  };
}

/**
 * Builds the backbone `--model` names, checks `--unfreeze-from` against its layers and loads
 * `--weights` (downloading ImageNet weights once into the cache).
 */
async function loadBackbone(p: TrainPlan, spec: BackboneSpec): Promise<tfl.LayersModel> {
  const backbone = createBackbone(p.model, {
    inputShape: [p.size, p.size, 3],
    seed: p.seed,
    ...(spec.alphas ? { alpha: p.alpha } : {}),
  });
  try {
    const layers = flattenLayers(backbone).map((l) => l.name);
    if (p.unfreezeFrom !== undefined && !layers.includes(p.unfreezeFrom)) {
      const firsts = blockNames(backbone).map((b) => layers.find((l) => l.startsWith(`${b}_`)));
      throw new UsageError(
        `--unfreeze-from: ${spec.title} has no layer '${p.unfreezeFrom}'; fine-tune from the first layer of one of its blocks: ${firsts.join(', ')} (default ${spec.lastBlock})`,
      );
    }
    if (p.weights === 'imagenet') {
      const match = await loadPretrained(backbone, p.model, {
        ...(spec.alphas ? { alpha: p.alpha } : {}),
        onProgress: out,
      });
      out(`loaded ${match.loaded.length} ImageNet backbone weights from ${match.path}`);
    } else if (p.weights) {
      const match = await loadKerasWeights(backbone, p.weights, { allowUnexpected: true });
      out(`loaded ${match.loaded.length} backbone weights from ${p.weights}`);
    } else
      out('warning: no --weights given: the backbone starts from random weights (try --weights imagenet)');
  } catch (error) {
    backbone.dispose();
    throw error;
  }
  return backbone;
}

/**
 * Trains the model the flags ask for: SimpleCNN, or `backbone` (built and loaded by
 * {@link loadBackbone}) with the two-phase recipe.
 */
async function fitModel(
  p: TrainPlan,
  dir: string,
  data: RunData,
  decode: Decode,
  preprocess: Transform,
  validation: SampleSource,
  backbone: tfl.LayersModel | undefined,
): Promise<{ model: tfl.LayersModel; history: EpochLog[]; transform: Transform }> {
  const n = data.classes.length;
  const trainSource = folderSource(data.train, n, { ...decode, cache: true });
  const augment = augmentations(p.augment, p.seed);
  const transform = augment.length ? new Compose([...augment, preprocess], { seed: p.seed }) : preprocess;
  const weights = p.classWeights ? balancedWeights(data.train, n) : undefined;
  const makeOptimizer = (rate: number) =>
    p.optimizer === 'adam' ? tf.train.adam(rate) : adaBelief({ learningRate: rate });
  const common = {
    batchSize: p.batchSize,
    seed: p.seed,
    monitor: p.monitor,
    ...(weights ? { classWeights: weights } : {}),
    ...(p.patience ? { earlyStopping: { patience: p.patience } } : {}),
  };
  if (!backbone) {
    const model = simpleCnn({ inputShape: [p.size, p.size, p.channels], numClasses: n, seed: p.seed });
    const optimizer = makeOptimizer(p.lr);
    const result = await train({
      ...common,
      model,
      train: trainSource,
      validation,
      optimizer,
      epochs: p.epochs,
      transform,
      validationTransform: preprocess,
      checkpoints: fileCheckpointStore(join(dir, 'checkpoints')),
      resume: p.resume,
      callbacks: [...scheduleCallbacks(p, optimizer, p.lr, p.epochs), progress()],
    });
    return { model, history: result.history, transform };
  }
  const spec = backboneSpec(p.model);
  const opt1 = makeOptimizer(p.lr);
  const opt2 = makeOptimizer(p.fineTuneLr);
  const result = await transferLearn({
    ...common,
    backbone,
    numClasses: n,
    train: trainSource,
    validation,
    transform,
    validationTransform: preprocess,
    phase1: {
      epochs: p.epochs,
      optimizer: opt1,
      callbacks: p.epochs ? scheduleCallbacks(p, opt1, p.lr, p.epochs) : [],
    },
    phase2: {
      epochs: p.fineTuneEpochs,
      optimizer: opt2,
      batchNorm: p.batchNorm,
      recalibrate: p.recalibrate,
      callbacks: p.fineTuneEpochs ? scheduleCallbacks(p, opt2, p.fineTuneLr, p.fineTuneEpochs) : [],
      unfreeze: { from: p.unfreezeFrom ?? spec.lastBlock },
    },
    checkpoints: {
      phase1: fileCheckpointStore(join(dir, 'checkpoints', 'phase1')),
      phase2: fileCheckpointStore(join(dir, 'checkpoints', 'phase2')),
    },
    resume: p.resume,
    callbacks: [progress()],
    log: out,
  });
  return {
    model: result.model,
    history: [
      ...result.phase1.history,
      ...(result.phase2?.history.map((h) => ({ ...h, epoch: h.epoch + p.epochs })) ?? []),
    ],
    transform,
  };
}
