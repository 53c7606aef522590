import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { installKerasBatchNorm } from '../models/trainability.js';
import { registerAdaBelief } from '../optimizers/adabelief.js';
import type { Transform, TransformJSON } from '../transforms/base.js';
import type { ImageWindow } from '../transforms/functional/window.js';
import { transformFromJSON } from '../transforms/serialization.js';
import { check, MedimgError } from '../util/errors.js';
import { VERSION } from '../version.js';

/** How images are decoded before the preprocessing pipeline (mirrors the Node decoder's options). */
export interface DecodeSpec {
  channels: 1 | 3;
  resize?: { height: number; width: number; fit?: 'contain' | 'fill' | 'cover' };
  /** Window of DICOM and 16-bit images (see the Node decoder's `window`). */
  window?: ImageWindow;
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
  createdAt: string;
}

/** A prediction: the top class and every class's probability. */
export interface Prediction {
  className: string;
  classIndex: number;
  probabilities: Record<string, number>;
  /** Set when the top class is the normal one but an abnormal class is close (within `margin`). */
  warning?: string;
}

/** A loaded classifier: the model with exactly the preprocessing it was trained with. */
export class Classifier {
  readonly preprocessing: Transform | null;
  constructor(
    readonly model: tfl.LayersModel,
    readonly meta: ClassifierMeta,
  ) {
    check(
      meta?.format === 'medimg-classifier',
      'Classifier',
      'classifier.json is not a medimg-classify classifier',
    );
    this.preprocessing = meta.preprocessing ? transformFromJSON(meta.preprocessing) : null;
  }

  /**
   * Classifies one decoded image (H x W x C, 0-255, as `decodeImage` or `imageFromBrowser`
   * give). `margin` sets when a close abnormal class triggers a missed-finding warning.
   */
  predictTensor(image: tf.Tensor3D, options: { margin?: number } = {}): Prediction {
    const probs = tf.tidy(() => {
      const x = this.preprocessing ? this.preprocessing.apply(image) : image;
      check(
        x.shape.every((d, i) => d === this.meta.inputShape[i]),
        'predict',
        `the preprocessed image is [${x.shape}] but the model expects [${this.meta.inputShape}]`,
      );
      return (this.model.predict(tf.expandDims(x, 0)) as tf.Tensor).dataSync();
    });
    return describePrediction(Array.from(probs), this.meta, options.margin ?? 0.2);
  }

  /**
   * Classifies several decoded images in one forward pass (each preprocessed as in
   * {@link predictTensor}); the images may differ in size only if the preprocessing resizes them.
   */
  predictBatch(images: readonly tf.Tensor3D[], options: { margin?: number } = {}): Prediction[] {
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
      return (this.model.predict(tf.stack(xs)) as tf.Tensor).arraySync() as number[][];
    });
    return probs.map((p) => describePrediction(p, this.meta, options.margin ?? 0.2));
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Turns probabilities into a {@link Prediction}, with the missed-finding warning. */
export function describePrediction(probs: number[], meta: ClassifierMeta, margin: number): Prediction {
  const classIndex = probs.indexOf(Math.max(...probs));
  const probabilities = Object.fromEntries(meta.classNames.map((c, i) => [c, probs[i] as number]));
  const out: Prediction = { className: meta.classNames[classIndex] as string, classIndex, probabilities };
  if (meta.normalClass && out.className === meta.normalClass) {
    const top = probs[classIndex] as number;
    const rival = meta.classNames
      .map((c, i) => ({ c, p: probs[i] as number }))
      .filter((r) => r.c !== meta.normalClass)
      .sort((a, b) => b.p - a.p)[0];
    if (rival && top - rival.p < margin) {
      out.warning = `Called ${meta.normalClass}, but ${rival.c} is close (${(100 * rival.p).toFixed(1)}% vs ${(100 * top).toFixed(1)}%): review this image.`;
    }
  }
  return out;
}

/** Builds `classifier.json` contents. */
export function classifierMeta(options: {
  classNames: string[];
  inputShape: [number, number, number];
  decode: DecodeSpec;
  preprocessing?: Transform | null;
  normalClass?: string | null;
  metrics?: Record<string, unknown>;
  modelCard?: Record<string, unknown>;
}): ClassifierMeta {
  const normal = options.normalClass ?? null;
  if (normal !== null)
    check(
      options.classNames.includes(normal),
      'saveClassifier',
      `normalClass '${normal}' is not one of ${options.classNames.join(', ')}`,
    );
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
  installKerasBatchNorm(model);
  return new Classifier(model, meta);
}
