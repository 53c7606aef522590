/**
 * DICOM input against pydicom 2.3 (test/fixtures/dicom.json, from scripts/fixtures/dicom.py):
 * modality values of every fixture (all transfer syntaxes), windows, MONOCHROME1, frames,
 * planar configuration, errors, folders, the header summary, and 16-bit PNG/TIFF windows.
 */
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Compose,
  DICOM_TRANSFER_SYNTAXES,
  decodeImage,
  decodePixels,
  folderSource,
  formatDicomSummary,
  imageFolder,
  isDicom,
  loadClassifier,
  minMaxWindow,
  parseDicom,
  Rescale,
  readDicom,
  saveClassifier,
  setupBackend,
  simpleCnn,
  summarizeDicom,
  transferSyntax,
  transformFromJSON,
  validateSamples,
  Window,
  windowImage,
} from '../../src/node.js';
import fixtures from '../fixtures/dicom.json' with { type: 'json' };
import { expectNoLeak } from '../helpers.js';

const DIR = resolve(__dirname, '../fixtures/dicom');
const file = (name: string) => join(DIR, name);
type Sampled = { size: number; stride: number; values: number[]; mean: number };
type Reference = (typeof fixtures.images)[keyof typeof fixtures.images];
const images = fixtures.images as Record<string, Reference & { display?: Sampled }>;

/** Largest difference between `actual` and a strided sample of the reference, and of the means. */
function compare(actual: ArrayLike<number>, ref: Sampled): { max: number; mean: number } {
  expect(actual.length).toBe(ref.size);
  let max = 0;
  ref.values.forEach((v, i) => {
    max = Math.max(max, Math.abs((actual[i * ref.stride] as number) - v));
  });
  let sum = 0;
  for (let i = 0; i < actual.length; i++) sum += actual[i] as number;
  return { max, mean: Math.abs(sum / actual.length - ref.mean) };
}

const LOSSY = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.91']);
const root = mkdtempSync(join(tmpdir(), 'medimg-dicom-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(() => setupBackend('cpu'));

describe('readDicom: modality values equal pydicom for every transfer syntax', () => {
  for (const c of fixtures.cases) {
    it(`${c.file} (${transferSyntax(c.transferSyntax).name}; vs ${c.reference === 'twin' ? `uncompressed twin ${c.image}` : 'pixel_array'})`, async () => {
      const ref = images[c.image]!;
      const d = await readDicom(file(c.file));
      expect([d.rows, d.columns, d.frames, d.channels]).toEqual([
        ref.rows,
        ref.columns,
        ref.frames,
        ref.channels,
      ]);
      expect(d.photometric).toBe(ref.photometric);
      const { max, mean } = compare(d.data, ref.modality);
      // Lossless syntaxes are exact; lossy JPEG matches Pillow's libjpeg(-turbo) here as well.
      expect(max).toBeLessThanOrEqual(LOSSY.has(c.transferSyntax) ? 2 : 0);
      expect(mean).toBeLessThan(LOSSY.has(c.transferSyntax) ? 0.5 : 1e-3);
    });
  }

  it('reads the header: modality, bits, window, rescale, frames; one frame on request', async () => {
    const mr = await readDicom(file('MR_small.dcm'));
    expect(mr.metadata).toMatchObject({
      modality: 'MR',
      bitsAllocated: 16,
      bitsStored: 16,
      pixelRepresentation: 1,
      photometricInterpretation: 'MONOCHROME2',
      windowCenter: [600],
      windowWidth: [1600],
      rescaleSlope: 1,
      rescaleIntercept: 0,
      transferSyntax: 'Explicit VR Little Endian',
    });
    const ct = await readDicom(readFileSync(file('CT_small.dcm')));
    expect(ct.metadata).toMatchObject({ modality: 'CT', rescaleIntercept: -1024, rescaleSlope: 1 });
    expect(Math.min(...ct.data)).toBe(-896); // Hounsfield units (stored 128 - 1024)
    const dose = await readDicom(file('rtdose.dcm'));
    expect(dose.frames).toBe(15);
    const third = await readDicom(file('rtdose.dcm'), { frame: 3 });
    expect(third.frames).toBe(1);
    expect(Array.from(third.data)).toEqual(Array.from(dose.data.subarray(300, 400)));
  });

  it('knows which transfer syntaxes it decodes, and with which package', () => {
    const by = (uid: string) => DICOM_TRANSFER_SYNTAXES.find((s) => s.uid === uid)!;
    expect(by('1.2.840.10008.1.2.4.50').decoder).toBe('@cornerstonejs/codec-libjpeg-turbo-8bit');
    expect(by('1.2.840.10008.1.2.4.70').decoder).toBe('jpeg-lossless-decoder-js');
    expect(by('1.2.840.10008.1.2.4.80').decoder).toBe('@cornerstonejs/codec-charls');
    expect(by('1.2.840.10008.1.2.4.90').decoder).toBe('@cornerstonejs/codec-openjpeg');
    expect(by('1.2.840.10008.1.2.5').encoding).toBe('rle');
    expect(by('1.2.840.10008.1.2.4.201').encoding).toBe('unsupported');
    expect(transferSyntax('1.2.3.4').reason).toMatch(/unknown transfer syntax 1\.2\.3\.4/);
  });
});

describe('decodeImage on DICOM: window, MONOCHROME1, channels, frames, resize', () => {
  it("applies the file's window as pydicom's apply_voi_lut (scaled to 0-255, rounded), inverting MONOCHROME1", async () => {
    for (const [name, key] of [
      ['MR_small.dcm', 'MR_small'],
      ['MR_small_RLE.dcm', 'MR_small'],
      ['MR_small_mono1_16x16.dcm', 'MR_small_mono1_16x16'],
    ] as const) {
      const p = await decodePixels(file(name), { channels: 1 });
      expect(p.format).toBe('dicom');
      expect(p.data).toBeInstanceOf(Uint8Array);
      expect(compare(p.data, images[key]!.display!).max).toBeLessThanOrEqual(0.5 + 1e-9);
    }
  });

  it("'auto' without a file window uses the min-max; colour keeps 8-bit values and scales 16-bit ones", async () => {
    const dfl = await decodePixels(file('image_dfl.dcm'), { channels: 1 });
    const values = (await readDicom(file('image_dfl.dcm'))).data;
    const [lo, hi] = [values.reduce((a, b) => Math.min(a, b)), values.reduce((a, b) => Math.max(a, b))];
    expect(lo).toBeLessThan(hi);
    expect(dfl.data[values.indexOf(hi)]).toBe(255);
    expect(dfl.data[values.indexOf(lo)]).toBe(0);
    const ybr = await decodePixels(file('SC_rgb_jpeg_dcmtk.dcm'), { channels: 3 });
    expect(Array.from(ybr.data)).toEqual(Array.from((await readDicom(file('SC_rgb_jpeg_dcmtk.dcm'))).data));
    const deep = await decodePixels(file('SC_rgb_rle_16bit.dcm'), { channels: 3 });
    const raw = (await readDicom(file('SC_rgb_rle_16bit.dcm'))).data;
    expect(Array.from(deep.data.slice(0, 30))).toEqual(
      Array.from(raw.slice(0, 30), (v) => Math.round((v / 65535) * 255)),
    );
  });

  it('applies a given window (LINEAR, LINEAR_EXACT, SIGMOID, width 1) and min-max as pydicom on CT Hounsfield units', async () => {
    for (const w of fixtures.windows) {
      const window = w.window as 'minmax' | { center: number; width: number };
      const p = await decodePixels(file(w.file), { channels: 1, window });
      expect(compare(p.data, w.display).max).toBeLessThanOrEqual(0.5 + 1e-9);
    }
  });

  it("window 'none' keeps Hounsfield units; a Window transform then gives pydicom's display values (float)", async () => {
    const hu = await decodeImage(file('CT_small.dcm'), { channels: 1, window: 'none' });
    const ct = await readDicom(file('CT_small.dcm'));
    expect(Array.from(hu.dataSync())).toEqual(Array.from(ct.data));
    for (const w of fixtures.windows) {
      const t =
        w.window === 'minmax'
          ? new Window(minMaxWindow(Math.min(...ct.data), Math.max(...ct.data)))
          : new Window(w.window as { center: number; width: number });
      const copy = transformFromJSON(JSON.parse(JSON.stringify(t)));
      const y = copy.apply(hu);
      expect(compare(y.dataSync(), w.display).max).toBeLessThan(1e-3);
      y.dispose();
    }
    hu.dispose();
  });

  it('returns tensors without leaking: gray to 3 channels, RGB to gray, a frame, resized', async () => {
    await expectNoLeak(async () => {
      const mr3 = await decodeImage(file('MR_small_jp2klossless.dcm'), { channels: 3 });
      expect(mr3.shape).toEqual([64, 64, 3]);
      const spread = tf.tidy(() => tf.max(tf.sub(tf.max(mr3, 2), tf.min(mr3, 2))).dataSync()[0]);
      expect(spread).toBe(0); // three identical channels
      const rgb = await decodeImage(file('SC_rgb_rle.dcm'), { channels: 3 });
      const gray = await decodeImage(file('SC_rgb_rle.dcm'), { channels: 1 });
      expect(gray.shape).toEqual([100, 100, 1]);
      // Pure red at the top left: luma 0.2989 * 255, rounded.
      expect(Array.from(rgb.dataSync().slice(0, 3))).toEqual([255, 0, 0]);
      expect(gray.dataSync()[0]).toBe(76);
      const small = await decodeImage(file('CT_small.dcm'), {
        channels: 1,
        resize: { height: 32, width: 48, fit: 'contain' },
      });
      expect(small.shape).toEqual([32, 48, 1]);
      const floats = await decodeImage(file('CT_small.dcm'), {
        channels: 1,
        window: 'none',
        resize: { height: 16, width: 16, fit: 'cover' },
      });
      expect(floats.shape).toEqual([16, 16, 1]);
      expect(Math.min(...floats.dataSync())).toBeLessThan(-500);
      const boxed = await decodeImage(file('MR_small.dcm'), {
        channels: 3,
        window: 'none',
        resize: { height: 20, width: 40, fit: 'contain' },
      });
      expect(boxed.shape).toEqual([20, 40, 3]);
      expect(boxed.dataSync()[0]).toBe(0); // letterbox padding
      return [mr3, rgb, gray, small, floats, boxed];
    });
    const dose = await readDicom(file('rtdose.dcm'));
    const f7 = await decodePixels(file('rtdose.dcm'), { channels: 1, frame: 7, window: 'none' });
    expect(Array.from(f7.data)).toEqual(Array.from(dose.data.subarray(700, 800)));
    await expect(decodePixels(file('rtdose.dcm'), { channels: 1, frame: 15 })).rejects.toThrow(
      /rtdose\.dcm: frame 15 is out of range; the file has 15 frame\(s\)/,
    );
  });

  it('sniffs DICOM without an extension and refuses decompression bombs', async () => {
    const bare = join(root, 'IM0001');
    copyFileSync(file('MR_small.dcm'), bare);
    const p = await decodePixels(bare, { channels: 1 });
    expect(p.format).toBe('dicom');
    expect(isDicom(readFileSync(bare))).toBe(true);
    await expect(decodePixels(bare, { channels: 1, maxPixels: 1000 })).rejects.toThrow(
      /IM0001 is 64x64 = 4096 pixels, over the limit of 1000/,
    );
  });
});

describe('bad DICOM: clear errors naming the file, and skipped with onError', () => {
  it('truncated, unsupported syntax, no pixel data, not DICOM, unknown syntax', async () => {
    await expect(readDicom(file('MR_truncated.dcm'))).rejects.toThrow(
      /MR_truncated\.dcm is truncated: Pixel Data \(7FE0,0010\) declares 8192 bytes but only 8130 remain/,
    );
    await expect(decodeImage(file('JPEG-lossy.dcm'), { channels: 1 })).rejects.toThrow(
      /JPEG-lossy\.dcm: 12-bit JPEG \(Process 4\) is not supported/,
    );
    await expect(readDicom(file('rtplan.dcm'))).rejects.toThrow(/rtplan\.dcm has no Pixel Data .*RTPLAN/);
    const text = join(root, 'notes.dcm');
    writeFileSync(text, 'this is not DICOM\n');
    await expect(decodeImage(text, { channels: 1 })).rejects.toThrow(/notes\.dcm is not a DICOM file/);
    // The same RLE file relabelled with a transfer syntax UID of the same length that nobody knows.
    const bytes = new Uint8Array(readFileSync(file('MR_small_RLE.dcm')));
    const at = Buffer.from(bytes).indexOf('1.2.840.10008.1.2.5\0');
    bytes.set(Buffer.from('1.2.840.10008.1.2.9\0'), at);
    await expect(readDicom(bytes)).rejects.toThrow(
      /<buffer> uses the transfer syntax 1\.2\.840\.10008\.1\.2\.9 .* not supported: unknown transfer syntax/,
    );
    await expect(readDicom(join(root, 'missing.dcm'))).rejects.toThrow(/cannot read .*missing\.dcm: ENOENT/);
  });

  it('parses the header of a file it cannot decode, for reports', async () => {
    const lossy = await parseDicom(new Uint8Array(readFileSync(file('JPEG-lossy.dcm'))), 'JPEG-lossy.dcm');
    expect(lossy.metadata).toMatchObject({ modality: 'NM', bitsStored: 12, rows: 1024, columns: 256 });
  });
});

describe('folders of DICOM files', () => {
  let dataset: string;
  beforeAll(() => {
    dataset = join(root, 'dataset');
    mkdirSync(join(dataset, 'ct'), { recursive: true });
    mkdirSync(join(dataset, 'mr'), { recursive: true });
    copyFileSync(file('CT_small.dcm'), join(dataset, 'ct/slice.dcm'));
    copyFileSync(file('CT_small.dcm'), join(dataset, 'ct/1.2.840.113619.2.55.3.1234')); // UID-named
    copyFileSync(file('MR_small_jpeg_ls_lossless.dcm'), join(dataset, 'mr/IM0001')); // no extension
    copyFileSync(file('MR_small_RLE.dcm'), join(dataset, 'mr/IM0002'));
    copyFileSync(file('MR_truncated.dcm'), join(dataset, 'mr/IM0003'));
    copyFileSync(file('JPEG-lossy.dcm'), join(dataset, 'mr/old.dcm'));
    writeFileSync(join(dataset, 'mr/README'), 'not an image, no extension');
  });

  it('imageFolder keeps .dcm and extension-less/UID-named DICOM files; onError skip reports bad ones', async () => {
    const d = await imageFolder(dataset);
    expect(d.samples.map((s) => s.path.split('/').slice(-2).join('/'))).toEqual([
      'ct/1.2.840.113619.2.55.3.1234',
      'ct/slice.dcm',
      'mr/IM0001',
      'mr/IM0002',
      'mr/IM0003',
      'mr/old.dcm',
    ]);
    const { ok, skipped } = await validateSamples(d.samples, { channels: 1, onError: 'skip' });
    expect(ok).toHaveLength(4);
    expect(skipped.map((s) => s.path.split('/').pop())).toEqual(['IM0003', 'old.dcm']);
    expect(skipped[0]!.reason).toMatch(/IM0003 is truncated/);
    expect(skipped[1]!.reason).toMatch(/old\.dcm: 12-bit JPEG/);
    const source = folderSource(ok, d.classes.length, { channels: 1, resize: { height: 32, width: 32 } });
    await expectNoLeak(async () => {
      const x = await source.load(2);
      expect(x.shape).toEqual([32, 32, 1]);
      return x;
    });
  });

  it('summarizeDicom counts modality, bits, photometric interpretation and transfer syntax', async () => {
    const d = await imageFolder(dataset);
    const s = await summarizeDicom(d.samples.map((x) => x.path));
    expect(s).toMatchObject({
      files: 6,
      modality: { CT: 2, MR: 3, NM: 1 },
      bits: { '16/16 signed': 5, '12/16': 1 },
      photometric: { MONOCHROME2: 6 },
      transferSyntax: {
        'Explicit VR Little Endian': 3,
        'JPEG-LS Lossless': 1,
        'RLE Lossless': 1,
        'JPEG Extended (Process 2 & 4)': 1,
      },
      sizes: { '128x128': 2, '64x64': 3, '256x1024': 1 },
      unreadable: [],
    });
    const lines = formatDicomSummary(s);
    expect(lines[0]).toBe('DICOM files: 6');
    expect(lines.join('\n')).toMatch(/modality: MR: 3, CT: 2, NM: 1/);
    expect(formatDicomSummary(await summarizeDicom([]))).toEqual([]);
  });
});

describe('a classifier carrying its DICOM window', () => {
  // Soft-tissue window on CT Hounsfield units, DICOM's LINEAR function computed here by hand.
  const W = { center: 40, width: 400 };
  const linear = (hu: number) =>
    255 * Math.min(1, Math.max(0, (hu - (W.center - 0.5)) / (W.width - 1) + 0.5));
  const size = 128; // CT_small's own size: no resizing between the file and the model.

  it('decode.window and a Window step each give the probabilities of the windowed file fed to the model by hand', async () => {
    const model = simpleCnn({ inputShape: [size, size, 1], numClasses: 3, filters: [4], dense: 8, seed: 5 });
    const classNames = ['a', 'b', 'c'];
    const byDecode = join(root, 'clf-decode-window');
    const byTransform = join(root, 'clf-window-transform');
    await saveClassifier(byDecode, {
      model,
      classNames,
      decode: { channels: 1, window: W },
      preprocessing: new Rescale({ scale: 1 / 255 }),
    });
    await saveClassifier(byTransform, {
      model,
      classNames,
      decode: { channels: 1, window: 'none' },
      preprocessing: new Compose([new Window(W), new Rescale({ scale: 1 / 255 })]),
    });
    const hu = (await readDicom(file('CT_small.dcm'))).data;
    const probs = (pixels: ArrayLike<number>) =>
      tf.tidy(() =>
        Array.from(
          (
            model.predict(
              tf.tensor4d(
                Float32Array.from(pixels, (v) => v / 255),
                [1, size, size, 1],
              ),
            ) as tf.Tensor
          ).dataSync(),
        ),
      );
    // The file decoded with the window is 8-bit (rounded); a Window step on Hounsfield units is float.
    const rounded = probs(Array.from(hu, (v) => Math.round(linear(v))));
    const exact = probs(Array.from(hu, linear));
    const autoWindow = probs((await decodePixels(file('CT_small.dcm'), { channels: 1 })).data);
    const expectProbs = (actual: Record<string, number>, expected: number[]) =>
      classNames.forEach((c, k) => expect(actual[c]).toBeCloseTo(expected[k]!, 6));

    const a = await loadClassifier(byDecode);
    expect(a.meta.decode.window).toEqual(W);
    await expectNoLeak(
      async () => expectProbs((await a.predict(file('CT_small.dcm'))).probabilities, rounded),
      {
        warmUp: true,
      },
    );
    const b = await loadClassifier(byTransform);
    expect(b.meta.decode.window).toBe('none');
    expect(b.meta.preprocessing).toEqual({
      name: 'Compose',
      config: {
        seed: 0,
        transforms: [
          { name: 'Window', config: { ...W, voiFunction: 'LINEAR' } },
          { name: 'Rescale', config: expect.objectContaining({ scale: 1 / 255 }) },
        ],
      },
    });
    await expectNoLeak(
      async () => expectProbs((await b.predict(file('CT_small.dcm'))).probabilities, exact),
      {
        warmUp: true,
      },
    );
    // The window matters: the file's own window gives other probabilities.
    const gap = Math.max(...autoWindow.map((p, k) => Math.abs(p - rounded[k]!)));
    expect(gap).toBeGreaterThan(1e-5);
    a.dispose();
    b.dispose();
    model.dispose();
  });
});

describe('16-bit PNG and TIFF keep their range with a window', () => {
  const values = Uint16Array.from({ length: 24 }, (_, i) => i * 2500); // 0..57500
  let png: string;
  let tiff: string;
  beforeAll(async () => {
    png = join(root, 'sixteen.png');
    tiff = join(root, 'sixteen.tif');
    const img = () => sharp(values, { raw: { width: 6, height: 4, channels: 1 } }).toColourspace('grey16');
    await img().png().toFile(png);
    await img().tiff({ compression: 'lzw' }).toFile(tiff);
  });

  it("'none' returns the 16-bit values, a window maps them to 0-255, 'auto' still cuts to 8 bits", async () => {
    for (const path of [png, tiff]) {
      const raw = await decodePixels(path, { channels: 1, window: 'none' });
      expect(raw.data).toBeInstanceOf(Float32Array);
      expect(Array.from(raw.data)).toEqual(Array.from(values));
      const minmax = await decodePixels(path, { channels: 1, window: 'minmax' });
      expect(minmax.data[0]).toBe(0);
      expect(minmax.data[23]).toBe(255);
      const w = await decodePixels(path, { channels: 1, window: { center: 10000, width: 10001 } });
      // LINEAR: (v - 9999.5) / 10000 + 0.5, clipped, x 255, rounded.
      expect(Array.from(w.data.slice(0, 6))).toEqual([0, 0, 0, 64, 128, 191]);
      const auto = await decodePixels(path, { channels: 1 });
      expect(Array.from(auto.data.slice(0, 3))).toEqual([0, 10, 19]); // v / 257, as before
      const rgb = await decodePixels(path, { channels: 3, window: 'none' });
      expect(Array.from(rgb.data.slice(3, 6))).toEqual([2500, 2500, 2500]);
    }
  });

  it('refuses a malformed window', async () => {
    await expect(decodePixels(png, { channels: 1, window: { center: 0, width: 0 } })).rejects.toThrow(
      /window width must be >= 1/,
    );
    await expect(decodePixels(png, { channels: 1, window: 'auto-ish' as unknown as 'auto' })).rejects.toThrow(
      /window must be 'auto', 'minmax', 'none' or \{ center, width \}/,
    );
  });
});

describe('Window transform and windowImage', () => {
  it('maps a window to 0-255 with DICOM semantics, leaks nothing, and validates its options', async () => {
    await expectNoLeak(() => {
      const x = tf.tensor3d([-1000, 0, 39.5, 40, 240, 3000], [1, 6, 1]);
      const y = windowImage(x, { center: 40, width: 401 });
      // (x - 39.5) / 400 + 0.5, clipped to [0, 1], x 255.
      expect(Array.from(y.dataSync())).toEqual(
        [0, 102.31875, 127.5, 127.81875, 255, 255].map((v) => expect.closeTo(v, 3)),
      );
      const step = new Window({ center: 40, width: 1 }).apply(x);
      expect(Array.from(step.dataSync())).toEqual([0, 0, 0, 255, 255, 255]);
      return [x, y, step];
    });
    expect(() => new Window({ center: 40, width: 0.5 })).toThrow(/Window: window width must be >= 1/);
    expect(() => new Window({ center: 40, width: 10, voiFunction: 'CUBIC' as 'LINEAR' })).toThrow(
      /voiFunction/,
    );
    expect(new Window({ center: 1, width: 2, voiFunction: 'SIGMOID' }).toJSON()).toEqual({
      name: 'Window',
      config: { center: 1, width: 2, voiFunction: 'SIGMOID' },
    });
  });
});

describe('codecs load lazily', () => {
  it('no module imports a codec statically; only dicom-codecs.node.ts imports them, dynamically', () => {
    const src = resolve(__dirname, '../../src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    for (const f of files) {
      const text = readFileSync(join(src, f), 'utf8');
      expect(text, f).not.toMatch(/^import[^;]*from '(@cornerstonejs\/codec|jpeg-lossless-decoder-js)/m);
      if (!f.endsWith('dicom-codecs.node.ts') && !f.endsWith('.d.ts'))
        expect(text, f).not.toMatch(/import\('(@cornerstonejs\/codec|jpeg-lossless)/);
      if (f.endsWith('dicom.node.ts') || f.endsWith('decode.node.ts'))
        expect(text, f).not.toMatch(/^import[^;]*dicom-codecs/m);
    }
  });
});
