/**
 * Why a short BUSI run with AdaBelief learns slowly: the head of a frozen MobileNetV2-0.35 trained
 * on the backbone's cached features (fold 1 of 5), with AdaBelief as published (rectify on),
 * AdaBelief without rectification, and Adam, same seed, same data. Prints training / validation
 * accuracy (%) at epochs 1, 5, 10, 20 and 30.
 *
 *   npm run build && npx tsx examples/breast-ultrasound/head-optimizers.ts
 *
 * With 499 training images and batch 32 an epoch is 16 steps. AdaBelief's rectification (RAdam's
 * variance warm-up) scales each step by about sqrt(t / 2000) for the first few hundred steps, so
 * 10 epochs (160 steps) move the head several times less than Adam does.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  arraySource,
  batches,
  classWeights,
  createBackbone,
  folderSource,
  loadKerasWeights,
  Rescale,
  setupBackend,
  stratifiedKFold,
  train,
} from 'medimg-classify/node';
import { readDataset, SHARED } from '../common.js';

const dataDir = join(SHARED, 'data/busi/images');
const h5 = join(SHARED, 'models/teachable-machine-busi/keras_model.h5');
if (!existsSync(dataDir) || !existsSync(h5)) {
  console.log('needs ../shared/data/busi and ../shared/models (absent): nothing to do');
  process.exit(0);
}
await setupBackend('auto');
const data = await readDataset(dataDir, ['*_mask*']);
const fold = stratifiedKFold(data.samples, { folds: 5, seed: 42 })[0]!;
const decode = { channels: 3 as const, resize: { height: 224, width: 224, fit: 'contain' as const } };
const backbone = createBackbone('mobilenetv2', { alpha: 0.35 });
await loadKerasWeights(backbone, h5, { allowUnexpected: true });
const preprocess = new Rescale({ scale: 1 / 127.5, offset: -1 });

/** Global-average-pooled backbone features, computed once. */
async function features(samples: typeof fold.train) {
  const out: { pixels: Float32Array; label: number }[] = [];
  for await (const b of batches(folderSource(samples, 3, decode), { batchSize: 32, transform: preprocess })) {
    const pooled = tf.tidy(() => tf.mean(backbone.predict(b.xs) as tf.Tensor, [1, 2]));
    const d = pooled.dataSync();
    const k = d.length / b.labels.length;
    b.labels.forEach((label, i) =>
      out.push({ pixels: Float32Array.from(d.subarray(i * k, (i + 1) * k)), label }),
    );
    tf.dispose([pooled, b.xs, b.ys]);
  }
  return arraySource(out, { height: 1, width: 1, channels: out[0]!.pixels.length, numClasses: 3 });
}
const trainSet = await features(fold.train);
const valSet = await features(fold.validation);
const weights = classWeights(fold.train, 3);

const runs: [string, () => tf.Optimizer][] = [
  ['AdaBelief (rectify, as published)', () => adaBelief({ learningRate: 1e-3 })],
  ['AdaBelief rectify: false', () => adaBelief({ learningRate: 1e-3, rectify: false })],
  ['Adam', () => tf.train.adam(1e-3)],
];
console.log('optimizer                            train/validation accuracy (%) at epochs 1, 5, 10, 20, 30');
for (const [name, optimizer] of runs) {
  const input = tfl.input({ shape: [1, 1, 1280] });
  let x = tfl.layers.flatten().apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.dropout({ rate: 0.2, seed: 1 }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers
    .dense({
      units: 3,
      activation: 'softmax',
      kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
    })
    .apply(x) as tfl.SymbolicTensor;
  const head = tfl.model({ inputs: input, outputs: x });
  const r = await train({
    model: head,
    train: trainSet,
    validation: valSet,
    optimizer: optimizer(),
    epochs: 30,
    batchSize: 32,
    seed: 1,
    classWeights: weights,
  });
  const at = [1, 5, 10, 20, 30].map((e) => r.history[e - 1]!);
  console.log(
    `${name.padEnd(36)} ${at.map((h) => `${(100 * (h.accuracy ?? 0)).toFixed(0)}/${(100 * (h.val_accuracy ?? 0)).toFixed(0)}`).join('  ')}`,
  );
  head.dispose();
}
