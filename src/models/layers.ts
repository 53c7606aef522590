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
