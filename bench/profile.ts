/** Kernel-time profile of one training step: node --import tsx bench/profile.ts simple-cnn|mobilenetv2|resnet50v2 [size] [batch] */
import * as tf from '@tensorflow/tfjs-core';
import {
  adaBelief,
  mobilenetV2,
  resnet50v2,
  setupBackend,
  simpleCnn,
  transferModel,
  unfreeze,
} from '../src/index.js';

const [name = 'simple-cnn', sizeArg, batchArg] = process.argv.slice(2);
const size = Number(sizeArg ?? 128);
const batch = Number(batchArg ?? 32);
await setupBackend('wasm');
const model =
  name === 'simple-cnn'
    ? simpleCnn({ inputShape: [size, size, 1], numClasses: 4 })
    : unfreeze(
        transferModel({
          backbone:
            name === 'resnet50v2'
              ? resnet50v2({ inputShape: [size, size, 3] })
              : mobilenetV2({ alpha: 0.35, inputShape: [size, size, 3] }),
          numClasses: 4,
        }),
        { all: true },
      );
const c = name === 'simple-cnn' ? 1 : 3;
const x = tf.randomUniform([batch, size, size, c]);
const y = tf.oneHot(
  tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 4),
    'int32',
  ),
  4,
);
const opt = adaBelief();
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const step = () =>
  opt.minimize(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    false,
    vars,
  );
step();
const info = await tf.profile(() => {
  step();
});
const byKernel = new Map<string, { ms: number; n: number }>();
let total = 0;
for (const k of info.kernels) {
  const ms = (await k.kernelTimeMs) as number;
  const key = `${k.name} ${k.name.startsWith('Conv') || k.name.startsWith('Depthwise') ? JSON.stringify(k.inputShapes) : ''}`;
  const e = byKernel.get(key) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n++;
  byKernel.set(key, e);
  total += ms;
}
console.log(`total kernel time ${total.toFixed(0)} ms over ${info.kernels.length} kernels`);
for (const [k, v] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
  console.log(`${v.ms.toFixed(0).padStart(7)} ms  x${v.n}  ${k}`);
