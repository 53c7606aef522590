/**
 * The CLI's data inputs: class folders as users have them and CSV manifests for `train`,
 * `evaluate` and `inspect-data`, and a table of bad inputs that each get a clear message naming
 * the problem and the file, a non-zero exit, and leave an existing run folder untouched.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticDataset } from '../../src/node.js';
import { runCli, withoutNetwork } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-data-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const size = 32;
const study = join(dir, 'study');
const nested = join(dir, 'nested');
const manifest = join(study, 'manifest.csv');
const fast = ['--image-size', '32', '--grayscale', '--epochs', '1', '--batch-size', '8', '--backend', 'wasm'];

beforeAll(async () => {
  const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 6, size, seed: 7 });
  const png = (pixels: Float32Array) =>
    sharp(Buffer.from(Uint8Array.from(pixels, Math.round)), {
      raw: { width: size, height: size, channels: 1 },
    });
  // A manifest study: images/<i>.png, 4 train, 1 validation and 1 test row per class; one path
  // quoted (a comma in the name).
  mkdirSync(join(study, 'images'), { recursive: true });
  const rows = ['path,label,split'];
  for (const [i, s] of data.samples.entries()) {
    const k = Math.floor(i / data.classes.length);
    const name = i === 0 ? 'images/0, first.png' : `images/${i}.png`;
    await png(s.pixels).toFile(join(study, name));
    const split = k < 4 ? 'train' : k === 4 ? 'validation' : 'test';
    rows.push(`${name.includes(',') ? `"${name}"` : name},${data.classes[s.label]},${split}`);
  }
  writeFileSync(manifest, `${rows.join('\r\n')}\r\n`);
  // A folder as users have it: sub-folders, a symlinked file, litter, a PNG named .jpg.
  for (const c of data.classes) mkdirSync(join(nested, c, 'batch1'), { recursive: true });
  mkdirSync(join(nested, '.ipynb_checkpoints'), { recursive: true });
  mkdirSync(join(nested, '__MACOSX'), { recursive: true });
  for (const [i, s] of data.samples.entries()) {
    const cls = data.classes[s.label] as string;
    await png(s.pixels)
      .png()
      .toFile(join(nested, cls, i % 2 ? 'batch1' : '', i === 1 ? `${i}.jpg` : `${i}.png`));
  }
  symlinkSync(join(study, 'images', '2.png'), join(nested, data.classes[2] as string, 'linked.png'));
  writeFileSync(join(nested, 'benign', '.DS_Store'), 'x');
  writeFileSync(join(nested, 'benign', 'Thumbs.db'), 'x');
  writeFileSync(join(nested, 'normal', 'notes.txt'), 'x');
});

describe('CSV manifests and nested folders through the CLI', () => {
  it('train --data manifest.csv uses its split column; evaluate --data manifest.csv scores its test rows', async () => {
    const out = join(dir, 'run-manifest');
    const r = await run('train', '--data', manifest, ...fast, '--out', out);
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(/data: 18 images in 3 classes \(benign, malignant, normal\)/);
    expect(r.text).toMatch(/split: 12 train \/ 3 validation, from the split column of .*manifest\.csv/);
    expect(r.text).toMatch(/test: 3 images in the test rows of .*manifest\.csv; 0 duplicate .*; 3 scored/);
    const runJson = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(runJson.data.validation).toMatch(/^validation rows of .*manifest\.csv$/);
    expect(runJson.data.test).toMatch(/^test rows of .*manifest\.csv$/);
    expect(runJson.data.counts).toEqual({ train: 12, validation: 3, test: 3 });
    expect(runJson.split.train).toContain('images/0, first.png');
    expect(existsSync(join(out, 'test-evaluation', 'report.txt'))).toBe(true);

    const e = await run(
      'evaluate',
      '--model',
      join(out, 'classifier'),
      '--data',
      manifest,
      '--backend',
      'wasm',
      '--out',
      join(dir, 'eval-manifest'),
    );
    expect(e.code, e.text).toBe(0);
    expect(e.text).toMatch(/using the 3 'test' rows of .*manifest\.csv \(its split column\)/);
    expect(existsSync(join(dir, 'eval-manifest', 'metrics.json'))).toBe(true);

    const conflict = await run('train', '--data', manifest, '--val', nested, ...fast);
    expect(conflict.code).toBe(2);
    expect(conflict.text).toMatch(/--val: .*manifest\.csv already has validation rows \(its split column\)/);
  }, 180_000);

  it('inspect-data reads every file of a nested folder, says what it left out and names the odd files', async () => {
    const r = await run('inspect-data', nested);
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(/: 19 images in 3 classes/);
    expect(r.text).toMatch(
      /left out 5 entries \(os-litter: 4, not-an-image: 1\)\n {2}os-litter: OS and notebook litter/,
    );
    expect(r.text).toMatch(/ {4}.*nested\/\.ipynb_checkpoints\n/);
    expect(r.text).toMatch(/read 19 files: 19 headers, 19 decoded, 0 unreadable/);
    expect(r.text).toMatch(
      /odd files: wrong-extension: 1\n {2}wrong extension .*: 1\n {4}.*batch1\/1\.jpg: png data in a \.jpg file/,
    );
    expect(r.text).toMatch(/exact duplicate groups: 1 \(2 files\)/); // the symlinked file
    const tty = process.stdout.isTTY;
    process.stdout.isTTY = true;
    try {
      const live = await run('inspect-data', nested);
      expect(live.text).toMatch(/\rreading images: 19\/19/);
      expect(live.text).toMatch(/\r {60}\rread 19 files/);
    } finally {
      process.stdout.isTTY = tty;
    }
    const m = await run('inspect-data', manifest, '--against', nested);
    expect(m.code, m.text).toBe(0);
    expect(m.text).toMatch(
      /18 images in 3 classes\n(.*\n){3} {2}train rows: 12\n {2}validation rows: 3\n {2}test rows: 3/,
    );
    expect(m.text).toMatch(/validation rows that duplicate train rows: 0/);
    expect(m.text).toMatch(/leaks against .*nested: 18/);
  }, 120_000);

  it('inspect-data counts the modality, bits, photometric interpretation and transfer syntax of DICOM class folders', async () => {
    const fixtures = join(__dirname, '../fixtures/dicom');
    const dicom = join(dir, 'dicom-study');
    mkdirSync(join(dicom, 'ct'), { recursive: true });
    mkdirSync(join(dicom, 'mr'), { recursive: true });
    copyFileSync(join(fixtures, 'CT_small.dcm'), join(dicom, 'ct', 'slice.dcm'));
    copyFileSync(join(fixtures, 'CT_small.dcm'), join(dicom, 'ct', '1.2.840.113619.2.55.3.1234')); // UID-named
    copyFileSync(join(fixtures, 'MR_small.dcm'), join(dicom, 'mr', 'a.dcm'));
    copyFileSync(join(fixtures, 'MR_small_RLE.dcm'), join(dicom, 'mr', 'IM0001')); // no extension
    copyFileSync(join(fixtures, 'MR_small_jpeg_ls_lossless.dcm'), join(dicom, 'mr', 'IM0002'));
    const r = await run('inspect-data', dicom);
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(/: 5 images in 2 classes\n {2}ct: 2\n {2}mr: 3\n/);
    expect(r.text).toMatch(/read 5 files: 5 headers, 5 decoded, 0 unreadable/);
    expect(r.text).toMatch(/formats: dicom: 5\n/);
    const lines = r.text.split('\n');
    const at = lines.indexOf('DICOM files: 5');
    expect(at, r.text).toBeGreaterThan(0);
    expect(lines.slice(at + 1, at + 6)).toEqual([
      '  modality: MR: 3, CT: 2',
      '  bits stored/allocated: 16/16 signed: 5',
      '  photometric interpretation: MONOCHROME2: 5',
      '  transfer syntax: Explicit VR Little Endian: 3, JPEG-LS Lossless: 1, RLE Lossless: 1',
      '  sizes: 64x64: 3, 128x128: 2',
    ]);
    expect(r.text).not.toMatch(/unreadable headers/);
    expect(r.text).toMatch(/exact duplicate groups: 1 \(2 files\)/); // the CT slice and its UID-named copy
  }, 60_000);
});

describe('bad inputs: a clear message naming the problem and the file, a non-zero exit, nothing lost', () => {
  it('the table', async () => {
    const bad = join(dir, 'bad');
    // An existing run folder that no failed command may touch.
    const existing = join(dir, 'existing-run');
    mkdirSync(join(existing, 'classifier'), { recursive: true });
    const kept = {
      'run.json': '{"finishedAt":"earlier"}\n',
      'history.json': '[]\n',
      'classifier/classifier.json': '{"classNames":["a","b"]}\n',
    };
    for (const [f, text] of Object.entries(kept)) writeFileSync(join(existing, f), text);
    const mtimes = Object.keys(kept).map((f) => statSync(join(existing, f)).mtimeMs);

    const emptyClass = join(bad, 'empty-class');
    mkdirSync(join(emptyClass, 'a'), { recursive: true });
    mkdirSync(join(emptyClass, 'b', '.ipynb_checkpoints'), { recursive: true });
    copyFileSync(join(study, 'images', '1.png'), join(emptyClass, 'a', '1.png'));
    const unreadable = join(bad, 'unreadable');
    mkdirSync(join(unreadable, 'a'), { recursive: true });
    mkdirSync(join(unreadable, 'b'), { recursive: true });
    copyFileSync(join(study, 'images', '1.png'), join(unreadable, 'a', '1.png'));
    writeFileSync(join(unreadable, 'b', 'broken.png'), 'not a png');
    const csv = (name: string, text: string) => {
      writeFileSync(join(study, name), text);
      return join(study, name);
    };
    const offline = [
      '--model',
      'densenet121',
      '--weights',
      'imagenet',
      '--image-size',
      '32',
      '--backend',
      'wasm',
    ];
    const cases: [string[], number, RegExp][] = [
      [
        ['train', '--data', join(bad, 'nowhere')],
        1,
        /cannot read folder .*bad\/nowhere: ENOENT \(no such folder\)/,
      ],
      [
        ['train', '--data', emptyClass],
        1,
        /class folder .*empty-class\/b has no images with extensions .* \(left out: 1 os-litter\)/,
      ],
      [
        ['train', '--data', unreadable, ...fast],
        1,
        /skipped .*unreadable\/b\/broken\.png: .*is not a supported image[\s\S]*unreadable: no readable images in class b/,
      ],
      [
        ['train', '--data', csv('unterminated.csv', 'path,label\nimages/1.png,a\n"images/2.png,b\n')],
        1,
        /unterminated\.csv line 3: unterminated quote/,
      ],
      [
        ['train', '--data', csv('no-label.csv', 'path,class\nimages/1.png,a\n')],
        1,
        /no-label\.csv line 1: no 'label' column in the header \(found: path, class\)/,
      ],
      [
        ['train', '--data', csv('split.csv', 'path,label,split\nimages/1.png,a,val\n')],
        1,
        /split\.csv line 2: unknown split 'val' for images\/1\.png \(use train, validation, test\)/,
      ],
      [
        ['train', '--data', csv('missing.csv', 'path,label\nimages/1.png,a\nimages/nope.png,b\n')],
        1,
        /missing\.csv: a listed file does not exist .*line 3: images\/nope\.png \(.*study\/images\/nope\.png: ENOENT\)/,
      ],
      [['train', '--data', csv('empty.csv', '')], 1, /empty\.csv is empty: expected a header row/],
      [
        ['train', '--data', csv('label.csv', 'path,label\nimages/1.png,\n')],
        1,
        /label\.csv line 2: empty label for images\/1\.png/,
      ],
      [['train', '--data', manifest, '--dta', 'x'], 2, /Unknown option '--dta'/],
      [
        ['train', '--data', manifest, '--validation-split', '0.3'],
        2,
        /--validation-split: .*manifest\.csv already has validation rows/,
      ],
      // No checkpoint in the run folder: refused, not a silent fresh start over the old run.
      [
        ['train', '--data', nested, '--resume', ...fast],
        2,
        /--resume: .*existing-run has no checkpoint to continue from \(no checkpoints\/last\.ckpt\); leave out --resume to start a new run/,
      ],
      // Offline: the weights fail to download before any image is read or run.json is written.
      [
        ['train', '--data', nested, ...offline],
        1,
        /could not download .*densenet121_weights_tf_dim_ordering_tf_kernels_notop\.h5: fetch failed\. Download it by hand into .*offline-cache/,
      ],
      [['inspect-data', join(study, 'nope.csv')], 1, /cannot read manifest .*nope\.csv: ENOENT/],
      [['inspect-data', emptyClass], 1, /class folder .*empty-class\/b has no images/],
    ];
    // No network: a download of pretrained weights fails (as in train.test.ts).
    await withoutNetwork(join(dir, 'offline-cache'), async () => {
      for (const [args, code, message] of cases) {
        const withOut = args[0] === 'train' ? [...args, '--out', existing] : args;
        const r = await run(...withOut);
        expect(r.code, `${args.join(' ')}\n${r.text}`).toBe(code);
        expect(r.text, args.join(' ')).toMatch(message);
        expect(r.text, args.join(' ')).not.toMatch(/unexpected error| {4}at /);
      }
    });
    for (const [f, text] of Object.entries(kept))
      expect(readFileSync(join(existing, f), 'utf8'), f).toBe(text);
    expect(Object.keys(kept).map((f) => statSync(join(existing, f)).mtimeMs)).toEqual(mtimes);
    expect(existsSync(join(existing, 'checkpoints'))).toBe(false);
  }, 120_000);
});
