import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  adaBelief,
  arraySource,
  BACKEND_NAMES,
  Compose,
  cosineDecay,
  evaluateAndSave,
  fileCheckpointStore,
  GaussianBlur,
  gradCam,
  learningRateScheduler,
  RandomHorizontalFlip,
  Rescale,
  SYNTHETIC_NORMAL_CLASS,
  simpleCnn,
  stratifiedSplit,
  syntheticDataset,
  train,
  writeGradCamPng,
} from '../../node.js';
import { type Command, choice, num, parse, str } from '../args.js';
import { backendFlags, out, progress, startBackend } from '../io.js';

export const demo: Command = {
  name: 'demo',
  summary: 'train and evaluate a small CNN on built-in synthetic brain-MRI phantoms',
  usage: `Usage: medimg-classify demo [--out DIR] [--kind brain-mri|breast-ultrasound] [--epochs N] [--backend NAME] [--threads N] [--seed N]

Generates synthetic phantom images (no download), trains a small CNN with AdaBelief, prints the
classification report and missed findings, and writes pictures (training curves, confusion
matrices, ROC curves, Grad-CAM overlays), a review page (evaluation/report.html) and a saved
classifier with the decision rules chosen on validation to --out (default runs/demo).
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)`,
  run: async (argv) => {
    const { values } = parse(demo, argv, {
      out: { type: 'string' },
      kind: { type: 'string' },
      epochs: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      seed: { type: 'string' },
    });
    if (values.help) return out(demo.usage);
    const kind = choice('kind', values.kind, ['brain-mri', 'breast-ultrasound'] as const, 'brain-mri');
    const epochs = num('epochs', values.epochs, 24, { integer: true, min: 1 });
    const seed = num('seed', values.seed, 0, { integer: true });
    const dir = resolve(str(values.out) ?? 'runs/demo');
    const flags = backendFlags(values.backend, values.threads);
    await startBackend(flags);
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
    await evaluateAndSave({
      dir,
      model,
      classNames: data.classes,
      normalClass,
      decode: { channels: 1, resize: { height: size, width: size, fit: 'contain' } },
      preprocessing: preprocess,
      trainTransform: augment,
      validation: source(va),
      history: result.history,
      log: out,
    });
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
    out(`try: medimg-classify predict --model ${join(dir, 'classifier')} IMAGE`);
  },
};
