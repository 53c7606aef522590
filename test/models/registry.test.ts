import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BACKBONE_NAMES,
  BACKBONES,
  backboneSpec,
  blockNames,
  Compose,
  countParams,
  createBackbone,
  flattenLayers,
  loadPretrained,
  setupBackend,
  transformFromJSON,
  unfreeze,
} from '../../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Keras's published parameter counts without top (model.summary()). */
const KERAS_PARAMS: Record<string, number> = {
  resnet50v2: 23_564_800,
  mobilenetv2: 410_208, // alpha 0.35
  densenet121: 7_037_504,
  efficientnetb0: 4_049_571,
};

/** A Keras 2 weights-only HDF5 file of a model's own weights (layer_names / weight_names). */
async function kerasWeightsFile(model: tfl.LayersModel, path: string): Promise<Uint8Array> {
  const h5 = await import('h5wasm/node');
  await h5.ready;
  const file = new h5.File(path, 'w');
  const layers = flattenLayers(model).filter((l) => l.weights.length);
  file.create_attribute(
    'layer_names',
    layers.map((l) => l.name),
  );
  for (const layer of layers) {
    const group = file.create_group(layer.name);
    const names = layer.weights.map((w) => `${w.originalName.split('/').pop()}:0`);
    group.create_attribute(
      'weight_names',
      names.map((n) => `${layer.name}/${n}`),
    );
    const inner = group.create_group(layer.name);
    layer.weights.forEach((w, i) => {
      inner.create_dataset({
        name: names[i]!,
        data: w.read().dataSync() as Float32Array,
        shape: w.shape as number[],
        dtype: '<f',
      });
    });
  }
  file.close();
  return new Uint8Array(h5.FS!.readFile(path));
}

describe('backbone registry', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('lists the four Keras backbones; unknown names get the list', () => {
    expect(BACKBONE_NAMES).toEqual(['resnet50v2', 'mobilenetv2', 'densenet121', 'efficientnetb0']);
    expect(() => backboneSpec('vgg16')).toThrow(
      /unknown backbone 'vgg16': choose one of resnet50v2, mobilenetv2, densenet121, efficientnetb0/,
    );
    expect(() => createBackbone('resnet50v2', { alpha: 0.5 })).toThrow(/ResNet50V2 has no width multiplier/);
    expect(() => createBackbone('mobilenetv2', { alpha: 0.3 })).toThrow(/alpha must be one of 0.35, 0.5/);
  });

  it.each(BACKBONE_NAMES)(
    '%s: Keras parameter count, its last block and block pattern fit the built model, preprocessing and weights descriptor agree',
    (name) => {
      const spec = backboneSpec(name);
      const model = createBackbone(name, { inputShape: [64, 64, 3] });
      expect(countParams(model).total).toBe(KERAS_PARAMS[name]);
      expect(
        flattenLayers(model).some((l) => l.name === spec.lastBlock),
        spec.lastBlock,
      ).toBe(true);
      const blocks = blockNames(model);
      expect(blocks.length).toBeGreaterThan(3);
      // The last block starts at or after the spec's lastBlock layer.
      unfreeze(model, { from: spec.lastBlock });
      const trainable = flattenLayers(model).filter((l) => l.trainable && l.weights.length);
      expect(trainable.length).toBeGreaterThan(0);
      // Every trainable layer of a block belongs to the block of lastBlock or a later one.
      const first = blocks.indexOf(spec.blockPattern.exec(spec.lastBlock)?.[1] ?? '');
      expect(first).toBeGreaterThan(0);
      const later = blocks.slice(first);
      for (const l of trainable) {
        const b = spec.blockPattern.exec(l.name)?.[1];
        if (b) expect(later, l.name).toContain(b);
      }
      const descriptor = spec.imagenet();
      expect(descriptor.includeTop).toBe(false);
      expect(descriptor.url.endsWith(descriptor.fileName)).toBe(true);
      expect(descriptor.inputShape).toEqual([spec.inputSize, spec.inputSize, 3]);
      // The descriptor's preprocessing is the spec's pipeline, in JSON.
      expect(transformFromJSON(descriptor.preprocessing).toJSON()).toEqual(spec.preprocessing().toJSON());
      model.dispose();
    },
    120_000,
  );

  it('descriptors carry Keras file names and checksums', () => {
    expect(BACKBONES.densenet121!.imagenet().md5).toBe('4912a53fbd2a69346e7f2c0b5ec8c6d3');
    expect(BACKBONES.efficientnetb0!.imagenet().md5).toBe('50bc09e76180e00e4465e1a485ddc09d');
    expect(BACKBONES.resnet50v2!.imagenet().md5).toBe('fac2f116257151a9d068a22e544a4917');
    const m = BACKBONES.mobilenetv2!.imagenet({ alpha: 0.35, inputSize: 224 });
    expect(m.fileName).toBe('mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5');
    expect(m.md5).toBeNull();
    expect(BACKBONES.mobilenetv2!.imagenet({ alpha: 1, inputSize: 160 }).fileName).toBe(
      'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5',
    );
    expect(() => BACKBONES.mobilenetv2!.imagenet({ inputSize: 100 })).toThrow(
      /96, 128, 160, 192 and 224, not 100/,
    );
    expect(BACKBONES.efficientnetb0!.preprocessing()).toBeInstanceOf(Compose);
  });

  it('loadPretrained downloads into the cache with progress, loads by name, reuses the cache, and fails offline naming the file and folder', async () => {
    const source = createBackbone('mobilenetv2', { inputShape: [32, 32, 3], seed: 1 });
    const bytes = await kerasWeightsFile(source, '/medimg-test-weights.h5');
    const url = BACKBONES.mobilenetv2!.imagenet().url;
    const requested: string[] = [];
    const lines: string[] = [];
    const fetch = async (u: string) => {
      requested.push(u);
      const chunks = [bytes.subarray(0, bytes.length >> 1), bytes.subarray(bytes.length >> 1)];
      return {
        ok: true,
        status: 200,
        arrayBuffer: async () => bytes.slice().buffer,
        headers: { get: (h: string) => (h === 'content-length' ? String(bytes.length) : null) },
        body: {
          getReader: () => ({
            read: async (): Promise<{ done: boolean; value?: Uint8Array }> => {
              const value = chunks.shift();
              return value ? { done: false, value } : { done: true };
            },
          }),
        },
      };
    };
    const cacheDir = join(dir, 'cache');
    const target = createBackbone('mobilenetv2', { inputShape: [32, 32, 3], seed: 2 });
    const match = await loadPretrained(target, 'mobilenetv2', {
      cacheDir,
      fetch,
      onProgress: (l) => lines.push(l),
    });
    expect(requested).toEqual([url]);
    expect(match.loaded.length).toBe(source.weights.length);
    expect(existsSync(match.path)).toBe(true);
    expect(readFileSync(match.path).length).toBe(bytes.length);
    expect(lines.some((l) => /MB$/.test(l))).toBe(true);
    expect(lines.some((l) => /gives no checksum/.test(l))).toBe(true);
    target.weights.forEach((w, i) =>
      expect(Array.from(w.read().dataSync())).toEqual(Array.from(source.weights[i]!.read().dataSync())),
    );
    await loadPretrained(target, 'mobilenetv2', { cacheDir, fetch });
    expect(requested).toHaveLength(1);
    const offline = async () => {
      throw new TypeError('fetch failed');
    };
    await expect(
      loadPretrained(target, 'densenet121', { cacheDir: join(dir, 'empty'), fetch: offline }),
    ).rejects.toThrow(
      /could not download https:\/\/storage.googleapis.com\/tensorflow\/keras-applications\/densenet\/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5: fetch failed. Download it by hand into .*empty\/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5/,
    );
    source.dispose();
    target.dispose();
  });
});
