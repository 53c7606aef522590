import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers } from './common.js';
import { finalizeModel } from './finalize.js';

export interface SimpleCnnOptions {
  /** `[height, width, channels]`, e.g. `[128, 128, 1]` for grayscale MRI. */
  inputShape: [number, number, number];
  numClasses: number;
  /** Filters of each conv block (conv 3x3 -> [BN] -> ReLU -> max-pool 2). Default `[32, 64, 128]`. */
  filters?: number[];
  kernelSize?: number;
  /** Units of the hidden dense layer; 0 for none. Default 128. */
  dense?: number;
  /** Dropout before the classifier. Default 0.5. */
  dropout?: number;
  batchNorm?: boolean;
  /**
   * How the feature map becomes a vector: `'flatten'` (default, the classic Keras baseline; keeps
   * where a finding is, which tells e.g. a meningioma at the skull from a glioma inside) or
   * `'avg'` (global average pooling: fewer parameters, position-blind).
   */
  pooling?: 'flatten' | 'avg';
  seed?: number;
}

/**
 * The seed projects' baseline CNN: conv blocks (conv 3x3, batch norm, ReLU, max-pool), flatten,
 * a dense layer, dropout and a softmax classifier. Grayscale or RGB.
 *
 * @example
 * const model = simpleCnn({ inputShape: [128, 128, 1], numClasses: 4 });
 */
export function simpleCnn(options: SimpleCnnOptions): tfl.LayersModel {
  const op = 'simpleCnn';
  const { inputShape, numClasses } = options ?? ({} as SimpleCnnOptions);
  check(
    Array.isArray(inputShape) &&
      inputShape.length === 3 &&
      inputShape.every((d) => Number.isInteger(d) && d > 0),
    op,
    `inputShape must be [height, width, channels], got ${JSON.stringify(inputShape)}`,
  );
  check(
    Number.isInteger(numClasses) && numClasses >= 2,
    op,
    `numClasses must be an integer >= 2, got ${numClasses}`,
  );
  const filters = options.filters ?? [32, 64, 128];
  const kernelSize = options.kernelSize ?? 3;
  const dense = options.dense ?? 128;
  const dropout = options.dropout ?? 0.5;
  const batchNorm = options.batchNorm ?? true;
  check(
    filters.length > 0 && filters.every((f) => Number.isInteger(f) && f > 0),
    op,
    'filters must be positive integers',
  );
  check(dropout >= 0 && dropout < 1, op, `dropout must be in [0, 1), got ${dropout}`);
  const minSide = Math.min(inputShape[0], inputShape[1]);
  check(
    minSide >= 2 ** filters.length,
    op,
    `input ${inputShape[0]}x${inputShape[1]} is too small for ${filters.length} pooling steps`,
  );
  const init = new Initializers(options.seed ?? 0);

  const input = tfl.input({ shape: inputShape, name: 'image' });
  let x: tfl.SymbolicTensor = input;
  filters.forEach((f, i) => {
    const name = `block${i + 1}`;
    x = tfl.layers
      .conv2d({
        filters: f,
        kernelSize,
        padding: 'same',
        useBias: !batchNorm,
        name: `${name}_conv`,
        kernelInitializer: init.he(),
      })
      .apply(x) as tfl.SymbolicTensor;
    if (batchNorm) x = tfl.layers.batchNormalization({ name: `${name}_bn` }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.activation({ activation: 'relu', name: `${name}_relu` }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.maxPooling2d({ poolSize: 2, name: `${name}_pool` }).apply(x) as tfl.SymbolicTensor;
  });
  x = (
    options.pooling === 'avg'
      ? tfl.layers.globalAveragePooling2d({ name: 'pool' })
      : tfl.layers.flatten({ name: 'flatten' })
  ).apply(x) as tfl.SymbolicTensor;
  if (dense > 0)
    x = tfl.layers
      .dense({ units: dense, activation: 'relu', name: 'dense', kernelInitializer: init.he() })
      .apply(x) as tfl.SymbolicTensor;
  if (dropout > 0)
    x = tfl.layers
      .dropout({ rate: dropout, name: 'dropout', seed: init.seedFor() })
      .apply(x) as tfl.SymbolicTensor;
  x = tfl.layers
    .dense({
      units: numClasses,
      activation: 'softmax',
      name: 'predictions',
      kernelInitializer: init.glorot(),
    })
    .apply(x) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: x, name: 'simple_cnn' });
  finalizeModel(model);
  return model;
}
