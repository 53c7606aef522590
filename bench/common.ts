/** Model and training step shared by bench/models.ts (timings) and bench/profile.ts (kernel profile). */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  freeze,
  mobilenetV2,
  resnet50v2,
  simpleCnn,
  transferModel,
  unfreeze,
} from '../src/index.js';

export type BenchModel = 'simple-cnn' | 'resnet50v2' | 'mobilenetv2';
export type BenchTrain = 'full' | 'frozen' | 'conv5' | 'last-block' | 'inference';

/** SimpleCNN, or a backbone + head with the layers that train per `train`. */
export function benchModel(
  name: BenchModel,
  train: BenchTrain,
  size: number,
  channels: number,
): tfl.LayersModel {
  if (name === 'simple-cnn') return simpleCnn({ inputShape: [size, size, channels], numClasses: 4 });
  const backbone =
    name === 'resnet50v2'
      ? resnet50v2({ inputShape: [size, size, 3] })
      : mobilenetV2({ alpha: 0.35, inputShape: [size, size, 3] });
  const model = transferModel({ backbone, numClasses: 4, dropout: 0 });
  if (train === 'full') unfreeze(model, { all: true });
  else if (train === 'conv5') unfreeze(model, { from: 'conv5_block1_preact_bn' });
  else if (train === 'last-block') unfreeze(model, { lastBlocks: 1 });
  else if (train === 'frozen') freeze(backbone);
  return model;
}

/** One AdaBelief training step (or a prediction, for 'inference') on a fixed random batch. */
export function benchStep(
  model: tfl.LayersModel,
  train: BenchTrain,
  batch: number,
  size: number,
  channels: number,
): () => void {
  const x = tf.randomUniform([batch, size, size, channels], -1, 1, 'float32', 1);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: batch }, (_, i) => i % 4),
      'int32',
    ),
    4,
  );
  const optimizer = adaBelief({ learningRate: 1e-4 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return () => {
    if (train === 'inference') {
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
}
