import { readFile } from 'node:fs/promises';
import * as tfl from '@tensorflow/tfjs-layers';
import { MedimgError } from '../util/errors.js';
import { finalizeModel } from './finalize.js';
import { registerKerasNormalization } from './keras-normalization.js';
import { assignWeightsByName, type NamedWeight, type WeightMatch } from './weights.js';

type H5Module = typeof import('h5wasm/node');
type H5File = InstanceType<H5Module['File']>;
type H5Group = InstanceType<H5Module['Group']>;
type H5Dataset = InstanceType<H5Module['Dataset']>;

let counter = 0;
const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

async function openH5<T>(source: string | Uint8Array, fn: (file: H5File) => T): Promise<T> {
  const label = typeof source === 'string' ? source : '<buffer>';
  let bytes: Uint8Array;
  try {
    bytes = typeof source === 'string' ? new Uint8Array(await readFile(source)) : source;
  } catch (error) {
    throw new MedimgError('loadKeras', `cannot read ${label}: ${(error as Error).message}`);
  }
  if (bytes.length < 8 || HDF5_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new MedimgError('loadKeras', `${label} is not an HDF5 file (no HDF5 signature)`);
  }
  const h5 = await import('h5wasm/node');
  await h5.ready;
  const path = `/medimg-${process.pid}-${counter++}.h5`;
  h5.FS!.writeFile(path, bytes);
  let file: H5File | undefined;
  try {
    try {
      file = new h5.File(path, 'r');
    } catch (error) {
      throw new MedimgError(
        'loadKeras',
        `${label} could not be opened as HDF5 (truncated or corrupt?): ${(error as Error).message}`,
      );
    }
    try {
      return fn(file);
    } catch (error) {
      if (error instanceof MedimgError) throw error;
      throw new MedimgError(
        'loadKeras',
        `${label} could not be read (truncated or corrupt?): ${(error as Error).message}`,
      );
    }
  } finally {
    file?.close();
    h5.FS!.unlink(path);
  }
}

function attr(obj: H5Group | H5File, name: string): unknown {
  const a = (obj.attrs as Record<string, { value: unknown }>)[name];
  return a?.value;
}

function asStrings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  return Array.from(value as ArrayLike<string>, String);
}

/**
 * A dataset's value as float32. Scalars come back from h5wasm as a bare number (or a bigint for
 * int64, e.g. the `count` of Keras's Normalization layer), int64 arrays as BigInt64Array.
 */
function toFloat32(value: unknown): Float32Array {
  if (value instanceof Float32Array) return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return Float32Array.of(Number(value));
  if (value instanceof BigInt64Array || value instanceof BigUint64Array)
    return Float32Array.from(value, Number);
  return Float32Array.from(value as ArrayLike<number>);
}

/** Reads every weight of a Keras 2 HDF5 weights group (`layer_names` / `weight_names` attributes). */
function readWeightGroup(root: H5Group | H5File, label: string): Map<string, NamedWeight> {
  const out = new Map<string, NamedWeight>();
  const layerNames = asStrings(attr(root, 'layer_names'));
  if (!layerNames.length)
    throw new MedimgError('loadKeras', `${label} has no 'layer_names' attribute: not a Keras weights file`);
  for (const layer of layerNames) {
    const group = root.get(layer) as H5Group | null;
    if (!group)
      throw new MedimgError(
        'loadKeras',
        `${label}: layer group '${layer}' is listed but missing (truncated file?)`,
      );
    for (const weightName of asStrings(attr(group, 'weight_names'))) {
      const dataset = group.get(weightName) as H5Dataset | null;
      if (!dataset)
        throw new MedimgError('loadKeras', `${label}: weight '${layer}/${weightName}' is listed but missing`);
      let value: unknown;
      try {
        value = dataset.value;
      } catch (error) {
        throw new MedimgError(
          'loadKeras',
          `${label}: weight '${weightName}' cannot be read (truncated file?): ${(error as Error).message}`,
        );
      }
      const shape = (dataset.shape ?? []) as number[];
      const data = toFloat32(value);
      const size = shape.reduce((p, d) => p * d, 1);
      if (data.length !== size)
        throw new MedimgError(
          'loadKeras',
          `${label}: weight '${weightName}' holds ${data.length} values for shape [${shape}]`,
        );
      const key = weightName.replace(/:0$/, '');
      if (out.has(key)) throw new MedimgError('loadKeras', `${label}: weight name '${key}' occurs twice`);
      out.set(key, { shape, data });
    }
  }
  return out;
}

/** Reads the weights of a Keras 2 `.h5` (a full model file or a `save_weights` file) by name. */
export async function readKerasWeights(source: string | Uint8Array): Promise<Map<string, NamedWeight>> {
  const label = typeof source === 'string' ? source : '<buffer>';
  return openH5(source, (file) => {
    const root = (file.keys().includes('model_weights') ? file.get('model_weights') : file) as H5Group;
    return readWeightGroup(root, label);
  });
}

/** Config quirks of real Keras files that tfjs-layers rejects, fixed in place. */
function fixConfig(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(fixConfig);
    return;
  }
  if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if (
      (obj.class_name === 'DepthwiseConv2D' || obj.class_name === 'Conv2D') &&
      obj.config &&
      typeof obj.config === 'object'
    ) {
      // Keras >= 2.4 writes "groups": 1, which tfjs-layers (and newer Keras) reject on DepthwiseConv2D.
      delete (obj.config as Record<string, unknown>).groups;
    }
    if (obj.class_name === 'Functional') obj.class_name = 'Model';
    for (const value of Object.values(obj)) fixConfig(value);
  }
}

/**
 * Rebuilds a Keras 2 model (architecture and weights) from an HDF5 file written by
 * `model.save('x.h5')`, with no Python converter: nested Sequential / Functional models,
 * `kernel:0` weight names and known config quirks are handled. Frozen BatchNormalization layers
 * get Keras's inference-mode semantics.
 *
 * @example
 * const model = await loadKerasModel('keras_model.h5');
 */
export async function loadKerasModel(source: string | Uint8Array): Promise<tfl.LayersModel> {
  const label = typeof source === 'string' ? source : '<buffer>';
  const { config, weights } = await openH5(source, (file) => {
    const raw = attr(file, 'model_config');
    if (typeof raw !== 'string') {
      throw new MedimgError(
        'loadKerasModel',
        `${label} has no 'model_config': it holds weights only (use loadKerasWeights with a model built here)`,
      );
    }
    if (!file.keys().includes('model_weights'))
      throw new MedimgError('loadKerasModel', `${label} has no 'model_weights' group`);
    return {
      config: JSON.parse(raw) as unknown,
      weights: readWeightGroup(file.get('model_weights') as H5Group, label),
    };
  });
  fixConfig(config);
  // EfficientNet's preprocessing Normalization layer, which tfjs-layers lacks.
  registerKerasNormalization();
  let model: tfl.LayersModel;
  try {
    model = await tfl.models.modelFromJSON({ modelTopology: config as never });
  } catch (error) {
    throw new MedimgError(
      'loadKerasModel',
      `${label}: tfjs-layers cannot rebuild this architecture: ${(error as Error).message}`,
    );
  }
  assignWeightsByName(model, weights, { op: 'loadKerasModel', source: label });
  finalizeModel(model);
  return model;
}

/**
 * Loads the weights of a Keras 2 `.h5` (from `save_weights` or a full model file) into a model
 * built here, matched by layer and weight name. Throws with the missing, unexpected and
 * shape-mismatched weights unless `allowMissing` / `allowUnexpected` (for example to load a
 * backbone's weights out of a file that also holds a classifier head).
 */
export async function loadKerasWeights(
  model: tfl.LayersModel,
  source: string | Uint8Array,
  options: { allowMissing?: boolean; allowUnexpected?: boolean } = {},
): Promise<WeightMatch> {
  const weights = await readKerasWeights(source);
  return assignWeightsByName(model, weights, {
    op: 'loadKerasWeights',
    source: typeof source === 'string' ? source : '<buffer>',
    ...options,
  });
}
