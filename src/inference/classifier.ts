import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { applyTemperature } from '../metrics/calibration.js';
import { argmax } from '../metrics/inputs.js';
import { predictWithThreshold } from '../metrics/operating-point.js';
import { type ReferralBy, referCases, referralScores } from '../metrics/referral.js';
import type { ReviewChoices } from '../metrics/review.js';
import { finalizeModel } from '../models/finalize.js';
import { registerAdaBelief } from '../optimizers/adabelief.js';
import type { Transform, TransformJSON } from '../transforms/base.js';
import type { ImageWindow } from '../transforms/functional/window.js';
import { transformFromJSON } from '../transforms/serialization.js';
import { check, MedimgError } from '../util/errors.js';
import { VERSION } from '../version.js';
import {
  checkTta,
  checkTtaFlips,
  DEFAULT_TTA_FLIPS,
  predictWithTta,
  type TtaFlip,
  type TtaViews,
} from './tta.js';

/** How images are decoded before the preprocessing pipeline (mirrors the Node decoder's options). */
export interface DecodeSpec {
  channels: 1 | 3;
  resize?: { height: number; width: number; fit?: 'contain' | 'fill' | 'cover' };
  /** Window of DICOM and 16-bit images (see the Node decoder's `window`). */
  window?: ImageWindow;
}

/**
 * The screening decision rule saved with a classifier: call an image abnormal when
 * P(not normal) = 1 - p[normalClass] (after the temperature) is >= `threshold`. Chosen on
 * validation data for a sensitivity target (see `evaluateAndSave`), never on the test data.
 */
export interface SavedOperatingPoint {
  threshold: number;
  /** The sensitivity the threshold was chosen to reach on validation data. */
  sensitivityTarget: number;
  /** What it gave on the validation data that chose it. */
  validation: { sensitivity: number; specificity: number; images: number };
}

/**
 * The "refer to a human" rule saved with a classifier: images whose largest probability is below
 * `threshold` (or whose entropy is above it) are flagged for a human reader. Chosen on validation
 * data as the cut-off keeping the most images at `targetAccuracy`.
 */
export interface SavedReferral {
  by: ReferralBy;
  threshold: number;
  targetAccuracy: number;
  /** Fraction of validation images kept (not referred) and the accuracy on them. */
  validation: { coverage: number; accuracy: number; images: number };
}

/** Contents of `classifier.json` in a saved classifier folder. */
export interface ClassifierMeta {
  format: 'medimg-classifier';
  version: 1;
  library: string;
  classNames: string[];
  inputShape: [number, number, number];
  decode: DecodeSpec;
  /** The deterministic pipeline applied after decoding (a transform in JSON). */
  preprocessing: TransformJSON | null;
  /** Name of the normal / healthy class, for the missed-finding warning. */
  normalClass: string | null;
  metrics?: Record<string, unknown>;
  /**
   * How the model was made (a MONAI-bundle-style model card): the run's command line, resolved
   * options, seed, data and split, library and backend versions. The CLI writes its `run.json` here.
   */
  modelCard?: Record<string, unknown>;
  /**
   * Temperature scaling fitted on validation data: `predict` reports softmax(log p / T) instead
   * of the model's p (same class ranking, better calibrated probabilities). Absent: T = 1.
   */
  temperature?: number;
  /** Threshold on P(not normal) that `predict` decides with (needs `normalClass`). */
  operatingPoint?: SavedOperatingPoint;
  /** One-vs-rest thresholds on p[class] chosen on validation (reported by `evaluate`, not used by `predict`). */
  classThresholds?: Record<string, number>;
  /** The referral rule `predict` flags uncertain images with. */
  referral?: SavedReferral;
  /** Test-time augmentation views `predict` averages by default (what the rules were chosen with). */
  tta?: TtaViews;
  /**
   * The flips the model was trained with (`trainingFlips` of its training transform, recorded by
   * `evaluateAndSave`): the test-time augmentation views are the image and these flips (2 views
   * need one, 4 need both). Absent (classifiers saved without it): the horizontal flip.
   */
  flips?: TtaFlip[];
  createdAt: string;
}

/** A prediction: the class, every class's probability, and how the class was decided. */
export interface Prediction {
  className: string;
  classIndex: number;
  /** Class probabilities, after the classifier's temperature when it has one. */
  probabilities: Record<string, number>;
  /**
   * How the class was chosen: `'argmax'` (the most probable class) or `'threshold'` (the saved
   * operating point on P(not normal): normal only when P(not normal) < threshold, else the most
   * probable abnormal class).
   */
  rule: 'argmax' | 'threshold';
  /** P(not normal) = 1 - p[normal], when the classifier knows its normal class. */
  abnormalScore?: number;
  /** The threshold on P(not normal) used (rule `'threshold'`). */
  threshold?: number;
  /** The temperature the probabilities were scaled with (absent: none). */
  temperature?: number;
  /** Test-time augmentation views averaged (1: none). */
  tta: TtaViews;
  /** One sentence on how the class was decided, with a threshold. */
  decision?: string;
  /** Set when the final class is the normal one but an abnormal class is close (within `margin`). */
  warning?: string;
  /** True when the saved referral rule flags the image as too uncertain: a human should read it. */
  referToHuman?: boolean;
  /** Why the image is referred (with `referToHuman`). */
  referral?: string;
}

/** Options of {@link Classifier.predictTensor} and {@link Classifier.predictBatch}. */
export interface PredictOptions {
  /** How close an abnormal class must be to a normal call to warn (default 0.2). */
  margin?: number;
  /**
   * Test-time augmentation views (1, 2 or 4, drawn from the classifier's training flips); default
   * the classifier's saved `tta`, else 1.
   */
  tta?: TtaViews;
}

/** A loaded classifier: the model with exactly the preprocessing it was trained with. */
export class Classifier {
  readonly preprocessing: Transform | null;
  /** The flips test-time augmentation draws its views from: the saved `flips`, else horizontal. */
  readonly flips: readonly TtaFlip[];
  constructor(
    readonly model: tfl.LayersModel,
    readonly meta: ClassifierMeta,
  ) {
    check(
      meta?.format === 'medimg-classifier',
      'Classifier',
      'classifier.json is not a medimg-classify classifier',
    );
    checkClassifierRules('Classifier', meta, meta.classNames, meta.normalClass ?? null);
    this.preprocessing = meta.preprocessing ? transformFromJSON(meta.preprocessing) : null;
    this.flips = meta.flips ?? DEFAULT_TTA_FLIPS;
  }

  /**
   * Classifies one decoded image (H x W x C, 0-255, as `decodeImage` or `imageFromBrowser`
   * give) with the saved preprocessing, test-time augmentation, temperature and threshold.
   * `margin` sets when a close abnormal class triggers a missed-finding warning.
   */
  predictTensor(image: tf.Tensor3D, options: PredictOptions = {}): Prediction {
    const tta = checkTta('predict', options.tta ?? this.meta.tta ?? 1, this.flips);
    const probs = tf.tidy(() => {
      const x = this.preprocessing ? this.preprocessing.apply(image) : image;
      check(
        x.shape.every((d, i) => d === this.meta.inputShape[i]),
        'predict',
        `the preprocessed image is [${x.shape}] but the model expects [${this.meta.inputShape}]`,
      );
      return predictWithTta(this.model, tf.expandDims(x, 0) as tf.Tensor4D, tta, this.flips).dataSync();
    });
    return describePrediction(Array.from(probs), this.meta, options.margin ?? 0.2, { tta });
  }

  /**
   * Classifies several decoded images in one forward pass (each preprocessed as in
   * {@link predictTensor}); the images may differ in size only if the preprocessing resizes them.
   */
  predictBatch(images: readonly tf.Tensor3D[], options: PredictOptions = {}): Prediction[] {
    const tta = checkTta('predict', options.tta ?? this.meta.tta ?? 1, this.flips);
    if (!images.length) return [];
    const probs = tf.tidy(() => {
      const xs = images.map((image, k) => {
        const x = this.preprocessing ? this.preprocessing.apply(image) : image;
        check(
          x.shape.every((d, i) => d === this.meta.inputShape[i]),
          'predict',
          `image ${k}: the preprocessed image is [${x.shape}] but the model expects [${this.meta.inputShape}]`,
        );
        return x;
      });
      return predictWithTta(
        this.model,
        tf.stack(xs) as tf.Tensor4D,
        tta,
        this.flips,
      ).arraySync() as number[][];
    });
    return probs.map((p) => describePrediction(p, this.meta, options.margin ?? 0.2, { tta }));
  }

  dispose(): void {
    this.model.dispose();
  }
}

const pct = (p: number) => `${(100 * p).toFixed(1)}%`;

/**
 * Turns a model's probabilities into a {@link Prediction} with the classifier's saved rules: the
 * temperature rescales the probabilities; with a saved operating point the class follows
 * `predictWithThreshold` on P(not normal) (the prediction says so in `rule` and `decision`);
 * the missed-finding warning when the final class is normal but an abnormal class is within
 * `margin`; and the referral flag when the saved referral rule finds the image too uncertain.
 */
export function describePrediction(
  probs: number[],
  meta: ClassifierMeta,
  margin: number,
  options: { tta?: TtaViews } = {},
): Prediction {
  const temperature = meta.temperature;
  const p =
    temperature !== undefined && temperature !== 1
      ? (applyTemperature([probs], temperature)[0] as number[])
      : probs;
  const probabilities = Object.fromEntries(meta.classNames.map((c, i) => [c, p[i] as number]));
  const normal = meta.normalClass ? meta.classNames.indexOf(meta.normalClass) : -1;
  const point = normal >= 0 ? meta.operatingPoint : undefined;
  const classIndex = point
    ? (predictWithThreshold([p], { normalClass: normal, threshold: point.threshold })[0] as number)
    : argmax(p);
  const out: Prediction = {
    className: meta.classNames[classIndex] as string,
    classIndex,
    probabilities,
    rule: point ? 'threshold' : 'argmax',
    tta: options.tta ?? 1,
  };
  if (temperature !== undefined && temperature !== 1) out.temperature = temperature;
  if (normal >= 0) out.abnormalScore = 1 - (p[normal] as number);
  if (point) {
    const score = out.abnormalScore as number;
    out.threshold = point.threshold;
    const chosen = `the threshold chosen on validation data for sensitivity ${pct(point.sensitivityTarget)}`;
    out.decision =
      score >= point.threshold
        ? `abnormal: P(not ${meta.normalClass}) ${pct(score)} >= ${pct(point.threshold)}, ${chosen}`
        : `${meta.normalClass}: P(not ${meta.normalClass}) ${pct(score)} < ${pct(point.threshold)}, ${chosen}`;
  }
  if (meta.normalClass && out.className === meta.normalClass) {
    const top = p[classIndex] as number;
    const rival = meta.classNames
      .map((c, i) => ({ c, p: p[i] as number }))
      .filter((r) => r.c !== meta.normalClass)
      .sort((a, b) => b.p - a.p)[0];
    if (rival && top - rival.p < margin) {
      out.warning =
        rival.p > top
          ? `Called ${meta.normalClass} by the threshold, but ${rival.c} is more probable (${pct(rival.p)} vs ${pct(top)}): review this image.`
          : `Called ${meta.normalClass}, but ${rival.c} is close (${pct(rival.p)} vs ${pct(top)}): review this image.`;
    }
  }
  const referral = meta.referral;
  if (referral && referCases([p], { threshold: referral.threshold, by: referral.by }).length) {
    const value = referralScores([p], referral.by)[0] as number;
    out.referToHuman = true;
    out.referral =
      referral.by === 'maxProbability'
        ? `uncertain: top probability ${pct(value)} < ${pct(referral.threshold)}, the cut-off chosen on validation data for ${pct(referral.targetAccuracy)} accuracy on the images kept: refer to a human reader.`
        : `uncertain: entropy ${value.toFixed(3)} > ${referral.threshold.toFixed(3)} nats, the cut-off chosen on validation data for ${pct(referral.targetAccuracy)} accuracy on the images kept: refer to a human reader.`;
  }
  return out;
}

/** The decision rules a classifier can carry (all chosen on validation data). */
export type ClassifierRules = Partial<
  Pick<ClassifierMeta, 'temperature' | 'operatingPoint' | 'classThresholds' | 'referral' | 'tta' | 'flips'>
>;

/** Checks saved decision rules against the class names and normal class. */
export function checkClassifierRules(
  op: string,
  rules: ClassifierRules,
  classNames: readonly string[],
  normalClass: string | null,
): void {
  const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (rules.temperature !== undefined)
    check(
      finite(rules.temperature) && rules.temperature > 0,
      op,
      `temperature must be a positive number, got ${String(rules.temperature)}`,
    );
  if (rules.operatingPoint !== undefined) {
    check(normalClass !== null, op, 'an operatingPoint needs a normalClass: it thresholds P(not normal)');
    const t = rules.operatingPoint.threshold;
    check(finite(t) && t >= 0 && t <= 1, op, `operatingPoint.threshold must be in [0, 1], got ${String(t)}`);
  }
  if (rules.referral !== undefined) {
    const { by, threshold } = rules.referral;
    check(
      by === 'maxProbability' || by === 'entropy',
      op,
      `referral.by must be 'maxProbability' or 'entropy'`,
    );
    check(finite(threshold), op, `referral.threshold must be a finite number, got ${String(threshold)}`);
  }
  for (const [name, t] of Object.entries(rules.classThresholds ?? {})) {
    check(classNames.includes(name), op, `classThresholds: '${name}' is not one of ${classNames.join(', ')}`);
    check(finite(t), op, `classThresholds.${name} must be a finite number, got ${String(t)}`);
  }
  if (rules.flips !== undefined) checkTtaFlips(op, rules.flips);
  if (rules.tta !== undefined) checkTta(op, rules.tta, rules.flips ?? DEFAULT_TTA_FLIPS);
}

/**
 * The decision rules saved with a classifier as the {@link ReviewChoices} that `reviewSplit` and
 * `writeEvaluation` apply frozen (figures only known at choice time, such as the NLL of the
 * temperature fit, are NaN). Undefined when the classifier has no saved rule.
 *
 * @example
 * const choices = classifierChoices(clf.meta);
 * await writeEvaluation(metrics, 'out', { classNames, normalClass: 'notumor', ...(choices ? { choices } : {}) });
 */
export function classifierChoices(meta: ClassifierMeta): ReviewChoices | undefined {
  const { temperature, operatingPoint, referral, classThresholds } = meta;
  if (temperature === undefined && !operatingPoint && !referral && !classThresholds) return undefined;
  const nan = Number.NaN;
  const images = operatingPoint?.validation.images ?? referral?.validation.images ?? nan;
  return {
    sensitivity: operatingPoint?.sensitivityTarget ?? nan,
    ...(temperature !== undefined
      ? {
          temperature: {
            temperature,
            nllBefore: nan,
            nllAfter: nan,
            iterations: 0,
            atBound: false,
            converged: true,
            applied: true,
          },
        }
      : {}),
    ...(operatingPoint
      ? {
          operatingPoint: {
            threshold: operatingPoint.threshold,
            sensitivity: operatingPoint.validation.sensitivity,
            specificity: operatingPoint.validation.specificity,
          },
        }
      : {
          operatingPointNote: meta.normalClass
            ? 'the classifier was saved without a threshold on P(not normal)'
            : 'the classifier has no normal class: no abnormal-vs-normal operating point',
        }),
    classThresholds: meta.classNames.map((c) => ({
      threshold: classThresholds?.[c] ?? nan,
      sensitivity: nan,
      specificity: nan,
    })),
    referralAccuracy: referral?.targetAccuracy ?? nan,
    referral: referral
      ? [
          {
            by: referral.by,
            threshold: referral.threshold,
            coverage: referral.validation.coverage,
            accuracy: referral.validation.accuracy,
            kept: nan,
            referred: nan,
          },
        ]
      : [],
    images,
  };
}

/** What a saved classifier records besides its model (`saveClassifier` adds the model). */
export type ClassifierContents = {
  classNames: string[];
  decode: DecodeSpec;
  preprocessing?: Transform | null;
  normalClass?: string | null;
  metrics?: Record<string, unknown>;
  modelCard?: Record<string, unknown>;
} & ClassifierRules;

/** Builds `classifier.json` contents. */
export function classifierMeta(
  options: ClassifierContents & { inputShape: [number, number, number] },
): ClassifierMeta {
  const normal = options.normalClass ?? null;
  if (normal !== null)
    check(
      options.classNames.includes(normal),
      'saveClassifier',
      `normalClass '${normal}' is not one of ${options.classNames.join(', ')}`,
    );
  checkClassifierRules('saveClassifier', options, options.classNames, normal);
  return {
    format: 'medimg-classifier',
    version: 1,
    library: VERSION,
    classNames: [...options.classNames],
    inputShape: options.inputShape,
    decode: options.decode,
    preprocessing: options.preprocessing ? options.preprocessing.toJSON() : null,
    normalClass: normal,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.modelCard ? { modelCard: options.modelCard } : {}),
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.operatingPoint ? { operatingPoint: options.operatingPoint } : {}),
    ...(options.classThresholds ? { classThresholds: options.classThresholds } : {}),
    ...(options.referral ? { referral: options.referral } : {}),
    ...(options.tta !== undefined ? { tta: options.tta } : {}),
    ...(options.flips !== undefined ? { flips: checkTtaFlips('saveClassifier', options.flips) } : {}),
    createdAt: new Date().toISOString(),
  };
}

/**
 * Loads a classifier folder (`model.json`, weights, `classifier.json`) from a URL: in a browser,
 * a folder written by the Node CLI and served over http.
 *
 * @example
 * const clf = await loadClassifierFromUrl('/models/brain-mri/');
 */
export async function loadClassifierFromUrl(baseUrl: string): Promise<Classifier> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const response = await fetch(`${base}classifier.json`);
  if (!response.ok)
    throw new MedimgError('loadClassifier', `cannot fetch ${base}classifier.json: HTTP ${response.status}`);
  const meta = (await response.json()) as ClassifierMeta;
  registerAdaBelief();
  const model = await tfl.loadLayersModel(`${base}model.json`);
  finalizeModel(model);
  return new Classifier(model, meta);
}
