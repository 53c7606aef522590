import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

type Layer = tfl.layers.Layer;

/** All layers of a model, nested models' layers included, in topological order. */
export function flattenLayers(model: tfl.LayersModel): Layer[] {
  const out: Layer[] = [];
  const visit = (layers: Layer[]) => {
    for (const layer of layers) {
      const inner = (layer as unknown as { layers?: Layer[] }).layers;
      if (Array.isArray(inner)) visit(inner);
      else out.push(layer);
    }
  };
  visit(model.layers);
  return out;
}

/** A layer call's single input: tfjs hands it either bare or as a one-element list. */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  return Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
}
