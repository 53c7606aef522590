/**
 * Patch: a nested model (a backbone inside a classifier) counts as trainable when any of its
 * layers is. tfjs reads the flag on the container, and its public setter would overwrite every
 * child's flag, so the private `trainable_` field is written instead. Used by `freeze` and
 * `unfreeze`. Switch off: not available (without it, partial unfreezing of nested models fails).
 */
import type * as tfl from '@tensorflow/tfjs-layers';

type Layer = tfl.layers.Layer;

/** A nested model counts as trainable when any of its layers is (tfjs reads the flag on the container). */
export function syncContainers(model: tfl.LayersModel): void {
  const visit = (layers: Layer[]): boolean => {
    let any = false;
    for (const layer of layers) {
      const inner = (layer as unknown as { layers?: Layer[] }).layers;
      if (Array.isArray(inner)) {
        const anyInner = visit(inner);
        // Set the field, not the setter: the setter would overwrite every child's flag.
        (layer as unknown as { trainable_: boolean }).trainable_ = anyInner;
        any ||= anyInner;
      } else any ||= layer.trainable;
    }
    return any;
  };
  visit(model.layers);
}
