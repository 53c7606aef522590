import * as tf from '@tensorflow/tfjs-core';
import type { Drawn, ImageSize, Transform } from '../transforms/base.js';
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
  /**
   * The `[height, width, channels]` that `load(index)` will give, where it is known without
   * decoding (an image in a decode cache, an in-memory image); else undefined. `batches` needs it
   * to skip images (`BatchOptions.skip`).
   */
  size?(index: number): [number, number, number] | undefined;
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
  /**
   * Where `BatchOptions.skip` left images out: the positions (in `indices`) of the images that
   * `xs` holds, in order. Absent when `xs` holds every image.
   */
  loaded?: number[];
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
  /**
   * Images to leave out of `xs`, asked with each image's index and variant (what the transform
   * chose for it, `Transform.variant`) for the images that have one, where the source knows every
   * image's size without decoding (`SampleSource.size`) and the transform can draw its choices
   * ahead of the pixels (`Transform.draw`). An image it returns true for
   * is neither loaded nor transformed, but its random choices are still drawn, in order, so the
   * other images get the same augmentation as without `skip`; `Batch.loaded` lists the images
   * `xs` holds. `train` skips the images whose frozen features it keeps (`frozenFeatures`).
   */
  skip?: (index: number, variant: string) => boolean;
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
      const batch = makeBatch(source, groups[next++] as number[], options, turn);
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

/** How one batch's images are loaded and transformed: all of them, or drawn ahead and some skipped. */
interface Plan {
  /** Positions (in the batch) of the images to load, in order. */
  kept: number[];
  /** What the transform chose per image; filled as images are transformed where not drawn ahead. */
  variants: (string | null)[];
  /** Transforms the image at position `k`. */
  transform(image: tf.Tensor3D, k: number): tf.Tensor3D;
  /** The images' size where none is loaded. */
  size?: ImageSize;
  /** Checks a loaded image against the size its choices were drawn for. */
  expect?(image: tf.Tensor3D, k: number): void;
}

/**
 * Draws the transform's choices for every image of the batch (the source knows their sizes),
 * then keeps the images `skip` does not want; null where the batch cannot be drawn ahead.
 */
function drawAhead(
  source: SampleSource,
  indices: number[],
  options: BatchOptions,
  where: (k: number) => string,
): (() => Plan) | null {
  const { skip, transform } = options;
  if (!skip || !source.size) return null;
  const sizes: ImageSize[] = [];
  for (const index of indices) {
    const shape = source.size(index);
    if (!shape) return null;
    const size = { height: shape[0], width: shape[1], channels: shape[2] };
    if (transform && !transform.outputSize(size)) return null;
    sizes.push(size);
  }
  // Called once the batches before this one have drawn: the generators see images in order.
  return () => {
    const drawn = sizes.map((size, k): Drawn => {
      if (!transform) return { name: 'none', variant: '', size, apply: (image) => image };
      try {
        return transform.draw(size) as Drawn;
      } catch (error) {
        throw new MedimgError('batches', `${where(k)}: ${(error as Error).message}`);
      }
    });
    const variants = drawn.map((d) => d.variant);
    const kept = indices
      .map((_, k) => k)
      .filter((k) => {
        const variant = variants[k];
        return variant === null || variant === undefined || !skip(indices[k] as number, variant);
      });
    return {
      kept,
      variants,
      size: (drawn[0] as Drawn).size,
      transform: (image, k) => (drawn[k] as Drawn).apply(image),
      expect: (image, k) => {
        const { height, width, channels } = sizes[k] as ImageSize;
        if (image.shape.join() !== [height, width, channels].join())
          throw new MedimgError(
            'batches',
            `${where(k)} decoded to [${image.shape}], but its source gave its size as [${height},${width},${channels}]`,
          );
      },
    };
  };
}

async function makeBatch(
  source: SampleSource,
  indices: number[],
  options: BatchOptions,
  after: Promise<unknown>,
): Promise<Batch> {
  const where = (k: number) =>
    source.describe ? source.describe(indices[k] as number) : `sample ${indices[k]}`;
  const { transform } = options;
  const ahead = drawAhead(source, indices, options, where);
  let plan: Plan;
  let images: tf.Tensor3D[];
  if (ahead) {
    await after;
    const drawn = ahead();
    plan = drawn;
    images = await Promise.all(plan.kept.map((k) => source.load(indices[k] as number)));
    try {
      images.forEach((image, j) => drawn.expect?.(image, drawn.kept[j] as number));
    } catch (error) {
      tf.dispose(images);
      throw error;
    }
  } else {
    const loading = Promise.all(indices.map((i) => source.load(i)));
    // On a load error, wait for the batches before this one anyway, so none is left mid-transform.
    images = await loading.finally(() => after);
    const variants: (string | null)[] = [];
    plan = {
      kept: indices.map((_, k) => k),
      variants,
      transform: (image) => {
        if (!transform) {
          variants.push('');
          return image;
        }
        const out = transform.apply(image);
        variants.push(transform.variant());
        return out;
      },
    };
  }
  const labels = indices.map((i) => source.label(i));
  try {
    return tf.tidy(() => {
      const ready = images.map((img, j) => {
        const k = plan.kept[j] as number;
        try {
          return plan.transform(img, k);
        } catch (error) {
          throw new MedimgError('batches', `${where(k)}: ${(error as Error).message}`);
        }
      });
      const shape = ready[0]?.shape;
      ready.forEach((img, j) => {
        if (shape && img.shape.some((d, i) => d !== shape[i]))
          throw new MedimgError(
            'batches',
            `images in a batch differ in size ([${shape}] vs [${img.shape}] for ${where(plan.kept[j] as number)}): add a Letterbox or Resize transform`,
          );
      });
      const { height, width, channels } = plan.size ?? { height: 0, width: 0, channels: 0 };
      const xs = (ready.length ? tf.stack(ready) : tf.zeros([0, height, width, channels])) as tf.Tensor4D;
      const ys = tf.cast(
        tf.oneHot(tf.tensor1d(labels, 'int32'), source.numClasses),
        'float32',
      ) as tf.Tensor2D;
      const loaded = plan.kept.length < indices.length ? { loaded: plan.kept } : {};
      return {
        xs,
        ys,
        labels,
        indices,
        variants: plan.variants,
        ...loaded,
      } as unknown as tf.TensorContainerObject;
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
    size: () => [options.height, options.width, channels],
    load: async (i) =>
      tf.tensor3d(Float32Array.from((samples[i] as { pixels: ArrayLike<number> }).pixels), [
        options.height,
        options.width,
        channels,
      ]),
    describe: (i) => `sample ${i}`,
  };
}
