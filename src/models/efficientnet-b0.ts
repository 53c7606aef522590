import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers, type Pooling } from './common.js';
import { finalizeModel } from './finalize.js';
import { kerasTop } from './head.js';
import { KerasNormalization } from './keras-normalization.js';

export interface EfficientNetB0Options {
  inputShape?: [number, number, number];
  /** Keras's `include_top`: average pooling, dropout 0.2 and a 1000-way (or `classes`) softmax `predictions`. */
  includeTop?: boolean;
  /** Without top: `'avg'` or `'max'` global pooling, or none (a 4-D feature map). */
  pooling?: Pooling;
  classes?: number;
  /**
   * Keras's `drop_connect_rate`: the largest stochastic-depth rate, reached by the last residual
   * block (block `b` of 16 drops its residual branch with rate `dropConnectRate * b / 16`).
   * Default 0.2, as Keras.
   */
  dropConnectRate?: number;
  /** Seed of the (Keras's VarianceScaling) initializers. */
  seed?: number;
}

interface BlockArgs {
  kernel: number;
  repeats: number;
  filtersIn: number;
  filtersOut: number;
  expand: number;
  strides: number;
}

/** Keras's `DEFAULT_BLOCKS_ARGS` (all with `id_skip` and `se_ratio` 0.25); B0 scales none of them. */
const BLOCKS: BlockArgs[] = [
  { kernel: 3, repeats: 1, filtersIn: 32, filtersOut: 16, expand: 1, strides: 1 },
  { kernel: 3, repeats: 2, filtersIn: 16, filtersOut: 24, expand: 6, strides: 2 },
  { kernel: 5, repeats: 2, filtersIn: 24, filtersOut: 40, expand: 6, strides: 2 },
  { kernel: 3, repeats: 3, filtersIn: 40, filtersOut: 80, expand: 6, strides: 2 },
  { kernel: 5, repeats: 3, filtersIn: 80, filtersOut: 112, expand: 6, strides: 1 },
  { kernel: 5, repeats: 4, filtersIn: 112, filtersOut: 192, expand: 6, strides: 2 },
  { kernel: 3, repeats: 1, filtersIn: 192, filtersOut: 320, expand: 6, strides: 1 },
];
const SE_RATIO = 0.25;

/** Keras's `imagenet_utils.correct_pad`: zero padding before a stride-2 'valid' convolution. */
function correctPad(x: tfl.SymbolicTensor, kernel: number): [[number, number], [number, number]] {
  const [h, w] = [x.shape[1] as number, x.shape[2] as number];
  const c = Math.floor(kernel / 2);
  return [
    [c - (1 - (h % 2)), c],
    [c - (1 - (w % 2)), c],
  ];
}

/**
 * Keras's `EfficientNetB0` as Keras 2.4 builds it (`tf.keras.applications.EfficientNetB0`),
 * layer for layer with Keras's layer names (`rescaling`, `normalization`, `stem_conv_pad`,
 * `stem_conv`, `stem_bn`, `stem_activation`, `block1a_dwconv`, ..., `block2b_drop`,
 * `block2b_add`, ..., `top_conv`, `top_bn`, `top_activation`), so the Keras ImageNet `.h5`
 * weights load by name (`loadKerasWeights` from `medimg-classify/node`): swish activations,
 * squeeze-and-excitation, BatchNormalization epsilon 1e-3 and momentum 0.99, `correct_pad` zero
 * padding before each stride-2 depthwise convolution, and drop-connect as Keras's `Dropout` with
 * `noiseShape: [null, 1, 1, 1]` (a whole residual branch per sample). 4,049,571 parameters
 * without top (42,023 non-trainable: BatchNorm statistics and the 7 of `normalization`),
 * 5,330,571 with it.
 *
 * **The model takes raw pixels in 0..255**: like Keras's, it starts with `Rescaling(1/255)` and
 * a `Normalization` layer ({@link KerasNormalization}: `(x - mean) / sqrt(variance)` per
 * channel) whose statistics come with the weights (the ImageNet `.h5` files carry them). A
 * freshly built model has Keras's initial statistics, mean 0 and variance 1.
 *
 * The ImageNet files hold the ImageNet standard deviations [0.229, 0.224, 0.225] as
 * `normalization/variance` (tensorflow/tensorflow#49930), so Keras 2.4 divides by their square
 * roots. Later Keras versions compensate, only when building with `weights='imagenet'`, with a
 * weightless `Rescaling(1 / sqrt([0.229, 0.224, 0.225]))` after `normalization`. This builder
 * follows Keras 2.4 and leaves it out; with the ImageNet weights loaded, calling
 * `setStatistics(mean, [0.229 ** 2, 0.224 ** 2, 0.225 ** 2])` on the `normalization` layer
 * gives the corrected division by the standard deviations instead.
 *
 * For `unfreeze(model, { lastBlocks: n })` the blocks are `block1a` ... `block7a` (16):
 * `lastBlocks: 1` trains `block7a`, `top_conv`, `top_bn` and the head.
 *
 * @example
 * const backbone = efficientNetB0({ inputShape: [224, 224, 3], pooling: 'avg' });
 * await loadKerasWeights(backbone, 'efficientnetb0_notop.h5');
 * const features = backbone.predict(pixels0to255) as tf.Tensor2D; // [n, 1280]
 */
export function efficientNetB0(options: EfficientNetB0Options = {}): tfl.LayersModel {
  const inputShape = options.inputShape ?? [224, 224, 3];
  const includeTop = options.includeTop ?? false;
  const classes = options.classes ?? 1000;
  const dropConnectRate = options.dropConnectRate ?? 0.2;
  check(
    inputShape.length === 3 && inputShape.every((d) => Number.isInteger(d) && d > 0),
    'efficientNetB0',
    `inputShape must be [height, width, channels], got ${JSON.stringify(inputShape)}`,
  );
  check(
    inputShape[0] >= 32 && inputShape[1] >= 32,
    'efficientNetB0',
    `input must be at least 32x32, got ${inputShape[0]}x${inputShape[1]}`,
  );
  check(
    Number.isInteger(classes) && classes >= 1,
    'efficientNetB0',
    `classes must be a positive integer, got ${classes}`,
  );
  check(
    dropConnectRate >= 0 && dropConnectRate < 1,
    'efficientNetB0',
    `dropConnectRate must be in [0, 1), got ${dropConnectRate}`,
  );
  const init = new Initializers(options.seed ?? 0);
  const convInit = () => init.varianceScalingFanOut(2.0, 'truncated_normal');
  const apply = (layer: tfl.layers.Layer, x: tfl.SymbolicTensor | tfl.SymbolicTensor[]) =>
    layer.apply(x) as tfl.SymbolicTensor;
  const bn = (x: tfl.SymbolicTensor, name: string) =>
    apply(tfl.layers.batchNormalization({ axis: 3, epsilon: 1e-3, momentum: 0.99, name }), x);
  const swish = (x: tfl.SymbolicTensor, name: string) =>
    apply(tfl.layers.activation({ activation: 'swish', name }), x);
  const conv1x1 = (
    x: tfl.SymbolicTensor,
    filters: number,
    name: string,
    activation: 'linear' | 'swish' | 'sigmoid' = 'linear',
    useBias = false,
  ) =>
    apply(
      tfl.layers.conv2d({
        filters,
        kernelSize: 1,
        padding: 'same',
        useBias,
        activation,
        name,
        kernelInitializer: convInit(),
      }),
      x,
    );

  const block = (inputs: tfl.SymbolicTensor, args: BlockArgs, dropRate: number, name: string) => {
    const filters = args.filtersIn * args.expand;
    let x = inputs;
    if (args.expand !== 1) {
      x = conv1x1(x, filters, `${name}expand_conv`);
      x = swish(bn(x, `${name}expand_bn`), `${name}expand_activation`);
    }
    if (args.strides === 2)
      x = apply(
        tfl.layers.zeroPadding2d({ padding: correctPad(x, args.kernel), name: `${name}dwconv_pad` }),
        x,
      );
    x = apply(
      tfl.layers.depthwiseConv2d({
        kernelSize: args.kernel,
        strides: args.strides,
        padding: args.strides === 2 ? 'valid' : 'same',
        useBias: false,
        depthwiseInitializer: convInit(),
        name: `${name}dwconv`,
      }),
      x,
    );
    x = swish(bn(x, `${name}bn`), `${name}activation`);
    // Squeeze and excitation.
    const filtersSe = Math.max(1, Math.trunc(args.filtersIn * SE_RATIO));
    let se = apply(tfl.layers.globalAveragePooling2d({ name: `${name}se_squeeze` }), x);
    se = apply(tfl.layers.reshape({ targetShape: [1, 1, filters], name: `${name}se_reshape` }), se);
    se = conv1x1(se, filtersSe, `${name}se_reduce`, 'swish', true);
    se = conv1x1(se, filters, `${name}se_expand`, 'sigmoid', true);
    x = apply(tfl.layers.multiply({ name: `${name}se_excite` }), [x, se]);
    // Output phase.
    x = bn(conv1x1(x, args.filtersOut, `${name}project_conv`), `${name}project_bn`);
    if (args.strides === 1 && args.filtersIn === args.filtersOut) {
      if (dropRate > 0)
        x = apply(
          tfl.layers.dropout({
            rate: dropRate,
            // Keras's noise_shape=(None, 1, 1, 1): tfjs fills the null with the batch size.
            noiseShape: [null, 1, 1, 1] as unknown as number[],
            seed: init.seedFor(),
            name: `${name}drop`,
          }),
          x,
        );
      x = apply(tfl.layers.add({ name: `${name}add` }), [x, inputs]);
    }
    return x;
  };

  const input = tfl.input({ shape: inputShape, name: 'input_1' });
  let x = apply(tfl.layers.rescaling({ scale: 1 / 255, name: 'rescaling' }), input);
  x = apply(new KerasNormalization({ axis: -1, name: 'normalization' }), x);
  x = apply(tfl.layers.zeroPadding2d({ padding: correctPad(x, 3), name: 'stem_conv_pad' }), x);
  x = apply(
    tfl.layers.conv2d({
      filters: 32,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias: false,
      kernelInitializer: convInit(),
      name: 'stem_conv',
    }),
    x,
  );
  x = swish(bn(x, 'stem_bn'), 'stem_activation');
  const total = BLOCKS.reduce((s, a) => s + a.repeats, 0);
  let b = 0;
  BLOCKS.forEach((args, i) => {
    for (let j = 0; j < args.repeats; j++) {
      const blockArgs = j === 0 ? args : { ...args, strides: 1, filtersIn: args.filtersOut };
      x = block(x, blockArgs, (dropConnectRate * b) / total, `block${i + 1}${String.fromCharCode(97 + j)}_`);
      b++;
    }
  });
  x = bn(conv1x1(x, 1280, 'top_conv'), 'top_bn');
  x = swish(x, 'top_activation');
  x = kerasTop(x, {
    includeTop,
    pooling: options.pooling,
    classes,
    init,
    dropout: { rate: 0.2, name: 'top_dropout' },
    kernelInitializer: init.varianceScalingFanOut(1 / 3, 'uniform'),
  });
  return finalizeModel(tfl.model({ inputs: input, outputs: x, name: 'efficientnetb0' }));
}
