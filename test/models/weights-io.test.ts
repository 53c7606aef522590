import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchWeights,
  loadLayersWeights,
  md5,
  RESNET50V2_IMAGENET,
  setupBackend,
  simpleCnn,
  type WeightsDescriptor,
} from '../../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-weights-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TF.js Layers weights by name', () => {
  beforeAll(() => setupBackend('cpu'));

  async function saveModel(folder: string) {
    const source = simpleCnn({ inputShape: [16, 16, 1], numClasses: 3, filters: [4, 8], dense: 8, seed: 1 });
    await source.save(
      tf.io.withSaveHandler(async (artifacts) => {
        writeFileSync(join(folder, 'weights.bin'), new Uint8Array(artifacts.weightData as ArrayBuffer));
        writeFileSync(
          join(folder, 'model.json'),
          JSON.stringify({
            modelTopology: artifacts.modelTopology,
            weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
          }),
        );
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    return source;
  }

  it('loads model.json + shards into a model built here and reproduces its weights', async () => {
    const source = await saveModel(dir);
    const target = simpleCnn({ inputShape: [16, 16, 1], numClasses: 3, filters: [4, 8], dense: 8, seed: 99 });
    const match = await loadLayersWeights(target, join(dir, 'model.json'));
    expect(match.missing).toEqual([]);
    expect(match.loaded.length).toBe(source.weights.length);
    source.weights.forEach((w, i) => {
      expect(Array.from(target.weights[i]!.read().dataSync())).toEqual(Array.from(w.read().dataSync()));
    });
    source.dispose();
    target.dispose();
  });

  it('refuses manifests that leave the folder, truncated shards and missing files', async () => {
    const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const target = simpleCnn({ inputShape: [16, 16, 1], numClasses: 3, filters: [4, 8], dense: 8 });
    manifest.weightsManifest[0].paths = ['../../etc/passwd'];
    writeFileSync(join(dir, 'evil.json'), JSON.stringify(manifest));
    await expect(loadLayersWeights(target, join(dir, 'evil.json'))).rejects.toThrow(
      "Error in loadLayersWeights: model.json lists weight file '../../etc/passwd', which leaves the model folder: refused",
    );
    manifest.weightsManifest[0].paths = ['short.bin'];
    writeFileSync(join(dir, 'short.bin'), readFileSync(join(dir, 'weights.bin')).subarray(0, 100));
    writeFileSync(join(dir, 'short.json'), JSON.stringify(manifest));
    await expect(loadLayersWeights(target, join(dir, 'short.json'))).rejects.toThrow(
      /hold 100 bytes but the manifest needs \d+ \(truncated\?\)/,
    );
    await expect(loadLayersWeights(target, join(dir, 'nope.json'))).rejects.toThrow(
      /cannot read .*nope\.json/,
    );
    target.dispose();
  });
});

describe('pretrained weights: descriptor, download and verification', () => {
  it('the ResNet50V2 descriptor carries Keras file names, md5 sums and preprocessing', () => {
    expect(RESNET50V2_IMAGENET.notop).toMatchObject({
      fileName: 'resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5',
      md5: 'fac2f116257151a9d068a22e544a4917',
      inputShape: [224, 224, 3],
      preprocessing: { name: 'Rescale', config: { scale: 1 / 127.5, offset: -1 } },
    });
    expect(RESNET50V2_IMAGENET.top.md5).toBe('3ef43a0b657b3be2300d5770ece849e0');
  });

  const payload = new TextEncoder().encode('pretend these are weights');
  const descriptor: WeightsDescriptor = {
    ...RESNET50V2_IMAGENET.notop,
    url: 'https://example.invalid/w.h5',
    md5: md5(payload),
  };

  it('downloads once, verifies md5, caches, and re-downloads a corrupted cache', async () => {
    let calls = 0;
    const fetch = async () => {
      calls++;
      return { ok: true, status: 200, arrayBuffer: async () => payload.slice().buffer };
    };
    const cacheDir = join(dir, 'cache');
    const path = await fetchWeights(descriptor, { cacheDir, fetch });
    expect(readFileSync(path)).toEqual(Buffer.from(payload));
    await fetchWeights(descriptor, { cacheDir, fetch });
    expect(calls).toBe(1);
    writeFileSync(path, 'corrupt');
    await fetchWeights(descriptor, { cacheDir, fetch });
    expect(calls).toBe(2);
    expect(md5(new Uint8Array(readFileSync(path)))).toBe(descriptor.md5);
  });

  it('refuses a file whose md5 differs and leaves no file behind; reports failed downloads', async () => {
    const cacheDir = join(dir, 'cache2');
    const bad = async () => ({
      ok: true,
      status: 200,
      arrayBuffer: async () => new Uint8Array([1, 2, 3]).buffer,
    });
    await expect(fetchWeights(descriptor, { cacheDir, fetch: bad })).rejects.toThrow(
      /has md5 5289df737df57326fcdd22597afb1fac, expected .*: refusing a corrupt or different file/,
    );
    expect(existsSync(join(cacheDir, descriptor.fileName))).toBe(false);
    const down = async () => ({ ok: false, status: 503, arrayBuffer: async () => new ArrayBuffer(0) });
    await expect(fetchWeights(descriptor, { cacheDir, fetch: down })).rejects.toThrow(
      /could not download https:\/\/example.invalid\/w.h5: HTTP 503. Download it by hand into/,
    );
  });
});
