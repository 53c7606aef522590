import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers, type Pooling } from './common.js';
import { finalizeModel } from './finalize.js';
import { kerasTop } from './head.js';

export interface ResNet50V2Options {
  inputShape?: [number, number, number];
  /** Keras's `include_top`: global average pooling + 1000-way (or `classes`) softmax `predictions`. */
  includeTop?: boolean;
  /** Without top: `'avg'` or `'max'` global pooling, or none (a 4-D feature map). */
  pooling?: Pooling;
  classes?: number;
  /** Seed of the (Keras-default) initializers. */
  seed?: number;
}

const BN_EPS = 1.001e-5;

/**
 * Keras's `ResNet50V2`, layer for layer: same layer names (`conv1_pad`, `conv1_conv`, ...,
 * `conv5_block3_out`, `post_bn`, `post_relu`), shapes, biases and BatchNormalization epsilon,
 * so weights converted from Keras load by name. 23,564,800 parameters without top, 25,613,800
 * with it. Expects inputs scaled as `x / 127.5 - 1`.
 *
 * @example
 * const backbone = resnet50v2({ inputShape: [224, 224, 3], pooling: 'avg' });
 */
export function resnet50v2(options: ResNet50V2Options = {}): tfl.LayersModel {
  const inputShape = options.inputShape ?? [224, 224, 3];
  const includeTop = options.includeTop ?? false;
  const classes = options.classes ?? 1000;
  check(
    inputShape.length === 3 && inputShape.every((d) => Number.isInteger(d) && d > 0),
    'resnet50v2',
    `inputShape must be [height, width, channels], got ${JSON.stringify(inputShape)}`,
  );
  check(
    inputShape[0] >= 32 && inputShape[1] >= 32,
    'resnet50v2',
    `input must be at least 32x32, got ${inputShape[0]}x${inputShape[1]}`,
  );
  const init = new Initializers(options.seed ?? 0);
  let shortcutPools = 0;

  const conv = (
    x: tfl.SymbolicTensor,
    filters: number,
    kernel: number,
    strides: number,
    useBias: boolean,
    name: string,
  ) =>
    tfl.layers
      .conv2d({ filters, kernelSize: kernel, strides, useBias, name, kernelInitializer: init.glorot() })
      .apply(x) as tfl.SymbolicTensor;
  const bn = (x: tfl.SymbolicTensor, name: string) =>
    tfl.layers.batchNormalization({ axis: 3, epsilon: BN_EPS, name }).apply(x) as tfl.SymbolicTensor;
  const relu = (x: tfl.SymbolicTensor, name: string) =>
    tfl.layers.activation({ activation: 'relu', name }).apply(x) as tfl.SymbolicTensor;
  const pad = (x: tfl.SymbolicTensor, p: number, name: string) =>
    tfl.layers
      .zeroPadding2d({
        padding: [
          [p, p],
          [p, p],
        ],
        name,
      })
      .apply(x) as tfl.SymbolicTensor;

  const block2 = (x: tfl.SymbolicTensor, filters: number, name: string, stride = 1, convShortcut = false) => {
    let preact = bn(x, `${name}_preact_bn`);
    preact = relu(preact, `${name}_preact_relu`);
    let shortcut: tfl.SymbolicTensor;
    if (convShortcut) shortcut = conv(preact, 4 * filters, 1, stride, true, `${name}_0_conv`);
    else if (stride > 1) {
      const poolName = shortcutPools === 0 ? 'max_pooling2d' : `max_pooling2d_${shortcutPools}`;
      shortcutPools++;
      shortcut = tfl.layers
        .maxPooling2d({ poolSize: 1, strides: stride, name: poolName })
        .apply(x) as tfl.SymbolicTensor;
    } else shortcut = x;
    let y = conv(preact, filters, 1, 1, false, `${name}_1_conv`);
    y = relu(bn(y, `${name}_1_bn`), `${name}_1_relu`);
    y = pad(y, 1, `${name}_2_pad`);
    y = conv(y, filters, 3, stride, false, `${name}_2_conv`);
    y = relu(bn(y, `${name}_2_bn`), `${name}_2_relu`);
    y = conv(y, 4 * filters, 1, 1, true, `${name}_3_conv`);
    return tfl.layers.add({ name: `${name}_out` }).apply([shortcut, y]) as tfl.SymbolicTensor;
  };
  const stack2 = (x: tfl.SymbolicTensor, filters: number, blocks: number, name: string, stride1 = 2) => {
    let y = block2(x, filters, `${name}_block1`, 1, true);
    for (let i = 2; i < blocks; i++) y = block2(y, filters, `${name}_block${i}`);
    return block2(y, filters, `${name}_block${blocks}`, stride1);
  };

  const input = tfl.input({ shape: inputShape, name: 'input_1' });
  let x = pad(input, 3, 'conv1_pad');
  x = conv(x, 64, 7, 2, true, 'conv1_conv');
  x = pad(x, 1, 'pool1_pad');
  x = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as tfl.SymbolicTensor;
  x = stack2(x, 64, 3, 'conv2');
  x = stack2(x, 128, 4, 'conv3');
  x = stack2(x, 256, 6, 'conv4');
  x = stack2(x, 512, 3, 'conv5', 1);
  x = relu(bn(x, 'post_bn'), 'post_relu');
  x = kerasTop(x, { includeTop, pooling: options.pooling, classes, init });
  return finalizeModel(tfl.model({ inputs: input, outputs: x, name: 'resnet50v2' }));
}
