/**
 * Patch: reproducible dropout. A tfjs-layers Dropout layer with a fixed `seed` draws the same mask
 * at every step, and one without draws from an unseeded generator. `train` writes a new seed,
 * derived from the run's seed, the epoch and the step, into every Dropout layer before each step,
 * so masks differ between steps and a run (or a resumed run) is reproducible. Only `train` does
 * this; a model trained with `fit` keeps tfjs's behaviour.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { flattenLayers } from '../../models/layers.js';
import { deriveSeed } from '../../util/random.js';

/** The Dropout layers of a model (nested models included). */
export function dropoutLayers(model: tfl.LayersModel): { seed?: number }[] {
  return flattenLayers(model).filter((l) => l.getClassName() === 'Dropout') as unknown as { seed?: number }[];
}

/** Gives each Dropout layer the seed of this step. */
export function reseedDropout(layers: { seed?: number }[], seed: number, epoch: number, step: number): void {
  layers.forEach((d, i) => {
    d.seed = deriveSeed(seed, ((epoch * 100_003 + step) * 31 + i) >>> 0);
  });
}
