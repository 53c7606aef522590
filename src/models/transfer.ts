import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers } from './common.js';
import { finalizeModel } from './finalize.js';
import { freeze } from './trainability.js';

export interface TransferModelOptions {
  /** A backbone without its top, e.g. `resnet50v2()` or `mobilenetV2({ alpha: 0.35 })` with weights loaded. */
  backbone: tfl.LayersModel;
  numClasses: number;
  /** Dropout before the classifier. Default 0.2. */
  dropout?: number;
  /** Units of an optional hidden dense layer in the head. */
  hiddenUnits?: number;
  /** Freeze the backbone (phase 1 of transfer learning). Default true. */
  freezeBackbone?: boolean;
  seed?: number;
}

/**
 * Backbone + new classification head (global average pooling, optional hidden layer, dropout,
 * softmax). The backbone stays a nested model, named as it was, so its weights keep their names.
 */
export function transferModel(options: TransferModelOptions): tfl.LayersModel {
  const { backbone, numClasses } = options;
  check(backbone && Array.isArray(backbone.inputs), 'transferModel', 'backbone must be a tfjs LayersModel');
  check(
    Number.isInteger(numClasses) && numClasses >= 2,
    'transferModel',
    `numClasses must be an integer >= 2, got ${numClasses}`,
  );
  const init = new Initializers(options.seed ?? 0);
  const input = tfl.input({ shape: backbone.inputs[0]!.shape.slice(1) as number[], name: 'image' });
  let x = backbone.apply(input) as tfl.SymbolicTensor;
  if (x.shape.length === 4)
    x = tfl.layers.globalAveragePooling2d({ name: 'head_pool' }).apply(x) as tfl.SymbolicTensor;
  if (options.hiddenUnits) {
    x = tfl.layers
      .dense({
        units: options.hiddenUnits,
        activation: 'relu',
        name: 'head_dense',
        kernelInitializer: init.he(),
      })
      .apply(x) as tfl.SymbolicTensor;
  }
  const dropout = options.dropout ?? 0.2;
  if (dropout > 0)
    x = tfl.layers
      .dropout({ rate: dropout, name: 'head_dropout', seed: init.seedFor() })
      .apply(x) as tfl.SymbolicTensor;
  x = tfl.layers
    .dense({
      units: numClasses,
      activation: 'softmax',
      name: 'head_predictions',
      kernelInitializer: init.glorot(),
    })
    .apply(x) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: x, name: `${backbone.name}_classifier` });
  if (options.freezeBackbone ?? true) {
    freeze(backbone);
  }
  finalizeModel(model);
  return model;
}
