import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { check } from '../util/errors.js';

/**
 * Test-time augmentation views: 1 = the image only, 2 = the image and its horizontal (left-right)
 * mirror. Only the horizontal flip is used: it is the one augmentation that keeps a medical image
 * plausible for every modality this library trains on (anatomy is close to left-right symmetric;
 * an upside-down scan is not a scan the model will meet).
 */
export type TtaViews = 1 | 2;

/** Checks a `tta` option (1 or 2 views) and returns it. */
export function checkTta(op: string, tta: unknown): TtaViews {
  check(
    tta === 1 || tta === 2,
    op,
    () =>
      `tta must be 1 (no test-time augmentation) or 2 (the image and its horizontal flip), got ${String(tta)}`,
  );
  return tta;
}

/**
 * Class probabilities of a batch of preprocessed images `[B, H, W, C]`, averaged over the
 * test-time augmentation views (the images and, with `tta: 2`, their horizontal flips). Returns a
 * new `[B, numClasses]` tensor; the input is not disposed.
 *
 * @example
 * const probs = predictWithTta(model, xs, 2); // mean of model(xs) and model(flip(xs))
 */
export function predictWithTta(model: tfl.LayersModel, xs: tf.Tensor4D, tta: TtaViews = 1): tf.Tensor2D {
  checkTta('predictWithTta', tta);
  return tf.tidy(() => {
    const plain = model.predict(xs) as tf.Tensor2D;
    if (tta === 1) return plain;
    const mirrored = model.predict(tf.reverse(xs, 2)) as tf.Tensor2D;
    return tf.div(tf.add(plain, mirrored), 2) as tf.Tensor2D;
  });
}

/**
 * A view of `model` whose `predict` averages the test-time augmentation views (everything else
 * is the model's own): lets code that only calls `model.predict` score with TTA.
 */
export function withTta(model: tfl.LayersModel, tta: TtaViews): tfl.LayersModel {
  if (tta === 1) return model;
  const view = Object.create(model) as tfl.LayersModel;
  Object.defineProperty(view, 'predict', {
    value: (xs: tf.Tensor4D) => predictWithTta(model, xs, tta),
  });
  return view;
}
