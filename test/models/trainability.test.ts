import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  blockNames,
  mobilenetV2,
  setupBackend,
  transferModel,
  unfreeze,
} from '../../src/index.js';

const values = (m: tfl.LayersModel, layer: string, i: number) =>
  Array.from(m.getLayer(layer).getWeights()[i]!.dataSync());
const findLayer = (m: tfl.LayersModel, name: string) =>
  (m.getLayer('mobilenetv2_0.35_32') as tfl.LayersModel).getLayer(name);
const weightOf = (m: tfl.LayersModel, layer: string, i: number) =>
  Array.from(findLayer(m, layer).getWeights()[i]!.dataSync());

describe('freezing, unfreezing and BatchNormalization semantics', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('a frozen backbone keeps its weights and BN moving statistics through fit; the head trains', async () => {
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3], seed: 1 });
    const model = transferModel({ backbone, numClasses: 3, seed: 2 });
    expect(model.trainableWeights.map((w) => w.originalName)).toEqual([
      'head_predictions/kernel',
      'head_predictions/bias',
    ]);
    model.compile({ optimizer: adaBelief({ learningRate: 0.01 }), loss: 'categoricalCrossentropy' });
    const xs = tf.randomUniform([8, 32, 32, 3], -1, 1, 'float32', 3);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
    const meanBefore = weightOf(model, 'block_16_project_BN', 2); // moving_mean
    const kernelBefore = weightOf(model, 'Conv1', 0);
    // The untrained backbone's features are tiny; the head bias gets the full gradient (p - y).
    const headBefore = values(model, 'head_predictions', 1);
    await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
    expect(weightOf(model, 'block_16_project_BN', 2)).toEqual(meanBefore);
    expect(weightOf(model, 'Conv1', 0)).toEqual(kernelBefore);
    expect(values(model, 'head_predictions', 1)).not.toEqual(headBefore);

    // Unfreezing the last block: training is refused until compiled again with a fresh optimizer.
    expect(blockNames(model).slice(-2)).toEqual(['block_15', 'block_16']);
    unfreeze(model, { lastBlocks: 1 });
    await expect(model.fit(xs, ys, { epochs: 1, verbose: 0 })).rejects.toThrow(
      /Error in fit: which layers train changed .* call model.compile again with a fresh optimizer/,
    );
    expect(() => model.compile({ optimizer: model.optimizer, loss: 'categoricalCrossentropy' })).toThrow(
      /pass a fresh optimizer/,
    );
    model.compile({ optimizer: adaBelief({ learningRate: 0.01 }), loss: 'categoricalCrossentropy' });
    const trainable = model.trainableWeights.map((w) => w.originalName);
    expect(trainable).toContain('block_16_expand/kernel');
    expect(trainable).toContain('Conv_1/kernel');
    expect(trainable).not.toContain('block_15_project/kernel');
    const b15 = weightOf(model, 'block_15_project', 0);
    const b16 = weightOf(model, 'block_16_project', 0);
    const b16Mean = weightOf(model, 'block_16_project_BN', 2);
    const b15Mean = weightOf(model, 'block_15_project_BN', 2);
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
    expect(weightOf(model, 'block_15_project', 0)).toEqual(b15);
    expect(weightOf(model, 'block_15_project_BN', 2)).toEqual(b15Mean);
    expect(weightOf(model, 'block_16_project', 0)).not.toEqual(b16);
    expect(weightOf(model, 'block_16_project_BN', 2)).not.toEqual(b16Mean); // trainable BN updates its statistics
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('unfreeze by layer name, and clear errors for unknown names and block counts', () => {
    const backbone = mobilenetV2({ alpha: 0.35, inputShape: [32, 32, 3] });
    const model = transferModel({ backbone, numClasses: 2 });
    unfreeze(model, { from: 'Conv_1' });
    expect(model.trainableWeights.map((w) => w.originalName)).toEqual([
      'Conv_1/kernel',
      'Conv_1_bn/gamma',
      'Conv_1_bn/beta',
      'head_predictions/kernel',
      'head_predictions/bias',
    ]);
    expect(() => unfreeze(model, { from: 'conv5_block1_preact_bn' })).toThrow(
      /no layer named 'conv5_block1_preact_bn'/,
    );
    expect(() => unfreeze(model, { lastBlocks: 40 })).toThrow(/lastBlocks must be 1..17, got 40/);
    model.dispose();
  });
});
