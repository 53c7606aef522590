import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { finalizeModel } from '../models/finalize.js';
import { registerAdaBelief } from '../optimizers/adabelief.js';
import { MedimgError } from '../util/errors.js';

/** A model's topology and weights, in memory (TF.js Layers format). */
export interface ModelArtifacts {
  modelTopology: object;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

/** Captures a model's topology and weights (no optimizer). */
export async function modelArtifacts(model: tfl.LayersModel): Promise<ModelArtifacts> {
  let out: ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      out = {
        modelTopology: a.modelTopology as object,
        weightSpecs: a.weightSpecs ?? [],
        weightData: a.weightData as ArrayBuffer,
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out as ModelArtifacts;
}

/** Rebuilds a model from {@link modelArtifacts}, finalized as the builders finalize theirs (`finalizeModel`). */
export async function modelFromArtifacts(artifacts: ModelArtifacts): Promise<tfl.LayersModel> {
  // Explicit, so loading never depends on a module's import-time side effect (sideEffects: false).
  registerAdaBelief();
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: artifacts.modelTopology,
      weightSpecs: artifacts.weightSpecs,
      weightData: artifacts.weightData,
    }),
  );
  finalizeModel(model);
  return model;
}

/** Encodes named tensors (e.g. optimizer state) to specs + one buffer. */
export async function encodeTensors(
  named: { name: string; tensor: tf.Tensor }[],
): Promise<{ specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer }> {
  const map: tf.NamedTensorMap = {};
  for (const { name, tensor } of named) map[name] = tensor;
  const { specs, data } = await tf.io.encodeWeights(map);
  return { specs, data };
}

/**
 * One file holding a JSON header and binary blobs: `MEDIMG1\n`, header length (uint32 LE),
 * header JSON, then the blobs back to back. Written atomically by the checkpoint store.
 */
export function packBundle(header: object, blobs: ArrayBuffer[]): Uint8Array {
  const sizes = blobs.map((b) => b.byteLength);
  const json = new TextEncoder().encode(JSON.stringify({ ...header, blobSizes: sizes }));
  const magic = new TextEncoder().encode('MEDIMG1\n');
  const out = new Uint8Array(magic.length + 4 + json.length + sizes.reduce((a, b) => a + b, 0));
  out.set(magic, 0);
  new DataView(out.buffer).setUint32(magic.length, json.length, true);
  out.set(json, magic.length + 4);
  let offset = magic.length + 4 + json.length;
  for (const b of blobs) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out;
}

/** Reads what {@link packBundle} wrote; throws a clear error on a truncated or foreign file. */
export function unpackBundle<H extends object>(
  bytes: Uint8Array,
  label: string,
): { header: H; blobs: ArrayBuffer[] } {
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== 'MEDIMG1\n')
    throw new MedimgError('loadCheckpoint', `${label} is not a medimg-classify checkpoint`);
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  let header: H & { blobSizes: number[] };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  } catch {
    throw new MedimgError('loadCheckpoint', `${label} has a corrupt header (truncated?)`);
  }
  let offset = 12 + len;
  const blobs = header.blobSizes.map((size) => {
    if (offset + size > bytes.length) throw new MedimgError('loadCheckpoint', `${label} is truncated`);
    const b = bytes.slice(offset, offset + size).buffer;
    offset += size;
    return b;
  });
  return { header, blobs };
}
