import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { MedimgError } from '../util/errors.js';
import { assignWeightsByName, type NamedWeight, type WeightMatch } from './weights.js';

interface Manifest {
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

function safeRelative(op: string, base: string, path: string): string {
  const clean = normalize(path);
  if (
    isAbsolute(path) ||
    clean.startsWith('..') ||
    clean.split(/[\\/]/).includes('..') ||
    /^[a-z]+:/i.test(path)
  ) {
    throw new MedimgError(
      op,
      `model.json lists weight file '${path}', which leaves the model folder: refused`,
    );
  }
  return join(base, clean);
}

/**
 * Reads the weights of a TF.js Layers model (`model.json` + binary shards) from a local path
 * or an http(s) URL, by name. Shard paths that leave the model's folder are refused.
 */
export async function readLayersWeights(pathOrUrl: string): Promise<Map<string, NamedWeight>> {
  const op = 'loadLayersWeights';
  const isUrl = /^https?:\/\//i.test(pathOrUrl);
  const load = async (p: string): Promise<Uint8Array> => {
    try {
      if (isUrl) {
        const r = await fetch(p);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return new Uint8Array(await r.arrayBuffer());
      }
      return new Uint8Array(await readFile(p));
    } catch (error) {
      throw new MedimgError(op, `cannot read ${p}: ${(error as Error).message}`);
    }
  };
  let manifest: Manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await load(pathOrUrl))) as Manifest;
  } catch (error) {
    if (error instanceof MedimgError) throw error;
    throw new MedimgError(op, `${pathOrUrl} is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(manifest.weightsManifest))
    throw new MedimgError(op, `${pathOrUrl} has no weightsManifest`);
  const out = new Map<string, NamedWeight>();
  for (const group of manifest.weightsManifest) {
    const parts: Uint8Array[] = [];
    for (const p of group.paths) {
      const target = isUrl
        ? new URL(safeRelativeUrl(op, p), pathOrUrl).toString()
        : safeRelative(op, dirname(pathOrUrl), p);
      parts.push(await load(target));
    }
    const total = parts.reduce((a, b) => a + b.length, 0);
    const buffer = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      buffer.set(part, offset);
      offset += part.length;
    }
    const expected = group.weights.reduce(
      (a, w) =>
        a + w.shape.reduce((p, d) => p * d, 1) * (w.dtype === 'float32' || w.dtype === 'int32' ? 4 : 1),
      0,
    );
    if (total < expected) {
      throw new MedimgError(
        op,
        `weight shards of ${pathOrUrl} hold ${total} bytes but the manifest needs ${expected} (truncated?)`,
      );
    }
    const tensors = tf.io.decodeWeights(buffer.buffer, group.weights);
    for (const [name, t] of Object.entries(tensors)) {
      out.set(name.replace(/:0$/, ''), { shape: t.shape, data: Float32Array.from(t.dataSync()) });
      t.dispose();
    }
  }
  return out;
}

function safeRelativeUrl(op: string, path: string): string {
  if (/^[a-z]+:/i.test(path) || path.startsWith('/') || path.split('/').includes('..')) {
    throw new MedimgError(
      op,
      `model.json lists weight file '${path}', which leaves the model folder: refused`,
    );
  }
  return path;
}

/** Loads TF.js Layers weights into a model built here, matched by name (see {@link readLayersWeights}). */
export async function loadLayersWeights(
  model: tfl.LayersModel,
  pathOrUrl: string,
  options: { allowMissing?: boolean; allowUnexpected?: boolean } = {},
): Promise<WeightMatch> {
  const weights = await readLayersWeights(pathOrUrl);
  return assignWeightsByName(model, weights, { op: 'loadLayersWeights', source: pathOrUrl, ...options });
}
