/**
 * One recipe of `npm run bench -- --recipes`, as a user runs it: `train()` end to end on real
 * images (decoding with a cache, the recipe's per-image augmentation, per-epoch validation),
 * instrumented by phase. Reads a job (JSON) as its argument or, without one, from stdin (a split of
 * thousands of files exceeds Linux's 128 KiB limit on one argument); prints one JSON line.
 *
 *   node --import tsx bench/recipe-run.ts '{"recipe":"brain-finetune","train":[[path,label],...],...}'
 *
 * Phases: `data` is the time the training loop waited for its next batch (decoding and the
 * per-image transforms, minus what prefetching overlapped), `transforms` the time inside the
 * pipeline's `apply`, `decode` the time inside file decoding (overlapped, on libuv's pool),
 * `step` the optimizer step, split into forward / backward / optimizer by timing those parts
 * separately on one batch after training, `frozen` the frozen-feature cache (`train`'s
 * `frozenFeatures`: looking images up, and the frozen layers for those not cached yet; its hits
 * and misses are counted per epoch), `validation` the per-epoch evaluation, `other` the rest.
 * With a cache, forward and backward are timed on the layers after the cut, as a step that hits.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  adaBelief,
  Compose,
  cosineDecay,
  type DecodeSpec,
  folderSource,
  GaussianBlur,
  learningRateScheduler,
  loadKerasWeights,
  mobilenetV2,
  Normalize,
  RandomErasing,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  type SampleSource,
  setupBackend,
  simpleCnn,
  type Transform,
  train,
  transferModel,
  unfreeze,
} from '../src/node.js';
import { FrozenFeatureCache, frozenSplit } from '../src/train/frozen-features.js';
import { stepGflopPerImage } from './common.js';

interface Job {
  recipe: 'brain-finetune' | 'simple-cnn-letterbox' | 'busi';
  train: [string, number][];
  validation: [string, number][];
  classes: string[];
  epochs: number;
  batch: number;
  threads?: number;
  h5: string;
  seed?: number;
  /** `train`'s `frozenFeatures` (default on). */
  frozenFeatures?: boolean;
  /** SimpleCNN's BatchNormalization momentum (default Keras's 0.99). */
  bnMomentum?: number;
}

const job = JSON.parse(process.argv[2] ?? readFileSync(0, 'utf8')) as Job;
const backend = await setupBackend('wasm', job.threads === undefined ? {} : { threads: job.threads });
const n = job.classes.length;
const seed = job.seed ?? 0;

const timers = { transforms: 0, decode: 0, step: 0, frozen: 0, validation: 0 };
const timed = <A extends unknown[], R>(key: keyof typeof timers, fn: (...a: A) => R) =>
  ((...a: A) => {
    const t0 = performance.now();
    const out = fn(...a);
    if (out instanceof Promise)
      return out.finally(() => {
        timers[key] += performance.now() - t0;
      });
    timers[key] += performance.now() - t0;
    return out;
  }) as (...a: A) => R;

function instrument(t: Transform): Transform {
  const apply = t.apply.bind(t);
  t.apply = timed('transforms', apply) as typeof t.apply;
  // Drawn ahead of the pixels (where `train` may skip images): the draw and the deferred apply.
  const draw = t.draw.bind(t);
  t.draw = timed('transforms', (size: Parameters<typeof draw>[0]) => {
    const d = draw(size);
    return d && { ...d, apply: timed('transforms', d.apply.bind(d)) as typeof d.apply };
  });
  return t;
}
function source(list: [string, number][], decode: DecodeSpec): SampleSource {
  const s = folderSource(
    list.map(([path, label]) => ({ path, label })),
    n,
    { ...decode, cache: true },
  );
  return { ...s, load: timed('decode', s.load) };
}

let model: import('@tensorflow/tfjs-layers').LayersModel;
let transform: Transform;
let validationTransform: Transform;
let decode: DecodeSpec;
let optimizer: tf.Optimizer;
const rgb224: DecodeSpec = { channels: 3, resize: { height: 224, width: 224, fit: 'contain' } };
if (job.recipe === 'simple-cnn-letterbox') {
  decode = { channels: 1, resize: { height: 128, width: 128, fit: 'contain' } };
  model = simpleCnn({ inputShape: [128, 128, 1], numClasses: n, seed });
  if (job.bnMomentum !== undefined)
    for (const layer of model.layers)
      if (layer.getClassName() === 'BatchNormalization')
        (layer as unknown as { momentum: number }).momentum = job.bnMomentum;
  validationTransform = new Rescale({ scale: 1 / 255 });
  transform = new Compose(
    [new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 }), validationTransform],
    {
      seed,
    },
  );
  optimizer = tf.train.adam(1e-3);
} else {
  decode = rgb224;
  const backbone = mobilenetV2({ alpha: 0.35, inputShape: [224, 224, 3] });
  await loadKerasWeights(backbone, job.h5, { allowUnexpected: true });
  model = transferModel({ backbone, numClasses: n, seed, dropout: 0.2 });
  unfreeze(model, { from: 'block_13_expand' });
  if (job.recipe === 'brain-finetune') {
    validationTransform = new Rescale({ scale: 1 / 127.5, offset: -1 });
    transform = new Compose([new RandomHorizontalFlip(), validationTransform], { seed });
    optimizer = tf.train.adam(1e-3);
  } else {
    validationTransform = new Compose([
      new Rescale({ scale: 1 / 255 }),
      new Normalize({ mean: [0.5], std: [0.5] }),
    ]);
    transform = new Compose(
      [
        new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
        new RandomErasing({ p: 0.5 }),
        validationTransform,
      ],
      { seed },
    );
    optimizer = adaBelief({ learningRate: 1e-3 });
  }
}
instrument(transform);
const minimize = optimizer.minimize.bind(optimizer);
optimizer.minimize = timed('step', minimize) as typeof optimizer.minimize;

// The cache's lookups (and the frozen layers for images not cached yet) on training batches: the
// first `batchesPerEpoch` calls of an epoch; validation's come after.
const batchesPerEpoch = Math.ceil(job.train.length / job.batch);
let callsThisEpoch = 0;
const cacheCounts = { hits: 0, misses: 0 };
const features = FrozenFeatureCache.prototype.features;
FrozenFeatureCache.prototype.features = function (this: FrozenFeatureCache, batch) {
  if (callsThisEpoch++ >= batchesPerEpoch) return features.call(this, batch);
  const before = this.summary();
  const t0 = performance.now();
  try {
    return features.call(this, batch);
  } finally {
    timers.frozen += performance.now() - t0;
    const after = this.summary();
    cacheCounts.hits += after.hits - before.hits;
    cacheCounts.misses += after.misses - before.misses;
  }
};

let peakRss = 0;
let peakHeap = 0;
const sample = () => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  if (wasm?.HEAPU8) peakHeap = Math.max(peakHeap, wasm.HEAPU8.length);
};
const epochs: {
  epoch: number;
  seconds: number;
  imagesPerSecond: number;
  phases: Record<string, number>;
  frozenFeatures: { hits: number; misses: number };
}[] = [];
let epochStart = 0;
let lastBatchEnd = 0;
let snapshot = { ...timers };
let countsAtStart = { ...cacheCounts };
const trainSource = source(job.train, decode);
const validationSource = source(job.validation, decode);
const result = await train({
  model,
  train: trainSource,
  validation: validationSource,
  optimizer,
  epochs: job.epochs,
  batchSize: job.batch,
  seed,
  transform,
  validationTransform,
  ...(job.frozenFeatures === false ? { frozenFeatures: false } : {}),
  callbacks: [
    learningRateScheduler(optimizer, cosineDecay({ initial: 1e-3, epochs: job.epochs })),
    {
      onEpochBegin: () => {
        epochStart = performance.now();
        snapshot = { ...timers };
        countsAtStart = { ...cacheCounts };
        callsThisEpoch = 0;
      },
      onBatchEnd: () => {
        lastBatchEnd = performance.now();
        sample();
      },
      onEpochEnd: (epoch) => {
        const end = performance.now();
        const d = (k: keyof typeof timers) => (timers[k] - snapshot[k]) / 1000;
        const trainSeconds = (lastBatchEnd - epochStart) / 1000;
        epochs.push({
          epoch,
          seconds: trainSeconds,
          imagesPerSecond: job.train.length / trainSeconds,
          phases: {
            step: d('step'),
            frozen: d('frozen'),
            transforms: d('transforms'),
            decode: d('decode'),
            data: Math.max(0, trainSeconds - d('step') - d('frozen')),
            validation: (end - lastBatchEnd) / 1000,
          },
          frozenFeatures: {
            hits: cacheCounts.hits - countsAtStart.hits,
            misses: cacheCounts.misses - countsAtStart.misses,
          },
        });
      },
    },
  ],
});

// Split a step into forward, backward and optimizer, timed on one batch of the same shape.
const [h, w, c] = model.inputs[0]!.shape.slice(1) as number[];
const xs = tf.randomUniform([job.batch, h!, w!, c!], -1, 1, 'float32', 1);
const ys = tf.oneHot(
  tf.tensor1d(
    Array.from({ length: job.batch }, (_, i) => i % n),
    'int32',
  ),
  n,
);
const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
// As the last epoch's training steps ran: from the cached cut where the cache served them.
const cutSplit = (epochs.at(-1)?.frozenFeatures.hits ?? 0) > 0 ? frozenSplit(model) : null;
const cut = cutSplit ? cutSplit.prefix(xs) : null;
const apply = (training: boolean) =>
  (cut && cutSplit ? cutSplit.suffix(cut, training) : model.apply(xs, { training })) as tf.Tensor;
const loss = () => tf.losses.softmaxCrossEntropy(ys, tf.log(apply(true))) as tf.Scalar;
const time = (fn: () => void, reps = 3) => {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
};
const forward = time(() => tf.tidy(() => void apply(true).dataSync()));
const forwardBackward = time(() => {
  const { value, grads } = tf.variableGrads(loss, vars);
  tf.dispose([value, ...Object.values(grads)]);
});
// The update timed on its own: the difference of two timed steps drowned it in their noise
// (SimpleCNN's ~10 ms of Adam read as 70).
const { value: lossValue, grads } = tf.variableGrads(loss, vars);
const update = time(() => optimizer.applyGradients(grads));
tf.dispose([lossValue, ...Object.values(grads)]);
const whole = forwardBackward + update;
const split = {
  forward: forward / whole,
  backward: Math.max(0, forwardBackward - forward) / whole,
  optimizer: update / whole,
};
tf.dispose([xs, ys, ...(cut ? [cut] : [])]);
sample();
const steady = epochs.at(-1)!;
console.log(
  JSON.stringify({
    recipe: job.recipe,
    backend: backend.name,
    threads: backend.threads ?? 1,
    trainImages: job.train.length,
    epochs,
    imagesPerSecond: steady.imagesPerSecond,
    phases: {
      ...steady.phases,
      forward: steady.phases.step! * split.forward,
      backward: steady.phases.step! * split.backward,
      optimizer: steady.phases.step! * split.optimizer,
    },
    stepSplit: split,
    gflopPerImage: stepGflopPerImage(model, 'full'),
    valAccuracy: result.history.at(-1)?.val_accuracy ?? null,
    ...(result.frozenFeatures ? { frozenFeatures: result.frozenFeatures } : {}),
    peakRssBytes: peakRss,
    peakWasmHeapBytes: peakHeap,
  }),
);
