/**
 * Convolution gradient microbenchmark on wasm: the three filter-gradient formulations (swapped
 * convolution, im2col matrix multiply, the heap loop) and the input gradient, on layer shapes from
 * the model builders, all with Winograd off; then, where `useWinograd` applies, the forward pass
 * and both gradients as Winograd F(4x4, 3x3). `useConvForFilterGrad`, `useHeapForFilterGrad` and
 * `useWinograd` pick from numbers like these.
 *   node --import tsx bench/conv-grad.ts [threads]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import {
  setFilterGradStrategy,
  setInputGradStrategy,
  setWinograd,
  useConvForFilterGrad,
  useHeapForFilterGrad,
  useMatMulForInputGrad,
  useWinograd,
} from '../src/backend/wasm/index.js';
import { setupBackend } from '../src/node.js';

const threads = process.argv[2] ? Number(process.argv[2]) : undefined;
const info = await setupBackend('wasm', threads === undefined ? {} : { threads });
console.log(`wasm, ${info.threads} thread(s); ms per call (GFLOP/s)`);

// [batch, size, in channels, out channels, kernel, stride, where it occurs]
const SHAPES: [number, number, number, number, number, number, string][] = [
  [32, 128, 1, 32, 3, 1, 'SimpleCNN block 1'],
  [32, 64, 32, 64, 3, 1, 'SimpleCNN block 2'],
  [32, 32, 64, 128, 3, 1, 'SimpleCNN block 3'],
  [8, 56, 64, 64, 3, 1, 'ResNet50V2 conv2'],
  [8, 56, 64, 64, 3, 2, 'ResNet50V2 conv2 last block'],
  [8, 28, 128, 128, 3, 1, 'ResNet50V2 conv3'],
  [8, 14, 256, 256, 3, 1, 'ResNet50V2 conv4'],
  [8, 7, 512, 512, 3, 1, 'ResNet50V2 conv5'],
  [8, 7, 512, 2048, 1, 1, 'ResNet50V2 conv5 1x1'],
  [32, 14, 32, 192, 1, 1, 'MobileNetV2-0.35 b13 expand'],
  [32, 7, 56, 336, 1, 1, 'MobileNetV2-0.35 b14 expand'],
  [32, 7, 336, 56, 1, 1, 'MobileNetV2-0.35 b14 project'],
  [32, 7, 112, 1280, 1, 1, 'MobileNetV2-0.35 Conv_1'],
];

function time(f: () => tf.Tensor, reps = 3): number {
  f().dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    // wasm kernels are synchronous; reading a large result back would time its copy into a new
    // JavaScript buffer (page faults on these machines) rather than the kernel.
    const r = f();
    r.dispose();
  }
  return (performance.now() - t0) / reps;
}

for (const [n, size, ci, co, k, s, where] of SHAPES) {
  const pad = k === 1 ? 'valid' : 'same';
  const x = tf.randomNormal([n, size, size, ci], 0, 1, 'float32', 1) as tf.Tensor4D;
  const f = tf.randomNormal([k, k, ci, co], 0, 1, 'float32', 2) as tf.Tensor4D;
  const outShape = tf.tidy(() => tf.conv2d(x, f, s, pad).shape);
  const dy = tf.randomNormal(outShape, 0, 1, 'float32', 3) as tf.Tensor4D;
  const attrs = { strides: [s, s], pad, dataFormat: 'NHWC', filterShape: [k, k, ci, co] };
  const filterGrad = () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs) as tf.Tensor;
  const gflop = (2 * n * (dy.shape[1] as number) * (dy.shape[2] as number) * co * k * k * ci) / 1e9;
  const fmt = (ms: number) =>
    `${ms.toFixed(0).padStart(5)} (${(gflop / (ms / 1000)).toFixed(1).padStart(5)})`;
  setWinograd(false);
  setFilterGradStrategy('conv');
  const byConv = time(filterGrad);
  setFilterGradStrategy('matmul');
  const byMatMul = time(filterGrad);
  setFilterGradStrategy('heap');
  const onHeap = time(filterGrad);
  setFilterGradStrategy('auto');
  const forward = time(() => tf.conv2d(x, f, s, pad));
  const inputGrad = () => tf.conv2dTranspose(dy, f, x.shape, s, pad);
  setInputGradStrategy('conv');
  const dxConv = time(inputGrad);
  setInputGradStrategy('matmul');
  const dxMatMul = time(inputGrad);
  setInputGradStrategy('auto');
  setWinograd(true);
  const geometry = tf.backend_util.computeConv2DInfo(x.shape, f.shape, s, 1, pad);
  const winograd = useWinograd(geometry)
    ? `  Winograd: forward ${fmt(time(() => tf.conv2d(x, f, s, pad)))}  dx ${fmt(time(inputGrad))}  dW ${fmt(time(filterGrad))}`
    : '';
  console.log(
    `${where.padEnd(28)} forward ${fmt(forward)}  dx conv ${fmt(dxConv)}  dx matmul ${fmt(dxMatMul)}  dW conv ${fmt(byConv)}  dW matmul ${fmt(byMatMul)}  dW heap ${fmt(onHeap)}  auto: dx ${useMatMulForInputGrad(geometry) ? 'matmul' : 'conv'}, dW ${useHeapForFilterGrad(geometry) ? 'heap' : useConvForFilterGrad(geometry) ? 'conv' : 'matmul'}${winograd}`,
  );
  tf.dispose([x, f, dy]);
}
