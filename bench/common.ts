/** Model and training step shared by bench/models.ts (timings) and bench/profile.ts (kernel profile). */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  adaBelief,
  freeze,
  mobilenetV2,
  resnet50v2,
  simpleCnn,
  transferModel,
  unfreeze,
} from '../src/index.js';

export type BenchModel = 'simple-cnn' | 'user-cnn' | 'resnet50v2' | 'mobilenetv2';
/** `blocks-13`: MobileNetV2 from `block_13_expand` on, the brain-MRI fine-tuning recipe's layers. */
export type BenchTrain = 'full' | 'frozen' | 'conv5' | 'last-block' | 'blocks-13' | 'inference';

/** SimpleCNN, or a backbone + head with the layers that train per `train`. */
export function benchModel(
  name: BenchModel,
  train: BenchTrain,
  size: number,
  channels: number,
): tfl.LayersModel {
  if (name === 'simple-cnn') return simpleCnn({ inputShape: [size, size, channels], numClasses: 4 });
  if (name === 'user-cnn') return userCnn(size, channels);
  const backbone =
    name === 'resnet50v2'
      ? resnet50v2({ inputShape: [size, size, 3] })
      : mobilenetV2({ alpha: 0.35, inputShape: [size, size, 3] });
  const model = transferModel({ backbone, numClasses: 4, dropout: 0 });
  if (train === 'full') unfreeze(model, { all: true });
  else if (train === 'conv5') unfreeze(model, { from: 'conv5_block1_preact_bn' });
  else if (train === 'last-block') unfreeze(model, { lastBlocks: 1 });
  else if (train === 'blocks-13') unfreeze(model, { from: 'block_13_expand' });
  else if (train === 'frozen') freeze(backbone);
  return model;
}

/**
 * What a user builds with tfjs-layers alone: three blocks of conv 3x3 + bias + ReLU and 2x2
 * max-pooling (no BatchNorm), flatten, dense 128 + ReLU, softmax; trained with `compile` and
 * `trainOnBatch` and `tf.train.adam` (see {@link benchStep}), none of this library's builders or
 * loop: only `setupBackend`.
 */
function userCnn(size: number, channels: number): tfl.LayersModel {
  const m = tfl.sequential();
  [32, 64, 128].forEach((filters, i) => {
    m.add(
      tfl.layers.conv2d({
        ...(i === 0 ? { inputShape: [size, size, channels] } : {}),
        filters,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
      }),
    );
    m.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
  });
  m.add(tfl.layers.flatten());
  m.add(tfl.layers.dense({ units: 128, activation: 'relu' }));
  m.add(tfl.layers.dense({ units: 4, activation: 'softmax' }));
  m.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
  return m;
}

/**
 * One training step on a fixed random batch: AdaBelief through `optimizer.minimize` for this
 * library's models, `model.trainOnBatch` with the compiled Adam for the user-built CNN; or a
 * prediction, for 'inference'. Resolves when the step's numbers are read back.
 */
export function benchStep(
  model: tfl.LayersModel,
  train: BenchTrain,
  batch: number,
  size: number,
  channels: number,
): () => Promise<void> {
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
  return async () => {
    if (train === 'inference') {
      tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
      return;
    }
    if (model.optimizer) {
      await model.trainOnBatch(x, y);
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

/**
 * Multiply-add FLOPs (x2) per image of one step: the forward pass of every convolution and
 * dense layer, plus twice that for layers that train (their input and weight gradients).
 * Nested models (a transfer model's backbone) are walked layer by layer.
 */
export function stepGflopPerImage(model: tfl.LayersModel, train: BenchTrain): number {
  let flops = 0;
  const walk = (layers: tfl.layers.Layer[], parentTrainable: boolean) => {
    for (const layer of layers) {
      const nested = (layer as unknown as { layers?: tfl.layers.Layer[] }).layers;
      const trainable = parentTrainable && layer.trainable && train !== 'inference';
      if (nested) {
        walk(nested, trainable);
        continue;
      }
      const kernel = layer.getWeights().find((_, i) => i === 0);
      if (!kernel) continue;
      const out = (Array.isArray(layer.outputShape[0]) ? layer.outputShape[0] : layer.outputShape) as (
        | number
        | null
      )[];
      const positions = out.slice(1, -1).reduce<number>((a, d) => a * (d ?? 1), 1);
      const k = kernel.shape;
      const name = layer.getClassName();
      let forward = 0;
      if (name === 'Conv2D') forward = 2 * positions * k.reduce((a, d) => a * d, 1);
      else if (name === 'DepthwiseConv2D') forward = 2 * positions * k.reduce((a, d) => a * d, 1);
      else if (name === 'Dense') forward = 2 * k.reduce((a, d) => a * d, 1);
      flops += forward * (trainable && layer.trainableWeights.length > 0 ? 3 : 1);
    }
  };
  walk(model.layers, true);
  return flops / 1e9;
}

/**
 * Wraps every registered wasm kernel with a wall-clock timer that reports each call to `record`
 * (its name, inputs and milliseconds) while the returned switch's `on` is true. A kernel that
 * calls others through the registry is counted with them.
 */
export function timeWasmKernels(
  record: (kernel: string, inputs: tf.NamedTensorInfoMap, ms: number) => void,
): { on: boolean } {
  const timing = { on: false };
  for (const config of tf.getKernelsForBackend('wasm')) {
    const run = config.kernelFunc;
    (config as { kernelFunc: typeof run }).kernelFunc = (args) => {
      if (!timing.on) return run(args);
      const t0 = performance.now();
      const out = run(args);
      record(config.kernelName, args.inputs, performance.now() - t0);
      return out;
    };
  }
  return timing;
}

/** The middle value of `xs` (the upper one of an even count). */
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

/**
 * A/B in one process: `warmup` runs each way, then `rounds` rounds of `measure` with `set(true)`
 * and `set(false)`, in ABBA order (even rounds off first); leaves `set(true)`. Runs minutes apart
 * on these machines differ by more than most single changes, so both sides share the machine's
 * state. Returns each side's times in round order (paired by index).
 */
export async function alternate(
  rounds: number,
  set: (on: boolean) => void,
  measure: () => number | Promise<number>,
  warmup = 2,
): Promise<{ on: number[]; off: number[] }> {
  for (let i = 0; i < 2 * warmup; i++) {
    set(i % 2 === 0);
    await measure();
  }
  const times = { on: [] as number[], off: [] as number[] };
  for (let round = 0; round < rounds; round++)
    for (const on of round % 2 ? [true, false] : [false, true]) {
      set(on);
      times[on ? 'on' : 'off'].push(await measure());
    }
  set(true);
  return times;
}
