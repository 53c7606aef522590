import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadClassifier,
  Rescale,
  saveClassifier,
  setupBackend,
  simpleCnn,
  syntheticDataset,
} from '../../src/node.js';
import { runCli } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-predict-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const size = 32;
const model = join(dir, 'classifier');
const scans = join(dir, 'scans');

beforeAll(async () => {
  await setupBackend('wasm');
  const net = simpleCnn({ inputShape: [size, size, 1], numClasses: 3, filters: [4], dense: 4, seed: 1 });
  await saveClassifier(model, {
    model: net,
    classNames: ['benign', 'malignant', 'normal'],
    decode: { channels: 1, resize: { height: size, width: size, fit: 'contain' } },
    preprocessing: new Rescale({ scale: 1 / 255 }),
    normalClass: 'normal',
  });
  net.dispose();
  const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 2, size, seed: 9 });
  // Two patients with files of the same name, a nested folder, and a file that is not an image.
  for (const [i, s] of data.samples.entries()) {
    const sub = join(scans, i < 3 ? 'patient-a' : 'patient-b', i === 5 ? 'late' : '');
    mkdirSync(sub, { recursive: true });
    await sharp(Buffer.from(Uint8Array.from(s.pixels, Math.round)), {
      raw: { width: size, height: size, channels: 1 },
    })
      .png()
      .toFile(join(sub, `scan${i % 3}.png`));
  }
  writeFileSync(join(scans, 'patient-b', 'broken.png'), 'not a png');
});

describe('medimg-classify predict', () => {
  it('classifies folders in batches, reports and skips a bad file (exit 1), writes a CSV and unique Grad-CAM names', async () => {
    const csv = join(dir, 'out.csv');
    const cams = join(dir, 'cams');
    const r = await run(
      'predict',
      '--model',
      model,
      scans,
      '--csv',
      csv,
      '--gradcam',
      '--out',
      cams,
      '--batch-size',
      '4',
      '--backend',
      'wasm',
    );
    expect(r.code).toBe(1);
    expect(r.text).toMatch(/broken\.png: skipped: .*broken\.png/);
    expect(r.text).toMatch(/1 input could not be classified/);
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('path,predicted,p_benign,p_malignant,p_normal,possible_missed_finding,error');
    expect(rows).toHaveLength(1 + 7);
    const good = rows.slice(1).filter((l) => !l.includes('broken'));
    expect(good).toHaveLength(6);
    for (const line of good) {
      const cells = line.split(',');
      const p = cells.slice(2, 5).map(Number);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(['benign', 'malignant', 'normal']).toContain(cells[1]);
    }
    expect(rows.find((l) => l.includes('broken'))).toMatch(/broken\.png,,,,,,.+/);
    // scan0.png exists for both patients: the overlays keep the folders apart.
    for (const f of [
      'patient-a/scan0.png-gradcam.png',
      'patient-b/scan0.png-gradcam.png',
      'patient-b/late/scan2.png-gradcam.png',
    ])
      expect(existsSync(join(cams, f)), f).toBe(true);
  });

  it('globs select files; the same results as one at a time', async () => {
    const glob = join(scans, 'patient-a', '*.png');
    const r = await run('predict', '--model', model, glob, '--json', '--backend', 'wasm');
    expect(r.code).toBe(0);
    const results = JSON.parse(r.text.slice(r.text.indexOf('[')));
    expect(results.map((x: { path: string }) => x.path.replace(/.*patient-a\//, ''))).toEqual([
      'scan0.png',
      'scan1.png',
      'scan2.png',
    ]);
    const clf = await loadClassifier(model);
    const one = await clf.predict(join(scans, 'patient-a', 'scan1.png'));
    for (const c of ['benign', 'malignant', 'normal'])
      expect(results[1].probabilities[c]).toBeCloseTo(one.probabilities[c]!, 5);
    clf.dispose();
    const none = await run('predict', '--model', model, join(scans, '*.jpg'), '--backend', 'wasm');
    expect(none.code).toBe(2);
    expect(none.text).toMatch(/no file matches/);
  });

  it('folders and globs take images as imageFolder does: DICOM files without an extension too, nothing else', async () => {
    const mixed = join(dir, 'mixed');
    mkdirSync(mixed);
    writeFileSync(join(mixed, 'x.png'), readFileSync(join(scans, 'patient-a', 'scan0.png')));
    // PACS exports: a DICOM file with no extension, and one named by its UID.
    const dicom = join(import.meta.dirname, '..', 'fixtures', 'dicom');
    copyFileSync(join(dicom, 'MR_small.dcm'), join(mixed, 'IM0001'));
    copyFileSync(join(dicom, 'CT_small.dcm'), join(mixed, '1.2.840.10008.5'));
    writeFileSync(join(mixed, 'README'), 'not an image, no extension');
    writeFileSync(join(mixed, 'notes.txt'), 'not an image');
    const names = (text: string) =>
      JSON.parse(text.slice(text.indexOf('[')))
        .map((x: { path: string }) => x.path.replace(/.*mixed\//, ''))
        .sort();
    const folder = await run('predict', '--model', model, mixed, '--json', '--backend', 'wasm');
    expect(folder.code, folder.text).toBe(0);
    expect(names(folder.text)).toEqual(['1.2.840.10008.5', 'IM0001', 'x.png']);
    const glob = await run('predict', '--model', model, join(mixed, '*'), '--json', '--backend', 'wasm');
    expect(glob.code, glob.text).toBe(0);
    expect(names(glob.text)).toEqual(['1.2.840.10008.5', 'IM0001', 'x.png']);
    const noImage = await run('predict', '--model', model, join(mixed, '*.txt'), '--backend', 'wasm');
    expect(noImage.code).toBe(2);
    expect(noImage.text).toMatch(/mixed\/\*\.txt \(1 file matches, none an image\)/);
  });

  it('x.png and x.jpg in one folder get a Grad-CAM overlay each', async () => {
    const twins = join(dir, 'twins');
    mkdirSync(twins);
    const png = readFileSync(join(scans, 'patient-a', 'scan0.png'));
    writeFileSync(join(twins, 'x.png'), png);
    await sharp(png).jpeg().toFile(join(twins, 'x.jpg'));
    const cams = join(dir, 'twins-cams');
    const r = await run('predict', '--model', model, twins, '--gradcam', '--out', cams, '--backend', 'wasm');
    expect(r.code, r.text).toBe(0);
    for (const f of ['x.png-gradcam.png', 'x.jpg-gradcam.png']) {
      expect(existsSync(join(cams, f)), f).toBe(true);
      expect(r.text).toContain(`Grad-CAM: ${join(cams, f)}`);
    }
  });

  it('a classifier folder with truncated or missing weights gets a message naming the file', async () => {
    const copy = join(dir, 'truncated');
    mkdirSync(copy);
    for (const f of ['classifier.json', 'model.json', 'weights.bin'])
      writeFileSync(join(copy, f), readFileSync(join(model, f)));
    truncateSync(join(copy, 'weights.bin'), 100);
    const r = await run(
      'predict',
      '--model',
      copy,
      join(scans, 'patient-a', 'scan0.png'),
      '--backend',
      'wasm',
    );
    expect(r.code).toBe(1);
    expect(r.text).toMatch(
      /truncated\/weights\.bin holds 100 bytes but model\.json describes \d+ .*truncated/,
    );
    rmSync(join(copy, 'weights.bin'));
    const missing = await run(
      'predict',
      '--model',
      copy,
      join(scans, 'patient-a', 'scan0.png'),
      '--backend',
      'wasm',
    );
    expect(missing.code).toBe(1);
    expect(missing.text).toMatch(/cannot read .*truncated\/weights\.bin: ENOENT/);
    expect(missing.text).not.toMatch(/unexpected error/);
  });
});
