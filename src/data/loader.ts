import * as tf from '@tensorflow/tfjs-core';
import type { Transform } from '../transforms/base.js';
import { check, MedimgError } from '../util/errors.js';
import { Random } from '../util/random.js';

/** A source of labelled images: decoded on demand (from disk, a buffer, or generated). */
export interface SampleSource {
  readonly length: number;
  readonly numClasses: number;
  /** Label of sample `index` (cheap, no decoding). */
  label(index: number): number;
  /** Decodes sample `index` into an H x W x C float32 tensor (0-255). The caller disposes it. */
  load(index: number): Promise<tf.Tensor3D>;
  /** Human-readable name of sample `index` (a path), for errors. */
  describe?(index: number): string;
}

/** One batch: images `[B, H, W, C]`, one-hot labels `[B, numClasses]`, and the sample indices. */
export interface Batch {
  xs: tf.Tensor4D;
  ys: tf.Tensor2D;
  labels: number[];
  indices: number[];
  /**
   * What the transform chose for each image (`Transform.variant`): equal index and variant mean
   * an equal image; `''` without a transform, `null` where the transform cannot say.
   */
  variants?: (string | null)[];
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle the order each epoch with this generator seed (epoch e uses a seed derived from it). */
  shuffle?: boolean;
  seed?: number;
  /** Epoch number, so each epoch's order differs reproducibly. Default 0. */
  epoch?: number;
  /** Applied to each image after loading (augmentation and normalisation). */
  transform?: Transform;
  /** Batches prepared ahead while the previous one trains. Default 2. */
  prefetch?: number;
  /** Keep the last, smaller batch. Default true. */
  keepRemainder?: boolean;
}

/**
 * Streams batches of `{ xs, ys }` over a {@link SampleSource} with bounded memory: only
 * `prefetch + 1` batches are decoded at a time, decoding of the next batch overlaps the
 * caller's training step (sharp decodes on libuv's thread pool, off the main thread), and
 * each image passes through `transform`. The caller disposes each batch's tensors.
 *
 * @example
 * for await (const { xs, ys } of batches(source, { batchSize: 32, shuffle: true, seed: 1, transform })) {
 *   await model.trainOnBatch(xs, ys);
 *   tf.dispose([xs, ys]);
 * }
 */
export async function* batches(source: SampleSource, options: BatchOptions): AsyncGenerator<Batch> {
  const op = 'batches';
  const batchSize = options?.batchSize;
  check(
    Number.isInteger(batchSize) && batchSize > 0,
    op,
    `batchSize must be a positive integer, got ${String(batchSize)}`,
  );
  check(source.length > 0, op, 'the data source is empty');
  const order = Array.from({ length: source.length }, (_, i) => i);
  if (options.shuffle) {
    const seed = options.seed ?? 0;
    new Random(seed + 7919 * (options.epoch ?? 0)).shuffle(order);
  }
  const groups: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) groups.push(order.slice(i, i + batchSize));
  if (options.keepRemainder === false && (groups.at(-1)?.length ?? 0) < batchSize) groups.pop();
  const prefetch = Math.max(0, options.prefetch ?? 2);
  const pending: Promise<Batch>[] = [];
  let next = 0;
  // Batches load concurrently, but each applies its transform only after the one before it has:
  // a seeded transform then draws its random numbers in batch order, whatever order the files
  // finish decoding in, so the same seed gives the same augmentation.
  let turn: Promise<unknown> = Promise.resolve();
  const fill = () => {
    while (pending.length <= prefetch && next < groups.length) {
      const batch = makeBatch(source, groups[next++] as number[], options.transform, turn);
      turn = batch.catch(() => {});
      pending.push(batch);
    }
  };
  try {
    fill();
    while (pending.length) {
      const batch = await (pending.shift() as Promise<Batch>);
      fill();
      yield batch;
    }
  } finally {
    // A consumer that stops early (break, error) still frees what was prepared.
    for (const p of pending) p.then((b) => tf.dispose([b.xs, b.ys])).catch(() => {});
  }
}

async function makeBatch(
  source: SampleSource,
  indices: number[],
  transform: Transform | undefined,
  after: Promise<unknown>,
): Promise<Batch> {
  const loading = Promise.all(indices.map((i) => source.load(i)));
  // On a load error, wait for the batches before this one anyway, so none is left mid-transform.
  const images = await loading.finally(() => after);
  const labels = indices.map((i) => source.label(i));
  const variants: (string | null)[] = [];
  try {
    return tf.tidy(() => {
      const ready = images.map((img, k) => {
        if (!transform) {
          variants.push('');
          return img;
        }
        try {
          const out = transform.apply(img);
          variants.push(transform.variant());
          return out;
        } catch (error) {
          const where = source.describe ? source.describe(indices[k] as number) : `sample ${indices[k]}`;
          throw new MedimgError('batches', `${where}: ${(error as Error).message}`);
        }
      });
      const shape = ready[0]!.shape;
      ready.forEach((img, k) => {
        if (img.shape.some((d, j) => d !== shape[j])) {
          const where = source.describe ? source.describe(indices[k] as number) : `sample ${indices[k]}`;
          throw new MedimgError(
            'batches',
            `images in a batch differ in size ([${shape}] vs [${img.shape}] for ${where}): add a Letterbox or Resize transform`,
          );
        }
      });
      const xs = tf.stack(ready) as tf.Tensor4D;
      const ys = tf.cast(
        tf.oneHot(tf.tensor1d(labels, 'int32'), source.numClasses),
        'float32',
      ) as tf.Tensor2D;
      return { xs, ys, labels, indices, variants } as unknown as tf.TensorContainerObject;
    }) as unknown as Batch;
  } finally {
    tf.dispose(images);
  }
}

/** A {@link SampleSource} over images already in memory (e.g. {@link syntheticDataset}). */
export function arraySource(
  samples: readonly { pixels: Float32Array | Uint8Array; label: number }[],
  options: { height: number; width: number; channels?: number; numClasses: number },
): SampleSource {
  const channels = options.channels ?? 1;
  const n = options.height * options.width * channels;
  samples.forEach((s, i) => {
    if (s.pixels.length !== n)
      throw new MedimgError('arraySource', `sample ${i} has ${s.pixels.length} values, expected ${n}`);
  });
  return {
    length: samples.length,
    numClasses: options.numClasses,
    label: (i) => (samples[i] as { label: number }).label,
    load: async (i) =>
      tf.tensor3d(Float32Array.from((samples[i] as { pixels: ArrayLike<number> }).pixels), [
        options.height,
        options.width,
        channels,
      ]),
    describe: (i) => `sample ${i}`,
  };
}
