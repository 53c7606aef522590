/**
 * Patch: a tfjs-layers `Conv2D` layer with a ReLU trains as one fused convolution (wasm).
 *
 * tfjs-layers runs a convolution with a fused activation through `tf.fused.conv2d`, but tfjs-core
 * fuses only outside gradients, or for a linear activation: while `fit`, `trainOnBatch` or an
 * optimizer records the step, a `Conv2D` layer with `activation: 'relu'` runs as `Conv2D`, then
 * `Add` (the bias), then `Relu`, two more passes over each activation (a user-built CNN's first
 * layer at batch 32, 128x128x32: 10 + 9 ms of a ~520 ms step on wasm). The wasm backend's
 * convolutions add the bias and apply the ReLU as they store their outputs.
 *
 * The patch gives those layers, while a gradient is recorded on wasm, tfjs-core's own fused
 * convolution with its own gradient: the output is `FusedConv2D` with the bias and ReLU (the same
 * numbers as the three ops: the same sums, then the same float32 add and clamp), and the gradient
 * masks dy where the output is positive (one pass, `maskedGradient`), then takes the convolution's
 * input and filter gradients and the bias gradient (the sum of the masked dy) as before. The op is
 * named as tfjs names its fused convolution (`fusedConv2d__op`), so the unused-input-gradient
 * patch skips the first layer's input gradient as it does for tfjs's. Other activations, other
 * layers, dilations, channels-first data, other backends and higher-order gradients run as
 * tfjs-layers runs them. `setFusedConvTraining(false)` switches it off.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MIN_POSITIVE, maskedGradient } from './clip-gradient.js';

let enabled = true;
let installed = false;

/** Turns the patch off or on (on once `setupBackend('wasm')` has run). */
export function setFusedConvTraining(on: boolean): void {
  enabled = on;
}

/** The fields of tfjs-layers' `Conv` layers the patch reads. */
interface ConvLayer {
  rank: number;
  dataFormat: string;
  padding: string;
  strides: number[];
  dilationRate: number | number[];
  activation: { getClassName(): string } | null;
  kernel: { read(): tf.Tensor } | null;
  bias: { read(): tf.Tensor } | null;
}

type ConvCall = (this: ConvLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: unknown) => tf.Tensor;

interface Attrs {
  strides: [number, number];
  pad: 'same' | 'valid';
  dataFormat: 'NHWC';
  dilations: [number, number];
}

/**
 * relu(x * filter + bias) as one `FusedConv2D`, with tfjs-core's fused gradient (dy masked where
 * the output is positive; bias gradient the masked dy summed per channel). Named `fusedConv2d` as
 * tfjs's op, so that tape patches that know that op know this one.
 */
function fusedConv2d_(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | null,
  attrs: Attrs,
): tf.Tensor4D {
  const engine = tf.engine();
  const op = tf.customGrad((...args: unknown[]) => {
    // (x, filter, [bias,] save): the save function comes last.
    const save = args.at(-1) as tf.GradSaveFunc;
    const [$x, $filter, $bias] = args.slice(0, -1) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor | undefined];
    const y = engine.runKernel('FusedConv2D', { x: $x, filter: $filter, ...($bias ? { bias: $bias } : {}) }, {
      ...attrs,
      activation: 'relu',
    } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    save([$x, $filter, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [sx, sf, sy] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const g = maskedGradient(sy, dy, MIN_POSITIVE, Number.POSITIVE_INFINITY, () =>
          tf.mul(dy, tf.step(sy)),
        ) as tf.Tensor4D;
        const grads = [
          engine.runKernel('Conv2DBackpropInput', { dy: g, filter: sf }, {
            ...attrs,
            inputShape: sx.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
          engine.runKernel('Conv2DBackpropFilter', { x: sx, dy: g }, {
            ...attrs,
            filterShape: sf.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ];
        if ($bias) grads.push(tf.reshape(tf.sum(g, [0, 1, 2]), $bias.shape));
        return grads;
      },
    };
  });
  return (bias ? op(x, filter, bias) : op(x, filter)) as tf.Tensor4D;
}
const fusedConv2d = tf.op({ fusedConv2d_ });

const pair = (v: number | number[]): [number, number] =>
  typeof v === 'number' ? [v, v] : [v[0] as number, (v[1] ?? v[0]) as number];

/** The attributes to run `layer` on `x` fused, or null where tfjs-layers' own path runs. */
function fusedAttrs(layer: ConvLayer, x: tf.Tensor): Attrs | null {
  const engine = tf.engine() as unknown as { state: { gradientDepth: number } };
  if (
    !enabled ||
    engine.state.gradientDepth !== 1 ||
    tf.getBackend() !== 'wasm' ||
    layer.rank !== 2 ||
    layer.dataFormat !== 'channelsLast' ||
    layer.activation?.getClassName() !== 'relu' ||
    !layer.kernel ||
    x.rank !== 4 ||
    x.dtype !== 'float32' ||
    (layer.padding !== 'same' && layer.padding !== 'valid')
  )
    return null;
  const dilations = pair(layer.dilationRate);
  if (dilations[0] !== 1 || dilations[1] !== 1) return null;
  return { strides: pair(layer.strides), pad: layer.padding, dataFormat: 'NHWC', dilations };
}

/** Installs the patch on tfjs-layers' `Conv2D` (idempotent). Called by `setupBackend('wasm')`. */
export function installFusedConvTraining(): void {
  if (installed) return;
  installed = true;
  const proto = Object.getPrototypeOf(tfl.layers.conv2d({ filters: 1, kernelSize: 1 })) as {
    call: ConvCall;
  };
  const original = proto.call;
  proto.call = function (this: ConvLayer, inputs, kwargs) {
    const x = Array.isArray(inputs) && inputs.length === 1 ? (inputs[0] as tf.Tensor) : inputs;
    const attrs = x instanceof tf.Tensor ? fusedAttrs(this, x) : null;
    if (!attrs) return original.call(this, inputs, kwargs);
    const kernel = (this.kernel as { read(): tf.Tensor }).read() as tf.Tensor4D;
    return fusedConv2d(x as tf.Tensor4D, kernel, this.bias?.read() ?? null, attrs);
  };
}
