import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadKerasModel, loadKerasWeights, mobilenetV2, setupBackend, simpleCnn } from '../../src/node.js';
import reference from '../fixtures/keras/nested_model.json' with { type: 'json' };

const dir = resolve(__dirname, '../fixtures/keras');
const nested = join(dir, 'nested_model.h5');
const weightsOnly = join(dir, 'weights_only.h5');

/** The backbone of the fixture, built here with the same layer names. */
function backbone(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 3] });
  let x = tfl.layers
    .zeroPadding2d({
      padding: [
        [0, 1],
        [0, 1],
      ],
      name: 'Conv1_pad',
    })
    .apply(input) as tfl.SymbolicTensor;
  x = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, strides: 2, useBias: false, name: 'Conv1' })
    .apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.batchNormalization({ epsilon: 1e-3, name: 'bn_Conv1' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.reLU({ maxValue: 6 }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers
    .depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: 'dw' })
    .apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.batchNormalization({ epsilon: 1e-3, name: 'dw_BN' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.reLU({ maxValue: 6 }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: x });
}

function maxDiff(t: tf.Tensor, expected: number[][] | number[][][][]): number {
  const e = (expected as number[][]).flat(3) as number[];
  const a = t.dataSync();
  return Math.max(...e.map((v, i) => Math.abs(v - a[i]!)));
}

describe('Keras HDF5 loading', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('loadKerasModel rebuilds a nested Sequential/Functional model (groups: 1 quirk) and predicts as NumPy does', async () => {
    const model = await loadKerasModel(nested);
    expect(model.layers.map((l) => l.name).slice(-2)).toEqual(['seq_a', 'seq_b']);
    const x = tf.tensor4d(reference.input);
    const y = model.predict(x) as tf.Tensor;
    expect(maxDiff(y, reference.output)).toBeLessThan(1e-5);
    // From a buffer as well as a path.
    const again = await loadKerasModel(new Uint8Array(readFileSync(nested)));
    const y2 = again.predict(x) as tf.Tensor;
    expect(maxDiff(y2, reference.output)).toBeLessThan(1e-5);
    tf.dispose([x, y, y2]);
    model.dispose();
    again.dispose();
  });

  it('loadKerasWeights fills a model built here from a save_weights file and from a full-model file', async () => {
    const x = tf.tensor4d(reference.input);
    for (const [file, opts] of [
      [weightsOnly, {}],
      [nested, { allowUnexpected: true }],
    ] as const) {
      const m = backbone();
      const match = await loadKerasWeights(m, file, opts);
      expect(match.loaded).toHaveLength(10);
      const y = m.predict(x) as tf.Tensor;
      expect(maxDiff(y, reference.backboneOutput)).toBeLessThan(1e-5);
      if (file === nested)
        expect(match.unexpected).toEqual(['dense_1/kernel', 'dense_1/bias', 'dense_2/kernel']);
      y.dispose();
      m.dispose();
    }
    x.dispose();
  });

  it('refuses malformed files and misfitting weights with clear errors', async () => {
    const bytes = readFileSync(nested);
    await expect(loadKerasModel(new Uint8Array(bytes.subarray(0, 3000)))).rejects.toThrow(
      /^Error in loadKeras: <buffer> (could not be opened as HDF5|could not be read) \(truncated or corrupt\?\)/,
    );
    await expect(loadKerasModel(new TextEncoder().encode('not hdf5 at all'))).rejects.toThrow(
      'Error in loadKeras: <buffer> is not an HDF5 file (no HDF5 signature)',
    );
    await expect(loadKerasModel(weightsOnly)).rejects.toThrow(/has no 'model_config': it holds weights only/);
    await expect(loadKerasModel(join(dir, 'missing.h5'))).rejects.toThrow(/cannot read .*missing\.h5/);
    const wrong = simpleCnn({ inputShape: [8, 8, 3], numClasses: 2, filters: [4] });
    await expect(loadKerasWeights(wrong, weightsOnly)).rejects.toThrow(
      /weights_only\.h5: weights do not fit the model \(missing from the file: block1_conv\/kernel.*not in the model: Conv1\/kernel/,
    );
    const m = backbone();
    const conv1 = m.getLayer('Conv1');
    const before = Array.from(conv1.getWeights()[0]!.dataSync());
    const wide = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [8, 8, 3],
          filters: 6,
          kernelSize: 3,
          useBias: false,
          name: 'Conv1',
        }),
      ],
    });
    await expect(loadKerasWeights(wide, weightsOnly, { allowUnexpected: true })).rejects.toThrow(
      /shape mismatch: Conv1\/kernel expects \[3,3,3,6\] but the file has \[3,3,3,4\]/,
    );
    expect(Array.from(conv1.getWeights()[0]!.dataSync())).toEqual(before);
    [m, wide, wrong].forEach((x) => x.dispose());
  });
});

const shared = resolve(__dirname, '../../../shared/models');
describe.skipIf(!existsSync(shared))(
  'real Keras 2.4 files in ../shared/models (opt-in: skipped when absent)',
  () => {
    it('both Teachable Machine files load, and their MobileNetV2-0.35 weights fit the builder', async () => {
      await setupBackend('wasm');
      for (const name of ['teachable-machine-busi', 'teachable-machine-tumor-yes-no']) {
        const file = join(shared, name, 'keras_model.h5');
        const model = await loadKerasModel(file);
        const x = tf.zeros([1, 224, 224, 3]);
        const y = model.predict(x) as tf.Tensor;
        const p = Array.from(y.dataSync());
        expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
        const b = mobilenetV2({ alpha: 0.35 });
        const match = await loadKerasWeights(b, file, { allowUnexpected: true });
        expect(match.loaded).toHaveLength(260);
        expect(match.missing).toEqual([]);
        tf.dispose([x, y]);
        model.dispose();
        b.dispose();
      }
    });
  },
);
