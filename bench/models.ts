/**
 * One model timing in a child process (so a slow backend can be cut off by a timeout):
 *   node --import tsx bench/models.ts '{"backend":"wasm","model":"simple-cnn",...}'
 * Prints one JSON line: { imagesPerSecond, secondsPerStep, gflops? }.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  countParams,
  freeze,
  mobilenetV2,
  resnet50v2,
  setupBackend,
  simpleCnn,
  transferModel,
  unfreeze,
} from '../src/index.js';

interface Job {
  backend: 'wasm' | 'cpu';
  model: 'simple-cnn' | 'resnet50v2' | 'mobilenetv2';
  train: 'full' | 'frozen' | 'conv5' | 'last-block' | 'inference';
  size: number;
  channels: number;
  batch: number;
  steps: number;
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
await setupBackend(job.backend);
let model: tfl.LayersModel;
if (job.model === 'simple-cnn')
  model = simpleCnn({ inputShape: [job.size, job.size, job.channels], numClasses: 4 });
else {
  const backbone =
    job.model === 'resnet50v2'
      ? resnet50v2({ inputShape: [job.size, job.size, 3] })
      : mobilenetV2({ alpha: 0.35, inputShape: [job.size, job.size, 3] });
  model = transferModel({ backbone, numClasses: 4, dropout: 0 });
  if (job.train === 'full') unfreeze(model, { all: true });
  else if (job.train === 'conv5') unfreeze(model, { from: 'conv5_block1_preact_bn' });
  else if (job.train === 'last-block') unfreeze(model, { lastBlocks: 1 });
  else if (job.train === 'frozen') freeze(backbone);
}
const x = tf.randomUniform([job.batch, job.size, job.size, job.channels], -1, 1, 'float32', 1);
const y = tf.oneHot(
  tf.tensor1d(
    Array.from({ length: job.batch }, (_, i) => i % 4),
    'int32',
  ),
  4,
);
const optimizer = adaBelief({ learningRate: 1e-4 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const step = () => {
  if (job.train === 'inference') {
    tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
    return;
  }
  const cost = optimizer.minimize(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    true,
    vars,
  );
  cost?.dataSync();
  cost?.dispose();
};
step();
const t0 = performance.now();
for (let i = 0; i < job.steps; i++) step();
const secondsPerStep = (performance.now() - t0) / 1000 / job.steps;
console.log(
  JSON.stringify({
    imagesPerSecond: job.batch / secondsPerStep,
    secondsPerStep,
    params: countParams(model),
    trainable: vars.length,
  }),
);
