/**
 * The 1x1 forward heap loop (`pointwise_forward`, `wasm/direct-conv.ts`) against XNNPACK's
 * convolution, layer by layer, alternating in one process (ten rounds after two warm-up ones,
 * medians), on every core:
 *   node --import tsx bench/pointwise-forward.ts
 * MobileNetV2-0.35's 1x1 layers at 224 (frozen weights: XNNPACK keeps its packed operator), then
 * fresh weights every call as in training (XNNPACK packs them each time), then ResNet50V2-sized
 * layers. Also checks that both give the same bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setPointwiseForward, setupBackend } from '../src/node.js';
import { alternate, median } from './common.js';

await setupBackend('wasm');
// [map side, input channels, output channels, activation, fresh weights every call]
const layers: [number, number, number, 'linear' | 'relu' | 'relu6', boolean][] = [
  [112, 8, 48, 'relu6', false],
  [56, 8, 48, 'relu6', false],
  [56, 48, 8, 'linear', false],
  [112, 16, 8, 'linear', false],
  [28, 16, 96, 'relu6', false],
  [28, 96, 16, 'linear', false],
  [14, 24, 144, 'relu6', false],
  [14, 144, 24, 'linear', false],
  [14, 32, 192, 'relu6', false],
  [14, 192, 32, 'linear', false],
  [7, 56, 336, 'linear', true],
  [7, 336, 56, 'linear', true],
  [7, 336, 112, 'linear', true],
  [7, 112, 1280, 'linear', true],
  [56, 64, 256, 'relu', false],
  [56, 256, 64, 'relu', false],
  [28, 128, 512, 'relu', false],
];
console.log('layer (batch 32)                     heap loop   XNNPACK   ratio  same bits');
for (const [side, ci, co, activation, fresh] of layers) {
  const x = tf.randomUniform([32, side, side, ci], -1, 1, 'float32', 1) as tf.Tensor4D;
  const fixed = tf.randomUniform([1, 1, ci, co], -1, 1, 'float32', 2) as tf.Tensor4D;
  const bias = tf.randomUniform([co], -1, 1, 'float32', 3) as tf.Tensor1D;
  let round = 0;
  const run = (filter: tf.Tensor4D) =>
    tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', bias, activation });
  const times = await alternate(10, setPointwiseForward, async () => {
    const filter = fresh
      ? (tf.randomUniform([1, 1, ci, co], -1, 1, 'float32', 10 + round++) as tf.Tensor4D)
      : fixed;
    const t0 = performance.now();
    const y = run(filter);
    const ms = performance.now() - t0;
    tf.dispose(fresh ? [y, filter] : [y]);
    return ms;
  });
  setPointwiseForward(true);
  const a = run(fixed);
  setPointwiseForward(false);
  const b = run(fixed);
  setPointwiseForward(true);
  const same = tf.all(tf.equal(a, b)).dataSync()[0] === 1;
  const [on, off] = [median(times.on), median(times.off)];
  console.log(
    `${`32x${side}x${side}x${ci} -> ${co} ${activation}${fresh ? ', fresh weights' : ''}`.padEnd(38)} ${on.toFixed(2).padStart(7)} ms ${off.toFixed(2).padStart(7)} ms  ${(on / off).toFixed(2)}   ${same}`,
  );
  tf.dispose([x, fixed, bias, a, b]);
}
