import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { batches, type SampleSource } from '../data/loader.js';
import { measureBatchNormInputs } from '../models/batchnorm.js';
import { flattenLayers } from '../models/trainability.js';
import type { Transform } from '../transforms/base.js';
import { check } from '../util/errors.js';

export interface RecalibrateOptions {
  /** Per-image pipeline, as in training (augmentation included or not: your choice). */
  transform?: Transform;
  batchSize?: number;
  /**
   * Which BatchNormalization layers get new statistics: `'trainable'` (default: the ones that
   * trained, whose statistics may lag behind their weights), `'all'`, or layer names.
   */
  layers?: 'trainable' | 'all' | readonly string[];
  /** Stop after this many batches (default: the whole source). */
  maxBatches?: number;
  /** Called after each batch with the number of images seen. */
  onProgress?: (seen: number, total: number) => void;
}

/**
 * Recomputes the moving mean and variance of BatchNormalization layers with the weights fixed:
 * the model runs over `source` in training mode (each BatchNormalization normalises with its
 * batch's statistics, as during training, and dropout is off), and each selected layer's moving
 * statistics become the exact mean and unbiased variance of everything it saw, pooled over all
 * batches. This is `torch.optim.swa_utils.update_bn`, with exact pooling instead of an average
 * of per-batch variances.
 *
 * Why: inference normalises with the moving statistics, which training updates as an
 * exponential average. With Keras's momenta (0.99, MobileNetV2's 0.999) the average of a
 * layer that is being fine-tuned trails its weights by hundreds of steps, so a model that fits
 * its training data can score far lower in inference. After recalibration the statistics
 * describe the final weights. Use it after any training (fine-tuning, SWA, a short run).
 *
 * Returns the names of the layers it recalibrated and how many images it used.
 *
 * @example
 * unfreeze(model, { lastBlocks: 1, batchNorm: 'train' });
 * await train({ model, train: source, optimizer, epochs: 5, transform });
 * await recalibrateBatchNorm(model, source, { transform: preprocess });
 */
export async function recalibrateBatchNorm(
  model: tfl.LayersModel,
  source: SampleSource,
  options: RecalibrateOptions = {},
): Promise<{ layers: string[]; images: number }> {
  const op = 'recalibrateBatchNorm';
  const selector = options.layers ?? 'trainable';
  const all = flattenLayers(model).filter((l) => l.getClassName() === 'BatchNormalization');
  let chosen: tfl.layers.Layer[];
  if (selector === 'all') chosen = all;
  else if (selector === 'trainable') chosen = all.filter((l) => l.trainable);
  else {
    check(Array.isArray(selector), op, `layers must be 'trainable', 'all' or a list of names`);
    chosen = selector.map((name) => {
      const layer = all.find((l) => l.name === name);
      check(layer, op, `no BatchNormalization layer named '${name}'`);
      return layer as tfl.layers.Layer;
    });
  }
  if (!chosen.length) return { layers: [], images: 0 };
  const batchSize = options.batchSize ?? 32;
  const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
  check(
    maxBatches === Number.POSITIVE_INFINITY || (Number.isInteger(maxBatches) && maxBatches > 0),
    op,
    `maxBatches must be a positive integer, got ${String(options.maxBatches)}`,
  );
  let images = 0;
  const total = Math.min(source.length, maxBatches * batchSize);
  const moments = await measureBatchNormInputs(chosen, async () => {
    let k = 0;
    for await (const batch of batches(source, {
      batchSize,
      ...(options.transform ? { transform: options.transform } : {}),
    })) {
      try {
        // Inference mode everywhere else (dropout off, other BatchNorms use their statistics);
        // the measured layers normalise with batch statistics, as they did in training.
        tf.dispose(model.predict(batch.xs, { batchSize: batch.labels.length }) as tf.Tensor);
      } finally {
        tf.dispose([batch.xs, batch.ys]);
      }
      images += batch.labels.length;
      options.onProgress?.(images, total);
      if (++k >= maxBatches) break;
    }
  });
  const names: string[] = [];
  for (const layer of chosen) {
    const m = moments.get(layer);
    if (!m || m.count < 2) continue;
    const bn = layer as unknown as { movingMean: tfl.LayerVariable; movingVariance: tfl.LayerVariable };
    const variance = Float32Array.from(m.m2, (v) => v / (m.count - 1));
    tf.tidy(() => {
      bn.movingMean.write(tf.tensor1d(Float32Array.from(m.mean)));
      bn.movingVariance.write(tf.tensor1d(variance));
    });
    names.push(layer.name);
  }
  return { layers: names, images };
}
