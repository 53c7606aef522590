import type * as tfl from '@tensorflow/tfjs-layers';
import { installBatchNormFolding } from '../backend/patches/fold-batchnorm.js';
import { installKerasBatchNorm } from '../backend/patches/keras-batchnorm.js';
import { installSinglePassReluMax } from '../backend/patches/relu-max.js';

/**
 * What every model this library builds or loads gets before it is returned: Keras's
 * BatchNormalization semantics (a frozen layer runs in inference mode; see
 * `backend/patches/keras-batchnorm.ts`) and the guard that refuses to train after a change of
 * which layers train until the model is compiled again; bounded ReLUs (ReLU6) in one pass
 * (`backend/patches/relu-max.ts`); and BatchNormalization in inference mode folded into the
 * convolution before it (`backend/patches/fold-batchnorm.ts`). A new builder ends with it.
 */
export function finalizeModel<M extends tfl.LayersModel>(model: M): M {
  installKerasBatchNorm(model);
  installSinglePassReluMax(model);
  installBatchNormFolding(model);
  return model;
}
