import * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';
import { Initializers, type Pooling } from './common.js';
import { finalizeModel } from './finalize.js';
import { kerasTop } from './head.js';

export interface MobileNetV2Options {
  /** Width multiplier: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4. Default 1.0. */
  alpha?: number;
  inputShape?: [number, number, number];
  includeTop?: boolean;
  pooling?: Pooling;
  classes?: number;
  seed?: number;
}

/** Keras's `_make_divisible`. */
export function makeDivisible(v: number, divisor = 8, minValue = divisor): number {
  let newV = Math.max(minValue, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (newV < 0.9 * v) newV += divisor;
  return newV;
}

/**
 * Keras's `MobileNetV2` as saved by Keras 2.4 (with `Conv1_pad`), layer for layer, so the
 * ImageNet weights in Keras `.h5` files (e.g. Teachable Machine exports, alpha 0.35) load by
 * name. Expects inputs scaled as `x / 127.5 - 1`.
 */
export function mobilenetV2(options: MobileNetV2Options = {}): tfl.LayersModel {
  const alpha = options.alpha ?? 1.0;
  const inputShape = options.inputShape ?? [224, 224, 3];
  check(
    [0.35, 0.5, 0.75, 1.0, 1.3, 1.4].includes(alpha),
    'mobilenetV2',
    `alpha must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, got ${alpha}`,
  );
  check(
    inputShape.length === 3 && inputShape[0] >= 32 && inputShape[1] >= 32,
    'mobilenetV2',
    `inputShape must be [h >= 32, w >= 32, c], got ${JSON.stringify(inputShape)}`,
  );
  const init = new Initializers(options.seed ?? 0);
  const bn = (x: tfl.SymbolicTensor, name: string) =>
    tfl.layers
      .batchNormalization({ axis: 3, epsilon: 1e-3, momentum: 0.999, name })
      .apply(x) as tfl.SymbolicTensor;
  const relu6 = (x: tfl.SymbolicTensor, name: string) =>
    tfl.layers.reLU({ maxValue: 6, name }).apply(x) as tfl.SymbolicTensor;
  const correctPad = (x: tfl.SymbolicTensor): [[number, number], [number, number]] => {
    const [h, w] = [x.shape[1] as number, x.shape[2] as number];
    return [
      [1 - (1 - (h % 2)), 1],
      [1 - (1 - (w % 2)), 1],
    ];
  };

  const block = (
    inputs: tfl.SymbolicTensor,
    expansion: number,
    stride: number,
    filters: number,
    id: number,
  ) => {
    const inChannels = inputs.shape[3] as number;
    const pointwiseFilters = makeDivisible(Math.trunc(filters * alpha), 8);
    let prefix = `block_${id}_`;
    let x = inputs;
    if (id) {
      x = tfl.layers
        .conv2d({
          filters: expansion * inChannels,
          kernelSize: 1,
          padding: 'same',
          useBias: false,
          name: `${prefix}expand`,
          kernelInitializer: init.glorot(),
        })
        .apply(x) as tfl.SymbolicTensor;
      x = relu6(bn(x, `${prefix}expand_BN`), `${prefix}expand_relu`);
    } else prefix = 'expanded_conv_';
    if (stride === 2)
      x = tfl.layers
        .zeroPadding2d({ padding: correctPad(x), name: `${prefix}pad` })
        .apply(x) as tfl.SymbolicTensor;
    x = tfl.layers
      .depthwiseConv2d({
        kernelSize: 3,
        strides: stride,
        useBias: false,
        padding: stride === 1 ? 'same' : 'valid',
        name: `${prefix}depthwise`,
        depthwiseInitializer: init.glorot(),
      })
      .apply(x) as tfl.SymbolicTensor;
    x = relu6(bn(x, `${prefix}depthwise_BN`), `${prefix}depthwise_relu`);
    x = tfl.layers
      .conv2d({
        filters: pointwiseFilters,
        kernelSize: 1,
        padding: 'same',
        useBias: false,
        name: `${prefix}project`,
        kernelInitializer: init.glorot(),
      })
      .apply(x) as tfl.SymbolicTensor;
    x = bn(x, `${prefix}project_BN`);
    if (inChannels === pointwiseFilters && stride === 1)
      return tfl.layers.add({ name: `${prefix}add` }).apply([inputs, x]) as tfl.SymbolicTensor;
    return x;
  };

  const input = tfl.input({ shape: inputShape, name: 'input_1' });
  const first = makeDivisible(32 * alpha, 8);
  let x = tfl.layers
    .zeroPadding2d({ padding: correctPad(input), name: 'Conv1_pad' })
    .apply(input) as tfl.SymbolicTensor;
  x = tfl.layers
    .conv2d({
      filters: first,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias: false,
      name: 'Conv1',
      kernelInitializer: init.glorot(),
    })
    .apply(x) as tfl.SymbolicTensor;
  x = relu6(bn(x, 'bn_Conv1'), 'Conv1_relu');
  const spec: [number, number, number][] = [
    // [expansion, stride, filters] for blocks 0..16
    [1, 1, 16],
    [6, 2, 24],
    [6, 1, 24],
    [6, 2, 32],
    [6, 1, 32],
    [6, 1, 32],
    [6, 2, 64],
    [6, 1, 64],
    [6, 1, 64],
    [6, 1, 64],
    [6, 1, 96],
    [6, 1, 96],
    [6, 1, 96],
    [6, 2, 160],
    [6, 1, 160],
    [6, 1, 160],
    [6, 1, 320],
  ];
  spec.forEach(([e, s, f], id) => {
    x = block(x, e, s, f, id);
  });
  const last = alpha > 1.0 ? makeDivisible(1280 * alpha, 8) : 1280;
  x = tfl.layers
    .conv2d({
      filters: last,
      kernelSize: 1,
      useBias: false,
      name: 'Conv_1',
      kernelInitializer: init.glorot(),
    })
    .apply(x) as tfl.SymbolicTensor;
  x = relu6(bn(x, 'Conv_1_bn'), 'out_relu');
  x = kerasTop(x, {
    includeTop: options.includeTop,
    pooling: options.pooling,
    classes: options.classes,
    init,
    avgPoolName: 'global_average_pooling2d',
    maxPoolName: 'global_max_pooling2d',
  });
  const rows = inputShape[0];
  return finalizeModel(
    tfl.model({ inputs: input, outputs: x, name: `mobilenetv2_${alpha.toFixed(2)}_${rows}` }),
  );
}
