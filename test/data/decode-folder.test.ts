import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classCounts,
  decodeImage,
  decodePixels,
  findDuplicates,
  folderSource,
  imageFolder,
  setupBackend,
  validateSamples,
} from '../../src/node.js';

const root = mkdtempSync(join(tmpdir(), 'medimg-data-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const gradient = (w: number, h: number, c: number) =>
  Buffer.from(Array.from({ length: w * h * c }, (_, i) => (i * 7) % 256));

beforeAll(async () => {
  await setupBackend('cpu');
  const dir = join(root, 'corpus');
  mkdirSync(dir);
  const raw = (w: number, h: number, c: 1 | 3 | 4) =>
    sharp(gradient(w, h, c), { raw: { width: w, height: h, channels: c } });
  await raw(6, 4, 3).jpeg({ quality: 95 }).toFile(join(dir, 'rgb.jpg'));
  await raw(6, 4, 1).png().toFile(join(dir, 'gray.png'));
  await raw(6, 4, 4).png().toFile(join(dir, 'rgba.png'));
  await raw(6, 4, 1).png().toFile(join(dir, 'png-named.jpg')); // PNG bytes, .jpg name (as in the MRI set)
  await raw(6, 4, 3).jpeg().withMetadata({ orientation: 6 }).toFile(join(dir, 'exif6.jpg')); // rotate 90
  await raw(6, 4, 3).jpeg().toColourspace('cmyk').toFile(join(dir, 'cmyk.jpg'));
  const sixteen = new Uint16Array(24).map((_, i) => i * 2570); // 0..59110 = (0..230) * 257
  await sharp(sixteen, { raw: { width: 6, height: 4, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toFile(join(dir, 'sixteen.png'));
  const jpeg = await raw(64, 64, 3).jpeg().toBuffer();
  writeFileSync(join(dir, 'truncated.jpg'), jpeg.subarray(0, jpeg.length / 2));
  writeFileSync(join(dir, 'empty.png'), '');
  writeFileSync(join(dir, 'text.png'), 'this is not an image\n');
  writeFileSync(join(dir, 'unsupported.png'), Buffer.from('BM\x00\x00\x00\x00not really a bmp either'));
  await raw(100, 100, 1).png().toFile(join(dir, 'big.png'));
});

describe('decodeImage (sharp)', () => {
  it('normalises 1-, 3- and 4-channel, 16-bit and CMYK inputs to the asked channels, values 0-255', async () => {
    const dir = join(root, 'corpus');
    const rgb = await decodeImage(join(dir, 'rgb.jpg'), { channels: 3 });
    expect(rgb.shape).toEqual([4, 6, 3]);
    expect(rgb.dtype).toBe('float32');
    const gray = await decodeImage(join(dir, 'gray.png'), { channels: 1 });
    expect(Array.from(gray.dataSync()).slice(0, 4)).toEqual([0, 7, 14, 21]);
    const grayAs3 = await decodeImage(join(dir, 'gray.png'), { channels: 3 });
    expect(Array.from(grayAs3.dataSync()).slice(0, 6)).toEqual([0, 0, 0, 7, 7, 7]);
    const rgba = await decodeImage(join(dir, 'rgba.png'), { channels: 3 });
    expect(rgba.shape).toEqual([4, 6, 3]);
    const sixteen = await decodePixels(join(dir, 'sixteen.png'), { channels: 1 });
    expect(Array.from(sixteen.data).slice(0, 4)).toEqual([0, 10, 20, 30]);
    const cmyk = await decodePixels(join(dir, 'cmyk.jpg'), { channels: 3 });
    expect(cmyk.channels).toBe(3);
    expect(cmyk.data.length).toBe(4 * 6 * 3);
    tf.dispose([rgb, gray, grayAs3, rgba]);
  });

  it('sniffs the format from the bytes and applies EXIF orientation', async () => {
    const dir = join(root, 'corpus');
    const p = await decodePixels(join(dir, 'png-named.jpg'), { channels: 1 });
    expect(p.format).toBe('png');
    const rotated = await decodePixels(join(dir, 'exif6.jpg'), { channels: 3 });
    expect([rotated.height, rotated.width]).toEqual([6, 4]);
  });

  it('resizes while decoding: contain letterboxes, fill stretches', async () => {
    const dir = join(root, 'corpus');
    const c = await decodePixels(join(dir, 'big.png'), {
      channels: 1,
      resize: { height: 10, width: 20, fit: 'contain' },
    });
    expect([c.height, c.width]).toEqual([10, 20]);
    expect(c.data[0]).toBe(0); // padding column
    const f = await decodePixels(join(dir, 'rgb.jpg'), {
      channels: 3,
      resize: { height: 8, width: 8, fit: 'fill' },
    });
    expect(f.data.length).toBe(8 * 8 * 3);
  });

  it('refuses broken files with an error that names the file and the problem', async () => {
    const dir = join(root, 'corpus');
    await expect(decodeImage(join(dir, 'truncated.jpg'), { channels: 3 })).rejects.toThrow(
      new RegExp(
        `Error in decodeImage: ${join(dir, 'truncated.jpg')} could not be decoded \\(truncated or corrupt\\?\\)`,
      ),
    );
    await expect(decodeImage(join(dir, 'empty.png'), { channels: 1 })).rejects.toThrow(
      /empty\.png is empty \(0 bytes\)/,
    );
    await expect(decodeImage(join(dir, 'text.png'), { channels: 1 })).rejects.toThrow(
      /text\.png is not a supported image/,
    );
    await expect(decodeImage(join(dir, 'unsupported.png'), { channels: 1 })).rejects.toThrow(
      /unsupported\.png is not a supported image/,
    );
    await expect(decodeImage(join(dir, 'big.png'), { channels: 1, maxPixels: 5000 })).rejects.toThrow(
      /big\.png is 100x100 = 10000 pixels, over the limit of 5000 \(decompression-bomb guard/,
    );
    await expect(decodeImage(join(dir, 'nope.png'), { channels: 1 })).rejects.toThrow(
      /cannot read .*nope\.png: ENOENT/,
    );
  });
});

describe('class-per-folder datasets', () => {
  beforeAll(async () => {
    for (const c of ['normal', 'benign', 'malignant']) mkdirSync(join(root, 'busi', c), { recursive: true });
    // Distinct textures (a solid colour would give every image the same perceptual hash).
    const img = (v: number) =>
      sharp(
        Buffer.from(
          Array.from({ length: 32 * 32 * 3 }, (_, i) => {
            const [x, y] = [Math.floor(i / 3) % 32, Math.floor(i / 96)];
            return Math.round(128 + 100 * Math.sin((x * v) / 97 + (y * v * v) / 3001));
          }),
        ),
        {
          raw: { width: 32, height: 32, channels: 3 },
        },
      ).png();
    await img(10).toFile(join(root, 'busi/benign/benign (2).png'));
    await img(20).toFile(join(root, 'busi/benign/benign (1).png'));
    await img(20).toFile(join(root, 'busi/benign/benign (1)_mask.png'));
    await img(30).toFile(join(root, 'busi/malignant/malignant (1).png'));
    copyFileSync(join(root, 'busi/benign/benign (1).png'), join(root, 'busi/malignant/malignant (2).png'));
    await img(40).toFile(join(root, 'busi/normal/normal (1).png'));
    await img(40).jpeg({ quality: 80 }).toFile(join(root, 'busi/normal/normal (2).jpg'));
    writeFileSync(join(root, 'busi/normal/notes.txt'), 'ignored');
  });

  it('sorts classes and files, filters extensions and exclude globs (BUSI masks)', async () => {
    const d = await imageFolder(join(root, 'busi'), { exclude: ['*_mask*'] });
    expect(d.classes).toEqual(['benign', 'malignant', 'normal']);
    expect(d.samples.map((s) => `${s.label}:${s.path.split('/').pop()}`)).toEqual([
      '0:benign (1).png',
      '0:benign (2).png',
      '1:malignant (1).png',
      '1:malignant (2).png',
      '2:normal (1).png',
      '2:normal (2).jpg',
    ]);
    expect(classCounts(d)).toEqual({ benign: 2, malignant: 2, normal: 2 });
    const ordered = await imageFolder(join(root, 'busi'), {
      classNames: ['normal', 'malignant', 'benign'],
      exclude: ['*_mask*'],
    });
    expect(ordered.samples[0]!.path).toContain('normal (1)');
  });

  it('fails loudly on a missing root, a missing class folder and an empty class', async () => {
    await expect(imageFolder(join(root, 'nowhere'))).rejects.toThrow(/cannot read folder .*nowhere: ENOENT/);
    await expect(imageFolder(join(root, 'busi'), { classNames: ['benign', 'cyst'] })).rejects.toThrow(
      /class folder .*cyst does not exist/,
    );
    mkdirSync(join(root, 'empty/a'), { recursive: true });
    await expect(imageFolder(join(root, 'empty'))).rejects.toThrow(/class folder .*empty\/a has no images/);
    await expect(imageFolder(join(root, 'corpus/rgb.jpg'))).rejects.toThrow(
      /cannot read folder .*rgb\.jpg: ENOTDIR/,
    );
  });

  it('finds exact duplicates across classes and near duplicates (re-encoded copies)', async () => {
    const d = await imageFolder(join(root, 'busi'), { exclude: ['*_mask*'] });
    const report = await findDuplicates(d.samples, { near: 4 });
    expect(report.exact.map((g) => g.map((s) => s.path.split('/').pop()))).toEqual([
      ['benign (1).png', 'malignant (2).png'],
    ]);
    expect(report.near.map((g) => g.map((s) => s.path.split('/').pop()))).toEqual([
      ['normal (1).png', 'normal (2).jpg'],
    ]);
  });

  it("onError 'skip' reports each broken file with path and reason; 'throw' names the first", async () => {
    const corpus = ['rgb.jpg', 'truncated.jpg', 'empty.png', 'text.png', 'gray.png'].map((f) => ({
      path: join(root, 'corpus', f),
      label: 0,
    }));
    const { ok, skipped } = await validateSamples(corpus, { channels: 1, onError: 'skip' });
    expect(ok.map((s) => s.path.split('/').pop())).toEqual(['rgb.jpg', 'gray.png']);
    expect(skipped.map((s) => s.path.split('/').pop())).toEqual(['empty.png', 'text.png', 'truncated.jpg']);
    expect(skipped[0]!.reason).toMatch(/is empty \(0 bytes\)/);
    await expect(validateSamples(corpus, { channels: 1, onError: 'throw', concurrency: 1 })).rejects.toThrow(
      /truncated\.jpg/,
    );
  });

  it('folderSource decodes on demand and caches decoded pixels when asked', async () => {
    const d = await imageFolder(join(root, 'busi'), { exclude: ['*_mask*'] });
    const source = folderSource(d.samples, 3, { channels: 1, resize: { height: 4, width: 4 }, cache: true });
    const a = await source.load(0);
    expect(a.shape).toEqual([4, 4, 1]);
    rmSync(d.samples[0]!.path);
    const b = await source.load(0); // from the cache, although the file is gone
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    await expect(source.load(1)).resolves.toBeDefined();
    tf.dispose([a, b]);
  });

  it('folderSource returns every image it lists: a bad file fails load with an error naming it', async () => {
    const corpus = ['gray.png', 'truncated.jpg', 'text.png'].map((f) => ({
      path: join(root, 'corpus', f),
      label: 0,
    }));
    const source = folderSource(corpus, 1, { channels: 1 });
    const ok = await source.load(0);
    expect(ok.shape).toEqual([4, 6, 1]);
    ok.dispose();
    const before = tf.memory().numTensors;
    await expect(source.load(1)).rejects.toThrow(
      /^Error in folderSource: cannot load sample 1: .*corpus\/truncated\.jpg could not be decoded .*drop unreadable files first with validateSamples\(samples, \{ onError: 'skip' \}\)/,
    );
    await expect(source.load(2)).rejects.toThrow(
      /cannot load sample 2: .*corpus\/text\.png is not a supported image/,
    );
    expect(tf.memory().numTensors).toBe(before);
    // The documented way: validateSamples drops the bad files, folderSource loads the rest.
    const { ok: readable } = await validateSamples(corpus, { channels: 1, onError: 'skip' });
    const clean = folderSource(readable, 1, { channels: 1 });
    expect(clean.length).toBe(1);
    expect(clean.describe?.(0)).toMatch(/gray\.png$/);
  });
});

const shared = resolve(__dirname, '../../../shared/data');
describe.skipIf(!existsSync(shared))('real data in ../shared/data (opt-in: skipped when absent)', () => {
  it('brain MRI: 5,712 samples in 4 classes, with exact duplicate groups', async () => {
    const d = await imageFolder(join(shared, 'brain-mri/Training'));
    expect(d.classes).toEqual(['glioma', 'meningioma', 'notumor', 'pituitary']);
    expect(classCounts(d)).toEqual({ glioma: 1321, meningioma: 1339, notumor: 1595, pituitary: 1457 });
    const report = await findDuplicates(d.samples);
    expect(report.exact.length).toBeGreaterThan(0);
    const png = await decodePixels(join(shared, 'brain-mri/Training/notumor/Tr-no_1005.jpg'), {
      channels: 1,
    });
    expect(png.format).toBe('png');
  }, 120_000);

  it('BUSI: 624 samples in 3 classes with masks excluded; the full-resolution samples decode', async () => {
    const d = await imageFolder(join(shared, 'busi/images'), { exclude: ['*_mask*'] });
    expect(classCounts(d)).toEqual({ benign: 350, malignant: 168, normal: 106 });
    const report = await findDuplicates(d.samples);
    expect(report.exact.some((g) => new Set(g.map((s) => s.label)).size > 1)).toBe(true); // benign/malignant copy
    const { readdirSync, statSync } = await import('node:fs');
    const files: string[] = [];
    const walk = (p: string) => {
      for (const f of readdirSync(p))
        (statSync(join(p, f)).isDirectory() ? walk : (x: string) => files.push(x))(join(p, f));
    };
    walk(join(shared, 'samples'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files.filter((x) => /\.(jpe?g|png)$/i.test(x))) {
      const p = await decodePixels(f, { channels: 3 });
      expect(p.width * p.height).toBeGreaterThan(256 * 256);
    }
  }, 120_000);
});
