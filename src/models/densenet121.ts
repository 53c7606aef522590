import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers, type Pooling } from './common.js';
import { finalizeModel } from './finalize.js';
import { kerasTop } from './head.js';

export interface DenseNet121Options {
  inputShape?: [number, number, number];
  /** Keras's `include_top`: global average pooling + 1000-way (or `classes`) softmax `predictions`. */
  includeTop?: boolean;
  /** Without top: `'avg'` or `'max'` global pooling, or none (a 4-D feature map). */
  pooling?: Pooling;
  classes?: number;
  /** Seed of the (Keras-default, Glorot uniform) initializers. */
  seed?: number;
}

const BN_EPS = 1.001e-5;
/** Dense blocks of DenseNet121: conv_blocks in conv2, conv3, conv4 and conv5. */
const BLOCKS = [6, 12, 24, 16] as const;
const GROWTH_RATE = 32;

/**
 * ImageNet statistics of Keras's `densenet.preprocess_input` ('torch' mode): inputs are
 * `(x / 255 - mean) / std` per RGB channel. See {@link densenet121}.
 */
export const DENSENET_PREPROCESSING = {
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
} as const;

/**
 * Keras's `DenseNet121` (Keras 2.x, `tf.keras.applications.DenseNet121`), layer for layer with
 * Keras's layer names: `zero_padding2d`, `conv1/conv`, `conv1/bn`, `conv1/relu`,
 * `zero_padding2d_1`, `pool1`, then dense blocks `conv{2..5}_block{i}_{0_bn, 0_relu, 1_conv,
 * 1_bn, 1_relu, 2_conv, concat}` separated by transition blocks `pool{2..4}_{bn, relu, conv,
 * pool}`, and `bn`, `relu`. BatchNormalization epsilon 1.001e-5, no convolution biases, so the
 * Keras ImageNet `.h5` weights load by name (`loadKerasWeights` from `medimg-classify/node`).
 * 7,037,504 parameters without top (83,648 of them non-trainable BatchNorm statistics), 8,062,504
 * with it.
 *
 * Inputs are expected as Keras's `densenet.preprocess_input` makes them ('torch' mode): RGB
 * scaled to 0..1, then normalised per channel with the ImageNet mean [0.485, 0.456, 0.406] and
 * standard deviation [0.229, 0.224, 0.225] ({@link DENSENET_PREPROCESSING}); the model itself
 * does no preprocessing.
 *
 * For `unfreeze(model, { lastBlocks: n })` the blocks are the dense layers `convS_blockB`
 * (58 of them, like ResNet's `convS_blockB`): `lastBlocks: 1` trains `conv5_block16`, the final
 * `bn` and the head; transition layers in between are trained when a range spans them.
 *
 * @example
 * const backbone = densenet121({ inputShape: [224, 224, 3], pooling: 'avg' });
 * await loadKerasWeights(backbone, 'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5');
 */
export function densenet121(options: DenseNet121Options = {}): tfl.LayersModel {
  const inputShape = options.inputShape ?? [224, 224, 3];
  const includeTop = options.includeTop ?? false;
  const classes = options.classes ?? 1000;
  check(
    inputShape.length === 3 && inputShape.every((d) => Number.isInteger(d) && d > 0),
    'densenet121',
    `inputShape must be [height, width, channels], got ${JSON.stringify(inputShape)}`,
  );
  check(
    inputShape[0] >= 32 && inputShape[1] >= 32,
    'densenet121',
    `input must be at least 32x32, got ${inputShape[0]}x${inputShape[1]}`,
  );
  check(
    Number.isInteger(classes) && classes >= 1,
    'densenet121',
    `classes must be a positive integer, got ${classes}`,
  );
  const init = new Initializers(options.seed ?? 0);
  const apply = (layer: tfl.layers.Layer, x: tfl.SymbolicTensor | tfl.SymbolicTensor[]) =>
    layer.apply(x) as tfl.SymbolicTensor;
  const bn = (x: tfl.SymbolicTensor, name: string) =>
    apply(tfl.layers.batchNormalization({ axis: 3, epsilon: BN_EPS, momentum: 0.99, name }), x);
  const relu = (x: tfl.SymbolicTensor, name: string) =>
    apply(tfl.layers.activation({ activation: 'relu', name }), x);
  const conv = (x: tfl.SymbolicTensor, filters: number, kernel: number, name: string, strides = 1) =>
    apply(
      tfl.layers.conv2d({
        filters,
        kernelSize: kernel,
        strides,
        padding: kernel > 1 && strides === 1 ? 'same' : 'valid',
        useBias: false,
        name,
        kernelInitializer: init.glorot(),
      }),
      x,
    );
  const pad = (x: tfl.SymbolicTensor, p: number, name: string) =>
    apply(
      tfl.layers.zeroPadding2d({
        padding: [
          [p, p],
          [p, p],
        ],
        name,
      }),
      x,
    );

  const convBlock = (x: tfl.SymbolicTensor, name: string) => {
    let y = relu(bn(x, `${name}_0_bn`), `${name}_0_relu`);
    y = conv(y, 4 * GROWTH_RATE, 1, `${name}_1_conv`);
    y = relu(bn(y, `${name}_1_bn`), `${name}_1_relu`);
    y = conv(y, GROWTH_RATE, 3, `${name}_2_conv`);
    return apply(tfl.layers.concatenate({ axis: 3, name: `${name}_concat` }), [x, y]);
  };
  const denseBlock = (x: tfl.SymbolicTensor, blocks: number, name: string) => {
    for (let i = 1; i <= blocks; i++) x = convBlock(x, `${name}_block${i}`);
    return x;
  };
  const transition = (x: tfl.SymbolicTensor, name: string) => {
    let y = relu(bn(x, `${name}_bn`), `${name}_relu`);
    y = conv(y, Math.trunc((y.shape[3] as number) * 0.5), 1, `${name}_conv`);
    return apply(tfl.layers.averagePooling2d({ poolSize: 2, strides: 2, name: `${name}_pool` }), y);
  };

  const input = tfl.input({ shape: inputShape, name: 'input_1' });
  // Keras leaves both paddings unnamed: they get the default names of a fresh session.
  let x = pad(input, 3, 'zero_padding2d');
  // The stem convolution is 7x7/2 'valid' after the explicit padding.
  x = conv(x, 64, 7, 'conv1/conv', 2);
  x = relu(bn(x, 'conv1/bn'), 'conv1/relu');
  x = pad(x, 1, 'zero_padding2d_1');
  x = apply(tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1' }), x);
  BLOCKS.forEach((blocks, i) => {
    x = denseBlock(x, blocks, `conv${i + 2}`);
    if (i < BLOCKS.length - 1) x = transition(x, `pool${i + 2}`);
  });
  x = relu(bn(x, 'bn'), 'relu');
  x = kerasTop(x, { includeTop, pooling: options.pooling, classes, init });
  return finalizeModel(tfl.model({ inputs: input, outputs: x, name: 'densenet121' }));
}
