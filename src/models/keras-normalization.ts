import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type Kwargs = Parameters<tfl.layers.Layer['call']>[1];

/** Keras's `backend.epsilon()`, the floor of the standard deviation in {@link KerasNormalization}. */
const KERAS_EPSILON = 1e-7;

export interface KerasNormalizationArgs extends LayerArgs {
  /**
   * The feature axis that keeps its own statistics: only the last one (-1 or rank - 1), given
   * bare or as a one-element list as in Keras's configs (`"axis": [-1]`). Default -1.
   */
  axis?: number | number[];
}

/**
 * Keras 2.x's preprocessing `Normalization` layer as EfficientNet uses it, with Keras's weights
 * `mean`, `variance` (one per channel of the last axis) and `count` (a scalar, the number of
 * values `adapt` saw), all non-trainable, so that `normalization/mean` etc. of a Keras `.h5` load
 * by name. Computes `(x - mean) / max(sqrt(variance), 1e-7)` exactly as Keras does; `count` is
 * not used by the forward pass. Keras stores `count` as int64; here it is a float32 variable
 * (tfjs has no int64), which holds any count below 2^24 exactly.
 *
 * tfjs-layers 4.22 has no Normalization layer; this one is serializable under Keras's class name.
 */
export class KerasNormalization extends tfl.layers.Layer {
  /** @nocollapse */
  static className = 'Normalization';
  readonly axis: number;
  private mean: tfl.LayerVariable | null = null;
  private variance: tfl.LayerVariable | null = null;
  private count: tfl.LayerVariable | null = null;

  constructor(args: KerasNormalizationArgs = {}) {
    super(args);
    const axis = Array.isArray(args.axis) ? args.axis : [args.axis ?? -1];
    if (axis.length !== 1 || !Number.isInteger(axis[0]))
      throw new Error(`Normalization: axis must be one integer, got ${JSON.stringify(args.axis)}`);
    this.axis = axis[0] as number;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const rank = shape.length;
    const axis = this.axis < 0 ? this.axis + rank : this.axis;
    if (axis !== rank - 1)
      throw new Error(
        `Normalization: only the last axis is supported, got axis ${this.axis} of rank ${rank}`,
      );
    const channels = shape[axis];
    if (channels == null) throw new Error('Normalization: the feature axis must have a known size');
    this.mean = this.addWeight('mean', [channels], 'float32', tfl.initializers.zeros(), undefined, false);
    this.variance = this.addWeight(
      'variance',
      [channels],
      'float32',
      tfl.initializers.ones(),
      undefined,
      false,
    );
    this.count = this.addWeight('count', [], 'float32', tfl.initializers.zeros(), undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      let x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
      if (x.dtype !== 'float32') x = tf.cast(x, 'float32');
      const mean = (this.mean as tfl.LayerVariable).read();
      const std = tf.maximum(tf.sqrt((this.variance as tfl.LayerVariable).read()), KERAS_EPSILON);
      return tf.div(tf.sub(x, mean), std);
    });
  }

  /** Sets the statistics, as Keras's `Normalization(mean=..., variance=...)` or `adapt` would. */
  setStatistics(mean: number[], variance: number[], count = 0): void {
    if (!this.mean || !this.variance || !this.count) throw new Error('Normalization: the layer is not built');
    const [m, v, c] = [this.mean, this.variance, this.count];
    tf.tidy(() => {
      m.write(tf.tensor1d(mean));
      v.write(tf.tensor1d(variance));
      c.write(tf.scalar(count));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis };
  }
}

/** Registers {@link KerasNormalization} with tfjs serialization (idempotent). */
export function registerKerasNormalization(): void {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  if (!(KerasNormalization.className in map)) tf.serialization.registerClass(KerasNormalization);
}
registerKerasNormalization();
