import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializers, Pooling } from './common.js';

/** How a Keras application ends: its classifier (`includeTop`) or the pooling of its features. */
export interface KerasTopOptions {
  includeTop?: boolean | undefined;
  pooling?: Pooling;
  classes?: number | undefined;
  init: Initializers;
  /** Name of the global average pooling layer (`avg_pool` in most Keras applications). */
  avgPoolName?: string;
  /** Name of the global max pooling layer. */
  maxPoolName?: string;
  /** Dropout before the classifier (EfficientNet's `top_dropout`). */
  dropout?: { rate: number; name: string };
  /** The classifier's kernel initializer (default Glorot uniform, Keras's default). */
  kernelInitializer?: ReturnType<typeof tfl.initializers.glorotUniform>;
}

/**
 * The tail every Keras application shares: with `includeTop`, global average pooling, optional
 * dropout and a softmax `predictions` layer of `classes` units; without, the pooling asked for
 * (`'avg'`, `'max'`) or the raw feature map. Layer names follow Keras, so weights load by name.
 */
export function kerasTop(x: tfl.SymbolicTensor, options: KerasTopOptions): tfl.SymbolicTensor {
  const avg = options.avgPoolName ?? 'avg_pool';
  const apply = (layer: tfl.layers.Layer, t: tfl.SymbolicTensor) => layer.apply(t) as tfl.SymbolicTensor;
  if (options.includeTop) {
    x = apply(tfl.layers.globalAveragePooling2d({ name: avg }), x);
    if (options.dropout)
      x = apply(
        tfl.layers.dropout({
          rate: options.dropout.rate,
          seed: options.init.seedFor(),
          name: options.dropout.name,
        }),
        x,
      );
    return apply(
      tfl.layers.dense({
        units: options.classes ?? 1000,
        activation: 'softmax',
        name: 'predictions',
        kernelInitializer: options.kernelInitializer ?? options.init.glorot(),
      }),
      x,
    );
  }
  if (options.pooling === 'avg') return apply(tfl.layers.globalAveragePooling2d({ name: avg }), x);
  if (options.pooling === 'max')
    return apply(tfl.layers.globalMaxPooling2d({ name: options.maxPoolName ?? 'max_pool' }), x);
  return x;
}
