import type * as tfl from '@tensorflow/tfjs-layers';
import { type FetchWeightsOptions, fetchWeights } from './download.node.js';
import { loadKerasWeights } from './keras-h5.node.js';
import { type BackboneSpec, backboneSpec } from './registry.js';
import type { WeightMatch } from './weights.js';

/**
 * Loads a registered backbone's published ImageNet weights (Keras's files, see
 * `BackboneSpec.imagenet`) into `model`: from the cache when present and intact, else downloaded
 * with progress, verified (md5 where the publisher gives one) and cached. Offline, the error
 * names the file to download and where to put it. Every weight of the file must fit the model by
 * name and shape.
 *
 * @example
 * const backbone = createBackbone('resnet50v2');
 * await loadPretrained(backbone, 'resnet50v2', { onProgress: console.log });
 */
export async function loadPretrained(
  model: tfl.LayersModel,
  backbone: string | BackboneSpec,
  options: FetchWeightsOptions & { alpha?: number; inputSize?: number } = {},
): Promise<WeightMatch & { path: string }> {
  const spec = typeof backbone === 'string' ? backboneSpec(backbone) : backbone;
  const descriptor = spec.imagenet({
    ...(options.alpha === undefined ? {} : { alpha: options.alpha }),
    ...(options.inputSize === undefined ? {} : { inputSize: options.inputSize }),
  });
  const path = await fetchWeights(descriptor, options);
  const match = await loadKerasWeights(model, path);
  return { ...match, path };
}
