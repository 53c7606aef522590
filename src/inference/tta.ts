import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Transform } from '../transforms/base.js';
import { check } from '../util/errors.js';

/**
 * Test-time augmentation views: 1 = the image only, 2 = the image and one flip, 4 = the image,
 * its horizontal and vertical flips and both. The flips are the ones the model was trained with
 * ({@link trainingFlips} of its training transform, saved with the classifier): a model that
 * never saw an upside-down scan is not asked to classify one.
 */
export type TtaViews = 1 | 2 | 4;

/** Every {@link TtaViews} value. */
export const TTA_VIEWS: readonly TtaViews[] = [1, 2, 4];

/** A flip a model can be trained with: `'horizontal'` (left-right) or `'vertical'` (top-bottom). */
export type TtaFlip = 'horizontal' | 'vertical';

const FLIPS: readonly TtaFlip[] = ['horizontal', 'vertical'];

/**
 * The flips assumed when none are recorded (classifiers saved before the training flips were):
 * the horizontal flip alone, the one that keeps a scan plausible for every modality this library
 * trains on (anatomy is close to left-right symmetric).
 */
export const DEFAULT_TTA_FLIPS: readonly TtaFlip[] = ['horizontal'];

/** Checks a list of flips and returns it without repeats, horizontal first. */
export function checkTtaFlips(op: string, flips: unknown): TtaFlip[] {
  check(
    Array.isArray(flips) && flips.every((f) => FLIPS.includes(f)),
    op,
    () => `flips must be a list of 'horizontal' and 'vertical', got ${JSON.stringify(flips)}`,
  );
  return FLIPS.filter((f) => flips.includes(f));
}

/** The TTA view counts that `flips` give: 1, 2 with one flip, 1, 2 or 4 with both. */
function available(flips: readonly TtaFlip[]): TtaViews[] {
  return flips.length === 0 ? [1] : flips.length === 1 ? [1, 2] : [1, 2, 4];
}

/**
 * Checks a `tta` option (1, 2 or 4 views) and returns it. With `flips` (the flips the model was
 * trained with), also that there are enough of them: 2 views need a flip, 4 need both.
 */
export function checkTta(op: string, tta: unknown, flips?: readonly TtaFlip[]): TtaViews {
  check(
    TTA_VIEWS.includes(tta as TtaViews),
    op,
    () =>
      `tta must be 1 (no test-time augmentation), 2 (the image and a flip) or 4 (the image, its horizontal and vertical flips and both), got ${String(tta)}`,
  );
  const views = tta as TtaViews;
  if (flips !== undefined) {
    const known = checkTtaFlips(op, flips);
    const allowed = available(known);
    check(
      allowed.includes(views),
      op,
      () =>
        `tta ${views} needs ${views === 4 ? 'both the horizontal and the vertical flip' : 'a flip'}, but the available flips (those the model was trained with) are: ${known.join(', ') || 'none'}; tta can be ${allowed.join(' or ')}`,
    );
  }
  return views;
}

/**
 * The flips of each view `tta` averages: `[[]]` for 1, `[[], [flip]]` for 2 (the first of
 * `flips`, horizontal when both are there), `[[], ['horizontal'], ['vertical'], ['horizontal',
 * 'vertical']]` for 4. Throws when `flips` has too few flips for `tta`.
 *
 * @example
 * ttaViews(2, ['vertical']); // [[], ['vertical']]
 */
export function ttaViews(tta: TtaViews, flips: readonly TtaFlip[] = DEFAULT_TTA_FLIPS): TtaFlip[][] {
  return viewsOf('ttaViews', tta, flips);
}

function viewsOf(op: string, tta: unknown, flips: readonly TtaFlip[]): TtaFlip[][] {
  const views = checkTta(op, tta, flips);
  if (views === 1) return [[]];
  if (views === 2) return [[], [checkTtaFlips(op, flips)[0] as TtaFlip]];
  return [[], ['horizontal'], ['vertical'], ['horizontal', 'vertical']];
}

/** The views in words, e.g. "each image and its vertical flip". */
export function describeTta(tta: TtaViews, flips: readonly TtaFlip[] = DEFAULT_TTA_FLIPS): string {
  const views = ttaViews(tta, flips);
  if (views.length === 1) return 'each image alone';
  if (views.length === 2) return `each image and its ${views[1]?.[0]} flip`;
  return 'each image, its horizontal and vertical flips and both';
}

/**
 * The flips a training transform applies: `RandomHorizontalFlip` and `RandomVerticalFlip` with a
 * probability above 0, found at any depth of `Compose`, `RandomApply` and `OneOf` (any transform
 * with child `transforms`). The views test-time augmentation may use; save them with the
 * classifier (`evaluateAndSave` does).
 *
 * @example
 * trainingFlips(new Compose([new RandomVerticalFlip(), new Rescale({ scale: 1 / 255 })])); // ['vertical']
 */
export function trainingFlips(transform: Transform | null | undefined): TtaFlip[] {
  const found = new Set<TtaFlip>();
  const walk = (t: unknown) => {
    if (typeof t !== 'object' || t === null) return;
    const { name } = t as Transform;
    if (name === 'RandomHorizontalFlip' || name === 'RandomVerticalFlip') {
      const p = (t as Transform).getConfig().p;
      if (typeof p === 'number' && p > 0)
        found.add(name === 'RandomHorizontalFlip' ? 'horizontal' : 'vertical');
    }
    const children = (t as { transforms?: unknown }).transforms;
    if (Array.isArray(children)) for (const child of children) walk(child);
  };
  walk(transform);
  return FLIPS.filter((f) => found.has(f));
}

/** `xs` `[B, H, W, C]` mirrored by `flips` (a new tensor; the input itself with no flip). */
function flipped(xs: tf.Tensor4D, flips: readonly TtaFlip[]): tf.Tensor4D {
  const axes = flips.map((f) => (f === 'horizontal' ? 2 : 1));
  return axes.length ? tf.reverse(xs, axes) : xs;
}

/**
 * Class probabilities of a batch of preprocessed images `[B, H, W, C]`, averaged over the
 * test-time augmentation views (see {@link ttaViews}): the images and, with `tta: 2`, their flip
 * (the first of `flips`), with `tta: 4` their horizontal and vertical flips and both. `flips` are
 * the flips the model was trained with (default horizontal only). Returns a new
 * `[B, numClasses]` tensor; the input is not disposed.
 *
 * @example
 * const probs = predictWithTta(model, xs, 2); // mean of model(xs) and model(horizontal flip of xs)
 * const four = predictWithTta(model, xs, 4, ['horizontal', 'vertical']);
 */
export function predictWithTta(
  model: tfl.LayersModel,
  xs: tf.Tensor4D,
  tta: TtaViews = 1,
  flips: readonly TtaFlip[] = DEFAULT_TTA_FLIPS,
): tf.Tensor2D {
  const views = viewsOf('predictWithTta', tta, flips);
  return tf.tidy(() => {
    if (views.length === 1) return model.predict(xs) as tf.Tensor2D;
    const probs = views.map((v) => model.predict(flipped(xs, v)) as tf.Tensor2D);
    return tf.div(tf.addN(probs), views.length) as tf.Tensor2D;
  });
}

/**
 * A view of `model` whose `predict` averages the test-time augmentation views (everything else
 * is the model's own): lets code that only calls `model.predict` score with TTA.
 */
export function withTta(
  model: tfl.LayersModel,
  tta: TtaViews,
  flips: readonly TtaFlip[] = DEFAULT_TTA_FLIPS,
): tfl.LayersModel {
  checkTta('withTta', tta, flips);
  if (tta === 1) return model;
  const view = Object.create(model) as tfl.LayersModel;
  Object.defineProperty(view, 'predict', {
    value: (xs: tf.Tensor4D) => predictWithTta(model, xs, tta, flips),
  });
  return view;
}
