/**
 * Folders as users have them (nested class folders, symlinks, OS litter) and CSV manifests:
 * `imageFolder`, `parseCsv`, `readManifest`, `readDataset`, `inspectImages`.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classCounts,
  imageFolder,
  inspectImages,
  parseCsv,
  readDataset,
  readManifest,
  SKIP_REASONS,
} from '../../src/node.js';

const root = mkdtempSync(join(tmpdir(), 'medimg-layouts-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A small image with a texture that depends on `v` (distinct files, distinct hashes). */
const image = (v: number, w = 16, h = 16, channels: 1 | 3 = 3) =>
  sharp(Buffer.from(Array.from({ length: w * h * channels }, (_, i) => (i * v + v * 31) % 256)), {
    raw: { width: w, height: h, channels },
  });

const names = (paths: { path: string }[], base: string) =>
  paths.map((s) => s.path.slice(base.length + 1).replaceAll('\\', '/'));

describe('imageFolder: folders as users have them', () => {
  const data = join(root, 'study');
  const outside = join(root, 'outside');
  beforeAll(async () => {
    for (const d of ['a/sub/deeper', 'b', 'a/.ipynb_checkpoints', '.ipynb_checkpoints', '__MACOSX/a', '.git'])
      mkdirSync(join(data, d), { recursive: true });
    mkdirSync(join(outside, 'pool/inner'), { recursive: true });
    mkdirSync(join(outside, 'class-c'), { recursive: true });
    await image(1).png().toFile(join(data, 'a/x.png'));
    await image(2).png().toFile(join(data, 'a/sub/y.png'));
    await image(3).jpeg().toFile(join(data, 'a/sub/deeper/z.JPG'));
    await image(4).png().toFile(join(data, 'b/w.png'));
    await image(5).png().toFile(join(outside, 'o.png'));
    await image(6).png().toFile(join(outside, 'pool/p.png'));
    await image(7).png().toFile(join(outside, 'pool/inner/q.png'));
    await image(8).png().toFile(join(outside, 'class-c/c.png'));
    // Litter: notebook checkpoints, macOS and Windows files, a git folder, non-images.
    await image(1).png().toFile(join(data, 'a/.ipynb_checkpoints/x-checkpoint.png'));
    await image(1).png().toFile(join(data, '.ipynb_checkpoints/stray.png'));
    await image(1).png().toFile(join(data, '__MACOSX/a/._x.png'));
    writeFileSync(join(data, 'a/._x.png'), 'AppleDouble');
    writeFileSync(join(data, 'a/.DS_Store'), 'x');
    writeFileSync(join(data, 'b/Thumbs.db'), 'x');
    writeFileSync(join(data, 'b/desktop.ini'), 'x');
    writeFileSync(join(data, 'b/.hidden.png'), 'x');
    writeFileSync(join(data, 'a/sub/notes.txt'), 'x');
    writeFileSync(join(data, 'README.md'), 'x');
    writeFileSync(join(data, '.git/HEAD'), 'x');
    // Links: a file, a folder, a class folder, a cycle, a link to the root, a broken link,
    // the same folder twice, a folder of another class.
    symlinkSync(join(outside, 'o.png'), join(data, 'b/linked.png'));
    symlinkSync(join(outside, 'pool'), join(data, 'b/pool'));
    symlinkSync(join(outside, 'pool'), join(data, 'b/pool-again'));
    symlinkSync(join(outside, 'class-c'), join(data, 'c'));
    symlinkSync('..', join(data, 'a/sub/loop'));
    symlinkSync('../..', join(data, 'a/up'));
    symlinkSync(join(outside, 'gone.png'), join(data, 'a/broken.png'));
    symlinkSync('../b', join(data, 'a/b-link'));
    symlinkSync('.', join(data, 'self'));
  });

  it('lists files in sub-folders under their class folder, follows links, and says what it left out', async () => {
    const d = await imageFolder(data);
    expect(d.classes).toEqual(['a', 'b', 'c']);
    expect(names(d.samples, data)).toEqual([
      'a/sub/deeper/z.JPG',
      'a/sub/y.png',
      'a/x.png',
      'b/linked.png',
      'b/pool/inner/q.png',
      'b/pool/p.png',
      'b/w.png',
      'c/c.png',
    ]);
    expect(d.samples.map((s) => s.label)).toEqual([0, 0, 0, 1, 1, 1, 1, 2]);
    expect(classCounts(d)).toEqual({ a: 3, b: 4, c: 1 });
    const skipped = Object.fromEntries(d.skipped.map((s) => [s.path.slice(data.length + 1), s.reason]));
    expect(skipped).toEqual({
      '.git': 'hidden',
      '.ipynb_checkpoints': 'os-litter',
      'README.md': 'outside-class-folders',
      __MACOSX: 'os-litter',
      'a/.DS_Store': 'os-litter',
      'a/._x.png': 'os-litter',
      'a/.ipynb_checkpoints': 'os-litter',
      'a/b-link': 'links-to-other-class',
      'a/broken.png': 'broken-link',
      'a/sub/loop': 'symlink-cycle',
      'a/sub/notes.txt': 'not-an-image',
      'a/up': 'symlink-cycle',
      'b/.hidden.png': 'hidden',
      'b/Thumbs.db': 'os-litter',
      'b/desktop.ini': 'os-litter',
      'b/pool-again': 'already-listed',
      self: 'symlink-cycle',
    });
    expect(d.skippedCounts).toEqual({
      hidden: 2,
      'os-litter': 7,
      'outside-class-folders': 1,
      'links-to-other-class': 1,
      'broken-link': 1,
      'symlink-cycle': 3,
      'not-an-image': 1,
      'already-listed': 1,
    });
    expect(d.skipped.find((s) => s.reason === 'broken-link')?.detail).toBe('ENOENT');
    for (const reason of Object.keys(d.skippedCounts)) expect(SKIP_REASONS).toHaveProperty(reason);
  });

  it('exclude globs match names and paths below the class folder, files and folders', async () => {
    const d = await imageFolder(data, { exclude: ['deeper', 'pool/*', 'c'] });
    expect(d.classes).toEqual(['a', 'b']);
    expect(names(d.samples, data)).toEqual(['a/sub/y.png', 'a/x.png', 'b/linked.png', 'b/w.png']);
    expect(
      d.skipped.filter((s) => s.reason === 'excluded').map((s) => s.path.slice(data.length + 1)),
    ).toEqual(['a/sub/deeper', 'b/pool/inner', 'b/pool/p.png', 'c']);
  });

  it('classNames: other folders are reported as unlisted; a class with only litter fails, naming what was left out', async () => {
    const d = await imageFolder(data, { classNames: ['b', 'a'] });
    expect(d.samples[0]!.path).toContain('linked.png');
    expect(d.skipped.find((s) => s.reason === 'unlisted-class')?.path).toBe(join(data, 'c'));
    const litter = join(root, 'litter');
    mkdirSync(join(litter, 'a/.ipynb_checkpoints'), { recursive: true });
    mkdirSync(join(litter, 'b'), { recursive: true });
    writeFileSync(join(litter, 'a/.DS_Store'), 'x');
    writeFileSync(join(litter, 'a/notes.txt'), 'x');
    await image(9).png().toFile(join(litter, 'b/ok.png'));
    await expect(imageFolder(litter)).rejects.toThrow(
      /class folder .*litter\/a has no images with extensions .* \(left out: 2 os-litter, 1 not-an-image\)/,
    );
  });

  it('keeps DICOM files (.dcm and extension-less ones with the preamble) in sub-folders', async () => {
    const dicom = join(root, 'dicom');
    mkdirSync(join(dicom, 'ct/patient1/series1'), { recursive: true });
    mkdirSync(join(dicom, 'mr/patient2'), { recursive: true });
    const fixture = (f: string) => resolve(__dirname, '../fixtures/dicom', f);
    copyFileSync(fixture('CT_small.dcm'), join(dicom, 'ct/patient1/series1/IM0001'));
    copyFileSync(fixture('CT_small.dcm'), join(dicom, 'ct/patient1/slice.dcm'));
    copyFileSync(fixture('MR_small_RLE.dcm'), join(dicom, 'mr/patient2/1.2.840.10008.5'));
    writeFileSync(join(dicom, 'mr/patient2/DICOMDIR-notes'), 'not DICOM');
    const d = await imageFolder(dicom);
    expect(names(d.samples, dicom)).toEqual([
      'ct/patient1/series1/IM0001',
      'ct/patient1/slice.dcm',
      'mr/patient2/1.2.840.10008.5',
    ]);
    expect(d.skipped.map((s) => [s.path.slice(dicom.length + 1), s.reason])).toEqual([
      ['mr/patient2/DICOMDIR-notes', 'not-an-image'],
    ]);
  });

  it('a plain folder lists as before, with nothing skipped', async () => {
    const plain = join(root, 'plain');
    for (const c of ['x', 'y']) mkdirSync(join(plain, c), { recursive: true });
    await image(10).png().toFile(join(plain, 'x/2.png'));
    await image(11).png().toFile(join(plain, 'x/10.png'));
    await image(12).png().toFile(join(plain, 'y/1.png'));
    const d = await imageFolder(plain);
    expect(names(d.samples, plain)).toEqual(['x/10.png', 'x/2.png', 'y/1.png']);
    expect(d.skipped).toEqual([]);
    expect(d.skippedCounts).toEqual({});
  });
});

describe('parseCsv (RFC 4180)', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks; CRLF, LF, a BOM and blank lines', () => {
    const text =
      '\uFEFFpath,label\r\n"a, b.png",x\r\n"say ""hi"".png",y\n\n"two\r\nlines.png","z"\nlast.png,w';
    expect(parseCsv(text)).toEqual([
      { fields: ['path', 'label'], line: 1 },
      { fields: ['a, b.png', 'x'], line: 2 },
      { fields: ['say "hi".png', 'y'], line: 3 },
      { fields: ['two\r\nlines.png', 'z'], line: 5 },
      { fields: ['last.png', 'w'], line: 7 },
    ]);
    expect(parseCsv('a,b,\n')).toEqual([{ fields: ['a', 'b', ''], line: 1 }]);
    expect(parseCsv('')).toEqual([]);
  });

  it('names the line of an unterminated quote and of text after a closing quote', () => {
    expect(() => parseCsv('path,label\nx.png,a\n"y.png,b\n', 'm.csv')).toThrow(
      /m\.csv line 3: unterminated quote/,
    );
    expect(() => parseCsv('path,label\n"x.png"z,a\n', 'm.csv')).toThrow(
      /m\.csv line 2: unexpected "z" after a closing quote/,
    );
    expect(() => parseCsv('path,label\nx"y.png,a\n', 'm.csv')).toThrow(
      /m\.csv line 2: a quote inside an unquoted field/,
    );
  });
});

describe('readManifest and readDataset', () => {
  const study = join(root, 'manifest-study');
  beforeAll(async () => {
    mkdirSync(join(study, 'images/with, comma'), { recursive: true });
    mkdirSync(join(study, 'lists'), { recursive: true });
    await image(21).png().toFile(join(study, 'images/1.png'));
    await image(22).png().toFile(join(study, 'images/with, comma/2 "quoted".png'));
    await image(23).jpeg().toFile(join(study, 'images/3.jpg'));
    await image(24).png().toFile(join(study, 'images/4.png'));
  });

  it('resolves relative paths against the CSV folder, sorts classes, reads the split column', async () => {
    const csv = join(study, 'lists/manifest.csv');
    writeFileSync(
      csv,
      [
        'Path,Label,Split,patient',
        '../images/1.png,normal,train,p1',
        '"../images/with, comma/2 ""quoted"".png", benign ,Validation,p2',
        `${join(study, 'images/3.jpg')},normal,test,p3`,
        '..\\images\\4.png,benign,train,p4',
        '',
      ].join('\r\n'),
    );
    const d = await readManifest(csv);
    expect(d.classes).toEqual(['benign', 'normal']);
    expect(d.hasSplit).toBe(true);
    expect(d.manifest).toBe(csv);
    expect(d.samples).toEqual([
      { path: join(study, 'images/1.png'), label: 1, split: 'train' },
      { path: join(study, 'images/with, comma/2 "quoted".png'), label: 0, split: 'validation' },
      { path: join(study, 'images/3.jpg'), label: 1, split: 'test' },
      { path: join(study, 'images/4.png'), label: 0, split: 'train' },
    ]);
    const ordered = await readManifest(csv, { classNames: ['normal', 'benign'] });
    expect(ordered.samples.map((s) => s.label)).toEqual([0, 1, 0, 1]);
    const excluded = await readDataset(csv, { exclude: ['*.jpg'] });
    expect(excluded.samples).toHaveLength(3);
    expect(excluded.skippedCounts).toEqual({ excluded: 1 });
  });

  it('readDataset dispatches on .csv, and reads a folder in the same shape', async () => {
    const plain = join(root, 'plain');
    const d = await readDataset(plain);
    expect(d.hasSplit).toBe(false);
    expect(d.classes).toEqual(['x', 'y']);
    const csv = join(study, 'no-split.CSV');
    writeFileSync(csv, 'path,label\nimages/1.png,a\nimages/4.png,b\n');
    const m = await readDataset(csv);
    expect(m.hasSplit).toBe(false);
    expect(m.samples).toEqual([
      { path: join(study, 'images/1.png'), label: 0 },
      { path: join(study, 'images/4.png'), label: 1 },
    ]);
  });

  it('errors name the CSV, the line and the problem', async () => {
    const cases: [string, RegExp][] = [
      ['', /bad\.csv is empty: expected a header row \(path,label\[,split\]\)/],
      ['path,label\n', /bad\.csv has a header but no rows/],
      [
        'path,class\nimages/1.png,a\n',
        /bad\.csv line 1: no 'label' column in the header \(found: path, class\)/,
      ],
      [
        'path,label\nimages/1.png,a\nimages/4.png\n',
        /bad\.csv line 3: expected 2 fields \(path,label\), got 1/,
      ],
      ['path,label\nimages/1.png, \n', /bad\.csv line 2: empty label for images\/1\.png/],
      ['path,label\n,a\n', /bad\.csv line 2: empty path/],
      [
        'path,label,split\nimages/1.png,a,val\n',
        /bad\.csv line 2: unknown split 'val' for images\/1\.png \(use train, validation, test\)/,
      ],
      [
        'path,label\nimages/1.png,a\nimages/nope.png,b\n',
        /bad\.csv: a listed file does not exist .*: line 3: images\/nope\.png \(.*images\/nope\.png: ENOENT\)/,
      ],
      ['path,label\nimages,a\n', /line 2: images \(.*: not a file\)/],
      ['path,label\nimages/1.png,a\n"images/4.png,b\n', /bad\.csv line 3: unterminated quote/],
      [
        'path,label\nimages/1.png,a\nimages/1.png,b\n',
        /bad\.csv line 3: images\/1\.png is listed again \(first on line 2\)/,
      ],
      ['path,label,label\nimages/1.png,a,b\n', /column 'label' appears twice/],
    ];
    const csv = join(study, 'bad.csv');
    for (const [text, message] of cases) {
      writeFileSync(csv, text);
      await expect(readManifest(csv), text).rejects.toThrow(message);
    }
    writeFileSync(csv, 'path,label\nimages/1.png,a\nimages/4.png,c\n');
    await expect(readManifest(csv, { classNames: ['a', 'b'] })).rejects.toThrow(
      /bad\.csv line 3: label 'c' is not one of a, b/,
    );
    await expect(readManifest(csv, { classNames: ['a', 'c', 'd'] })).rejects.toThrow(/class 'd' has no rows/);
    await expect(readManifest(join(study, 'missing.csv'))).rejects.toThrow(
      /cannot read manifest .*missing\.csv: ENOENT/,
    );
  });
});

describe('inspectImages', () => {
  it('reads every file and names wrong extensions, 16-bit, CMYK, tiny, huge and unreadable files', async () => {
    const dir = join(root, 'odd');
    mkdirSync(dir);
    const p = (f: string) => join(dir, f);
    await image(31, 40, 40).jpeg().toFile(p('ok.jpg'));
    await image(32, 40, 40).png().toFile(p('png-named.jpg'));
    await image(33, 40, 40).jpeg().toFile(p('jpeg-named.PNG'));
    await sharp(
      new Uint16Array(40 * 40).map((_, i) => i * 40),
      { raw: { width: 40, height: 40, channels: 1 } },
    )
      .toColourspace('grey16')
      .png()
      .toFile(p('sixteen.png'));
    await image(34, 40, 40).jpeg().toColourspace('cmyk').toFile(p('cmyk.jpg'));
    await image(35, 20, 40).png().toFile(p('tiny.png'));
    await image(36, 4100, 8, 1).png().toFile(p('huge.png'));
    const jpeg = await image(37, 64, 64).jpeg().toBuffer();
    writeFileSync(p('truncated.jpg'), jpeg.subarray(0, jpeg.length / 2));
    writeFileSync(p('empty.png'), '');
    writeFileSync(p('text.png'), 'not an image');
    const files = [
      'ok.jpg',
      'png-named.jpg',
      'jpeg-named.PNG',
      'sixteen.png',
      'cmyk.jpg',
      'tiny.png',
      'huge.png',
      'truncated.jpg',
      'empty.png',
      'text.png',
    ].map(p);
    const progress: number[] = [];
    const r = await inspectImages(files, { onProgress: (done) => progress.push(done) });
    expect(progress).toHaveLength(10);
    expect(r.files).toBe(10);
    expect(r.read).toBe(8);
    expect(r.decoded).toBe(7);
    const issues = Object.fromEntries(
      Object.entries(r.issues).map(([k, v]) => [
        k,
        v.map((f) => `${f.path.slice(dir.length + 1)}: ${f.detail}`),
      ]),
    );
    expect(issues['wrong-extension']).toEqual([
      'jpeg-named.PNG: jpeg data in a .png file',
      'png-named.jpg: png data in a .jpg file',
    ]);
    expect(issues['16-bit']).toEqual(['sixteen.png: 16 bits per sample (png)']);
    expect(issues.cmyk).toEqual(['cmyk.jpg: CMYK jpeg']);
    expect(issues.tiny).toEqual(['huge.png: 4100x8', 'tiny.png: 20x40']);
    expect(issues.huge).toEqual(['huge.png: 4100x8']);
    expect(issues.unreadable).toEqual([
      'empty.png: empty (0 bytes)',
      expect.stringMatching(/^text\.png: not a supported image \(/),
      expect.stringMatching(/^truncated\.jpg: could not be decoded \(truncated or corrupt\?\)/),
    ]);
    expect(r.formats).toEqual({ jpeg: 4, png: 4 });
    expect(r.sizes['40x40']).toBe(5);
  });
});
