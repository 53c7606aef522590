/**
 * The SimpleCNN recipe's augmentation (flip, rotation of up to 10 degrees, x / 255) through
 * `batches()` over 640 cached 128x128 grayscale images, with the rotation as the heap kernel
 * (`MedimgRotateNearest`) and as the JavaScript gather it replaced, alternating in one process
 * (eight rounds, ABBA), on wasm with 2 threads:
 *   MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1099511627776 node --import tsx bench/rotation-ab.ts
 * (the bench's allocator settings: freed memory kept mapped). Prints the median epoch of each.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ROTATE_NEAREST_KERNEL } from '../src/backend/kernel-names.js';
import { pixelsTensor } from '../src/data/pixels.js';
import {
  arraySource,
  batches,
  Compose,
  RandomHorizontalFlip,
  RandomRotation,
  Rescale,
  setupBackend,
} from '../src/node.js';
import { alternate, median } from './common.js';

await setupBackend('wasm');
const size = 128;
const images = Array.from({ length: 640 }, (_, i) => ({
  pixels: Uint8Array.from({ length: size * size }, (_, j) => (i * 7 + j * 13) % 256),
  label: i % 4,
}));
// Cached 8-bit pixels reach the heap as bytes, as folderSource's cache does.
const shape = { height: size, width: size, channels: 1, numClasses: 4 };
const source = {
  ...arraySource([{ pixels: new Uint8Array(size * size), label: 0 }], shape),
  length: images.length,
  label: (i: number) => (images[i] as { label: number }).label,
  load: async (i: number) => pixelsTensor((images[i] as { pixels: Uint8Array }).pixels, [size, size, 1]),
};
const kernel = tf.getKernel(ROTATE_NEAREST_KERNEL, 'wasm');
if (!kernel) throw new Error('the rotation kernel is not registered');
const useKernel = (on: boolean) => {
  const registered = tf.getKernel(ROTATE_NEAREST_KERNEL, 'wasm') !== undefined;
  if (on && !registered) tf.registerKernel(kernel);
  if (!on && registered) tf.unregisterKernel(ROTATE_NEAREST_KERNEL, 'wasm');
};
const epoch = async () => {
  const transform = new Compose(
    [new RandomHorizontalFlip(), new RandomRotation({ degrees: 10 }), new Rescale({ scale: 1 / 255 })],
    { seed: 1 },
  );
  const t0 = performance.now();
  for await (const b of batches(source, { batchSize: 32, transform, shuffle: true, seed: 1 }))
    tf.dispose([b.xs, b.ys]);
  return performance.now() - t0;
};
const { on: kernelTimes, off: gatherTimes } = await alternate(8, useKernel, epoch, 1);
const times = { kernel: kernelTimes, gather: gatherTimes };
for (const [name, xs] of Object.entries(times))
  console.log(
    `${name}: ${median(xs).toFixed(0)} ms per epoch of 640 images (${(median(xs) / 640).toFixed(3)} ms per image)`,
  );
