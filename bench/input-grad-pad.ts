/**
 * Stride-1 depthwise input gradients on wasm (MobileNetV2's layer shapes): the library's kernel,
 * which lets XNNPACK's convolution pad dy by itself (`fullCorrelation` in wasm/conv-geometry.ts),
 * against the same full correlation on an explicitly zero-padded copy of dy (what it did before),
 * alternating, with a check that the two agree bit for bit:
 *   node --import tsx bench/input-grad-pad.ts
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { setupBackend } from '../src/node.js';
import { alternate, median } from './common.js';

const info = await setupBackend('wasm');
console.log(
  `wasm, ${info.threads} thread(s); median ms per call, 20 alternating calls each (ours, padded copy)`,
);
const SHAPES: [number, number, number, string][] = [
  [32, 7, 336, 'blocks 14-16 (trainable in the recipes)'],
  [32, 14, 192, 'blocks 11-12'],
  [32, 28, 96, 'blocks 4-5'],
  [32, 56, 48, 'block 2'],
  [32, 112, 16, 'block 0'],
];
for (const [n, s, c, where] of SHAPES) {
  const dy = tf.randomNormal([n, s, s, c], 0, 1, 'float32', 1);
  const f = tf.randomNormal([3, 3, c, 1], 0, 1, 'float32', 2);
  const ours = () =>
    tf
      .engine()
      .runKernel(
        'DepthwiseConv2dNativeBackpropInput',
        { dy, filter: f },
        { strides: [1, 1], pad: 'same', dilations: [1, 1], dataFormat: 'NHWC', inputShape: [n, s, s, c] },
      ) as tf.Tensor;
  const padded = () =>
    tf.tidy(() =>
      tf.depthwiseConv2d(
        tf.pad(dy, [
          [0, 0],
          [1, 1],
          [1, 1],
          [0, 0],
        ]) as tf.Tensor4D,
        tf.reverse(f, [0, 1]) as tf.Tensor4D,
        1,
        'valid',
      ),
    );
  const [a, b] = [ours(), padded()] as [tf.Tensor, tf.Tensor];
  const same = tf.tidy(() => tf.all(tf.equal(a, b)).dataSync()[0] === 1);
  tf.dispose([a, b]);
  let run = ours;
  const { on, off } = await alternate(
    10,
    (useOurs) => {
      run = useOurs ? ours : padded;
    },
    () => {
      const t0 = performance.now();
      run().dispose();
      return performance.now() - t0;
    },
  );
  console.log(
    `${`${n}x${s}x${s}x${c}`.padEnd(14)} ${where.padEnd(40)} ${median(on).toFixed(2)} ms, ${median(off).toFixed(2)} ms; bit-identical: ${same}`,
  );
  tf.dispose([dy, f]);
}
