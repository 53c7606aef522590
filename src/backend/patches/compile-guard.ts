/**
 * Patch: refuse to train after a change of which layers train without compiling again, per model.
 * tfjs-layers collects the trainable weights at `compile`, so layers unfrozen later would silently
 * stay frozen. `compile`, `fit`, `fitDataset` and `trainOnBatch` are wrapped on the instance.
 * Applied with the Keras BatchNormalization patch. Switch off: not available (it only refuses
 * what would silently train the wrong weights).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { flattenLayers } from '../../models/layers.js';
import { MedimgError } from '../../util/errors.js';

interface CompileState {
  compiledWith: string | null;
  optimizer: unknown;
}
const states = new WeakMap<tfl.LayersModel, CompileState>();

function trainability(model: tfl.LayersModel): string {
  return flattenLayers(model)
    .map((l) => (l.trainable ? '1' : '0'))
    .join('');
}

/**
 * Makes it impossible to train after a change of which layers train without compiling again:
 * tfjs-layers collects the trainable weights at `compile`, so newly unfrozen layers would
 * silently stay frozen. `fit`, `fitDataset` and `trainOnBatch` then throw until `compile` is
 * called again with a fresh optimizer (the old one holds state for the old weight set).
 */
export function guardCompile(model: tfl.LayersModel): void {
  if (states.has(model)) return;
  const state: CompileState = { compiledWith: null, optimizer: undefined };
  states.set(model, state);
  const m = model as unknown as Record<string, (...args: unknown[]) => unknown>;
  const compile = m.compile!.bind(model);
  m.compile = (args: unknown) => {
    const optimizer = (args as { optimizer?: unknown })?.optimizer;
    const changed = state.compiledWith !== null && state.compiledWith !== trainability(model);
    if (changed && typeof optimizer === 'object' && optimizer !== null && optimizer === state.optimizer) {
      throw new MedimgError(
        'compile',
        'the trainable layers changed since the last compile: pass a fresh optimizer (the old one holds state for the previous weights)',
      );
    }
    const out = compile(args);
    state.compiledWith = trainability(model);
    state.optimizer = model.optimizer;
    return out;
  };
  for (const name of ['fit', 'fitDataset', 'trainOnBatch']) {
    const original = m[name]!.bind(model);
    m[name] = (...args: unknown[]) => {
      if (state.compiledWith !== null && state.compiledWith !== trainability(model)) {
        // These methods are async: reject rather than throw.
        return Promise.reject(
          new MedimgError(
            name,
            'which layers train changed (freeze/unfreeze) since the model was compiled: call model.compile again with a fresh optimizer',
          ),
        );
      }
      return original(...args);
    };
  }
}
