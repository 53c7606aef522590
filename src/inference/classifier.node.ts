import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { decodeImage } from '../data/decode.node.js';
import { MedimgError } from '../util/errors.js';
import {
  Classifier,
  type ClassifierContents,
  type ClassifierMeta,
  classifierMeta,
  loadClassifierFromUrl,
  type Prediction,
  type PredictOptions,
} from './classifier.js';
import { modelArtifacts, modelFromArtifacts } from './serialize.js';

/** A classifier loaded in Node: also predicts from image files and buffers, decoded as in training. */
export class NodeClassifier extends Classifier {
  /** Classifies an image file, an encoded image buffer, or a decoded H x W x C tensor (0-255). */
  async predict(input: string | Uint8Array | tf.Tensor3D, options: PredictOptions = {}): Promise<Prediction> {
    if (input instanceof tf.Tensor) return this.predictTensor(input, options);
    const image = await decodeImage(input, this.meta.decode);
    try {
      return this.predictTensor(image, options);
    } finally {
      image.dispose();
    }
  }
}

/**
 * Saves a classifier folder: TF.js `model.json` + `weights.bin` (loadable by `tf.loadLayersModel`
 * and in browsers) and `classifier.json` with class names, input shape, decoding, the exact
 * preprocessing pipeline, the normal class, metrics and the library version, and the decision
 * rules chosen on validation data (temperature, operating point, referral, TTA) that `predict`
 * applies. Written to a temporary folder first, then renamed into place.
 */
export async function saveClassifier(
  dir: string,
  options: ClassifierContents & { model: tfl.LayersModel },
): Promise<ClassifierMeta> {
  const inputShape = options.model.inputs[0]!.shape.slice(1) as [number, number, number];
  const meta = classifierMeta({ ...options, inputShape });
  const artifacts = await modelArtifacts(options.model);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'weights.bin'), new Uint8Array(artifacts.weightData));
  await writeFile(
    join(tmp, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      generatedBy: `medimg-classify ${meta.library}`,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    }),
  );
  await writeFile(join(tmp, 'classifier.json'), `${JSON.stringify(meta, null, 2)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return meta;
}

/**
 * Loads a classifier folder written by {@link saveClassifier} (or the CLI) from a path, or from
 * an http(s) URL. `predict` then applies exactly the saved decoding and preprocessing.
 *
 * @example
 * const clf = await loadClassifier('runs/brain-mri/classifier');
 * const { className, probabilities, warning } = await clf.predict('scan.jpg');
 */
export async function loadClassifier(dirOrUrl: string): Promise<NodeClassifier> {
  if (/^https?:\/\//i.test(dirOrUrl)) {
    const c = await loadClassifierFromUrl(dirOrUrl);
    return new NodeClassifier(c.model, c.meta);
  }
  const read = async (name: string) => {
    try {
      return await readFile(join(dirOrUrl, name));
    } catch (error) {
      throw new MedimgError(
        'loadClassifier',
        `cannot read ${join(dirOrUrl, name)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (is this a classifier folder?)`,
      );
    }
  };
  let meta: ClassifierMeta;
  let manifest: {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  try {
    meta = JSON.parse((await read('classifier.json')).toString('utf8'));
    manifest = JSON.parse((await read('model.json')).toString('utf8'));
  } catch (error) {
    if (error instanceof MedimgError) throw error;
    throw new MedimgError('loadClassifier', `${dirOrUrl}: invalid JSON (${(error as Error).message})`);
  }
  const group = manifest.weightsManifest?.[0];
  if (!group || group.paths.some((p) => p.includes('..') || p.startsWith('/'))) {
    throw new MedimgError('loadClassifier', `${dirOrUrl}/model.json has a missing or unsafe weightsManifest`);
  }
  const parts = await Promise.all(group.paths.map((p) => read(p)));
  const data = Buffer.concat(parts);
  const bytesPer: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, float16: 2 };
  const expected = group.weights.reduce(
    (a, w) => a + w.shape.reduce((p, d) => p * d, 1) * (bytesPer[w.dtype] ?? 4),
    0,
  );
  if (data.length !== expected) {
    const files = group.paths.map((p) => join(dirOrUrl, p)).join(', ');
    throw new MedimgError(
      'loadClassifier',
      `${files} holds ${data.length} bytes but model.json describes ${expected} (${group.weights.length} tensors): ` +
        `the weights file is ${data.length < expected ? 'truncated' : 'too long'} or belongs to another model; save the classifier again`,
    );
  }
  const model = await modelFromArtifacts({
    modelTopology: manifest.modelTopology,
    weightSpecs: group.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer,
  });
  return new NodeClassifier(model, meta);
}
