import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { check, MedimgError } from '../util/errors.js';
import { type DecodedPixels, type DecodeOptions, decodePixels } from './decode.node.js';
import { isDicomFile } from './dicom-file.node.js';
import type { SampleSource } from './loader.js';
import type { LabeledSample } from './split.js';

/** One file of a class-per-folder dataset (or a row of a manifest). */
export interface FolderSample extends LabeledSample {
  path: string;
  label: number;
}

export interface ImageFolder {
  root: string;
  classes: string[];
  samples: FolderSample[];
}

/**
 * Why {@link imageFolder} (or {@link readManifest}) left an entry out:
 * - `hidden`: a dot-file or dot-folder (`.git`, `.cache`, ...)
 * - `os-litter`: files and folders that operating systems, archivers and notebooks leave
 *   behind (`.DS_Store`, `._*` AppleDouble files, `Thumbs.db`, `desktop.ini`, `__MACOSX`,
 *   `.ipynb_checkpoints`, `@eaDir`, `$RECYCLE.BIN`, ...)
 * - `excluded`: matched an `exclude` glob
 * - `not-an-image`: an extension outside `extensions` (and, for extension-less files, no DICOM preamble)
 * - `outside-class-folders`: a file directly in the root, beside the class folders
 * - `unlisted-class`: a folder in the root that is not among `classNames`
 * - `broken-link`: a symbolic link whose target does not exist
 * - `symlink-cycle`: a linked folder that leads back to a folder above it (or to the root)
 * - `already-listed`: a linked folder already listed under the same class by another path
 * - `links-to-other-class`: a linked folder inside another class's folder
 * - `unreadable`: a sub-folder that could not be read (permissions, I/O error)
 * - `not-a-file`: a socket, FIFO or device
 */
export type SkipReason =
  | 'hidden'
  | 'os-litter'
  | 'excluded'
  | 'not-an-image'
  | 'outside-class-folders'
  | 'unlisted-class'
  | 'broken-link'
  | 'symlink-cycle'
  | 'already-listed'
  | 'links-to-other-class'
  | 'unreadable'
  | 'not-a-file';

/** One sentence per {@link SkipReason}, for reports. */
export const SKIP_REASONS: Readonly<Record<SkipReason, string>> = {
  hidden: 'hidden (dot) files and folders',
  'os-litter':
    'OS and notebook litter (.DS_Store, ._*, Thumbs.db, desktop.ini, __MACOSX, .ipynb_checkpoints)',
  excluded: 'matched an exclude glob',
  'not-an-image': 'not an image (extension, and no DICOM preamble)',
  'outside-class-folders': 'files beside the class folders, in no class',
  'unlisted-class': 'folders that are not among the class names',
  'broken-link': 'symbolic links to nothing',
  'symlink-cycle': 'linked folders that lead back to a folder above them',
  'already-listed': 'linked folders already listed under the same class',
  'links-to-other-class': "linked folders inside another class's folder",
  unreadable: 'folders that could not be read',
  'not-a-file': 'sockets, FIFOs and devices',
};

/** An entry left out while listing a dataset, and why. */
export interface ListingSkip {
  /** The file or folder (a folder stands for everything below it). */
  path: string;
  reason: SkipReason;
  /** More about it: the error code, the folder a link leads back to, ... */
  detail?: string;
}

/**
 * A listed dataset: {@link ImageFolder} with what was left out while listing, and why (so that
 * nothing is dropped silently). {@link imageFolder}, {@link readManifest} and
 * {@link readDataset} return it.
 */
export interface DatasetListing<S extends FolderSample = FolderSample> extends ImageFolder {
  samples: S[];
  /** Entries left out, sorted by path. */
  skipped: ListingSkip[];
  /** How many entries were left out per reason. */
  skippedCounts: Partial<Record<SkipReason, number>>;
}

/** Options of {@link imageFolder}. */
export interface ImageFolderOptions {
  /** File extensions to keep (default {@link IMAGE_EXTENSIONS}). */
  extensions?: string[];
  /**
   * Globs (`*`, `?`) of files or folders to leave out, matched against the name and against the
   * path below the class folder (e.g. `*_mask*`, `masks`, `masks/*`).
   */
  exclude?: string[];
  /** The classes, in this order (default: the sorted class folder names). */
  classNames?: string[];
}

export const IMAGE_EXTENSIONS = [
  '.jpg',
  '.jpeg',
  '.png',
  '.bmp',
  '.tif',
  '.tiff',
  '.webp',
  '.gif',
  '.dcm',
  '.dicom',
];

/** PACS exports often name DICOM files without an extension, or by UID (`1.2.840....123`). */
const maybeDicomName = (ext: string) => ext === '' || /^\.\d+$/.test(ext);

/**
 * Whether {@link imageFolder} keeps a file (internal; `predict` picks files with it too): its
 * extension is one of `extensions` (lower case, with the dot), or, while `.dcm` is one, it has
 * no extension or a numeric one (UID-named PACS exports) and starts with the DICOM preamble.
 */
export async function isImageFile(
  path: string,
  extensions: readonly string[] = IMAGE_EXTENSIONS,
): Promise<boolean> {
  const ext = extname(path).toLowerCase();
  if (extensions.includes(ext)) return true;
  return extensions.includes('.dcm') && maybeDicomName(ext) && (await isDicomFile(path));
}

const LITTER = new Set(
  [
    '.ds_store',
    'thumbs.db',
    'ehthumbs.db',
    'desktop.ini',
    '__macosx',
    '.ipynb_checkpoints',
    '@eadir',
    '$recycle.bin',
    'system volume information',
    '.trashes',
    '.spotlight-v100',
    '.fseventsd',
    '.temporaryitems',
    '.apdisk',
    '__pycache__',
  ].map((n) => n.toLowerCase()),
);

/** `os-litter`, `hidden`, or undefined for an entry worth listing. */
function litterReason(name: string): 'os-litter' | 'hidden' | undefined {
  if (LITTER.has(name.toLowerCase()) || name.startsWith('._')) return 'os-litter';
  if (name.startsWith('.')) return 'hidden';
  return undefined;
}

/** A case-insensitive RegExp for a glob with `*` and `?` (internal). */
export function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

const errorCode = (error: unknown) =>
  (error as NodeJS.ErrnoException).code ?? (error as Error).message ?? String(error);

/** Sorts skipped entries by path and counts them per reason. */
export function summarizeSkipped(skipped: ListingSkip[]): Partial<Record<SkipReason, number>> {
  skipped.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const counts: Partial<Record<SkipReason, number>> = {};
  for (const s of skipped) counts[s.reason] = (counts[s.reason] ?? 0) + 1;
  return counts;
}

/** Whether `path` is `dir` or inside it (both real paths). */
const within = (path: string, dir: string) =>
  path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);

/**
 * Lists a class-per-folder dataset (`root/<class>/<image>`, torchvision's `ImageFolder`):
 * classes are the sorted sub-folder names (or `classNames`, in that order); every file below a
 * class folder, in sub-folders too, belongs to that class. Files are sorted by their path below
 * the class folder and filtered by extension and `exclude` globs (BUSI keeps `*_mask*.png`
 * beside the images). While `.dcm` is among the extensions, files without an extension (or
 * with a numeric one, as UID-named PACS exports) are kept when they start with the DICOM
 * preamble (`DICM` at byte 128).
 *
 * Symbolic links to files and folders are followed (a link that leads back to a folder above it
 * is not). Dot-files and dot-folders and OS litter (`.DS_Store`, `._*`, `Thumbs.db`,
 * `desktop.ini`, `__MACOSX`, `.ipynb_checkpoints`) are never classes or samples. Whatever is
 * left out is returned in `skipped`, with the reason (see {@link SkipReason}), and counted in
 * `skippedCounts`. A missing root, a missing class folder, or a class with no images fails loudly.
 *
 * @example
 * const data = await imageFolder('busi/images', { exclude: ['*_mask*'] });
 * console.log(data.skippedCounts); // e.g. { excluded: 630, 'os-litter': 1 }
 */
export async function imageFolder(root: string, options: ImageFolderOptions = {}): Promise<DatasetListing> {
  const op = 'imageFolder';
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    const code = errorCode(error);
    const hint =
      code === 'ENOTDIR'
        ? ' (a file: give a folder root/<class>/<image>, or a .csv manifest)'
        : code === 'ENOENT'
          ? ' (no such folder)'
          : '';
    throw new MedimgError(op, `cannot read folder ${root}: ${code}${hint}`);
  }
  const skipped: ListingSkip[] = [];
  const extensions = (options.extensions ?? IMAGE_EXTENSIONS).map((e) =>
    (e.startsWith('.') ? e : `.${e}`).toLowerCase(),
  );
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const excluded = (name: string, below: string) => exclude.some((re) => re.test(name) || re.test(below));
  const rootReal = await realpath(root);

  // The root: class folders (links followed), files beside them, litter.
  const folders = new Map<string, { path: string; real: string }>();
  for (const e of entries) {
    const path = join(root, e.name);
    let isDir = e.isDirectory();
    let real = join(rootReal, e.name);
    if (e.isSymbolicLink()) {
      try {
        isDir = (await stat(path)).isDirectory();
        if (isDir) real = await realpath(path);
      } catch (error) {
        const code = errorCode(error);
        skipped.push({ path, reason: code === 'ELOOP' ? 'symlink-cycle' : 'broken-link', detail: code });
        continue;
      }
    }
    if (!isDir) skipped.push({ path, reason: litterReason(e.name) ?? 'outside-class-folders' });
    else if (within(rootReal, real))
      skipped.push({ path, reason: 'symlink-cycle', detail: `leads back to ${real}` });
    else folders.set(e.name, { path, real });
  }
  const listed = [...folders.keys()]
    .filter((n) => !litterReason(n) && (options.classNames || !excluded(n, n)))
    .sort();
  const classes = options.classNames ?? listed;
  check(classes.length > 0, op, `${root} has no class sub-folders (expected root/<class>/<image>)`);
  for (const c of classes) check(folders.has(c), op, `class folder ${join(root, c)} does not exist`);
  for (const name of folders.keys()) {
    if (classes.includes(name)) continue;
    const path = join(root, name);
    const litter = litterReason(name);
    if (litter) skipped.push({ path, reason: litter });
    else if (!options.classNames) skipped.push({ path, reason: 'excluded' });
    else skipped.push({ path, reason: 'unlisted-class', detail: `not one of ${classes.join(', ')}` });
  }
  const classReals = classes.map((c) => (folders.get(c) as { real: string }).real);

  const samples: FolderSample[] = [];
  for (const [label, c] of classes.entries()) {
    const { path: dir, real: classReal } = folders.get(c) as { path: string; real: string };
    const kept: { below: string; path: string }[] = [];
    const before = skipped.length;
    const visited = new Set([classReal]);
    const walk = async (folder: string, real: string, below: string, chain: string[]): Promise<void> => {
      let list: import('node:fs').Dirent[];
      try {
        list = await readdir(folder, { withFileTypes: true });
      } catch (error) {
        if (below === '') throw new MedimgError(op, `cannot read folder ${folder}: ${errorCode(error)}`);
        skipped.push({ path: folder, reason: 'unreadable', detail: errorCode(error) });
        return;
      }
      // Sorted, so that which of two links to one folder is listed does not depend on the OS.
      list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of list) {
        const path = join(folder, e.name);
        const rel = below ? `${below}/${e.name}` : e.name;
        const litter = litterReason(e.name);
        if (litter) {
          skipped.push({ path, reason: litter });
          continue;
        }
        let isDir = e.isDirectory();
        let isFile = e.isFile();
        let entryReal = join(real, e.name);
        if (e.isSymbolicLink()) {
          try {
            const info = await stat(path);
            isDir = info.isDirectory();
            isFile = info.isFile();
            if (isDir) entryReal = await realpath(path);
          } catch (error) {
            const code = errorCode(error);
            skipped.push({ path, reason: code === 'ELOOP' ? 'symlink-cycle' : 'broken-link', detail: code });
            continue;
          }
        }
        if (excluded(e.name, rel)) {
          skipped.push({ path, reason: 'excluded' });
          continue;
        }
        if (isDir) {
          if (chain.includes(entryReal) || within(rootReal, entryReal)) {
            skipped.push({ path, reason: 'symlink-cycle', detail: `leads back to ${entryReal}` });
            continue;
          }
          const other = classReals.findIndex((r, i) => i !== label && within(entryReal, r));
          if (other >= 0) {
            skipped.push({
              path,
              reason: 'links-to-other-class',
              detail: `${entryReal} is in class ${classes[other]}`,
            });
            continue;
          }
          if (visited.has(entryReal)) {
            skipped.push({ path, reason: 'already-listed', detail: entryReal });
            continue;
          }
          visited.add(entryReal);
          await walk(path, entryReal, rel, [...chain, entryReal]);
        } else if (isFile) {
          if (await isImageFile(path, extensions)) kept.push({ below: rel, path });
          else skipped.push({ path, reason: 'not-an-image' });
        } else skipped.push({ path, reason: 'not-a-file' });
      }
    };
    await walk(dir, classReal, '', [rootReal, classReal]);
    if (kept.length === 0) {
      const left = summarizeSkipped(skipped.slice(before));
      const why = Object.entries(left)
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([r, n]) => `${n} ${r}`)
        .join(', ');
      throw new MedimgError(
        op,
        `class folder ${dir} has no images with extensions ${extensions.join(', ')}${why ? ` (left out: ${why})` : ''}`,
      );
    }
    kept.sort((a, b) => (a.below < b.below ? -1 : a.below > b.below ? 1 : 0));
    for (const f of kept) samples.push({ path: f.path, label });
  }
  const skippedCounts = summarizeSkipped(skipped);
  return { root, classes: [...classes], samples, skipped, skippedCounts };
}

/** Adds a content hash (sha1 of the bytes) to each sample, for duplicate and leak checks. */
export async function hashSamples<S extends { path: string }>(
  samples: readonly S[],
): Promise<(S & { hash: string })[]> {
  return Promise.all(
    samples.map(async (s) => {
      const bytes = await readFile(s.path).catch((error: NodeJS.ErrnoException) => {
        throw new MedimgError('hashSamples', `cannot read ${s.path}: ${error.code ?? error.message}`);
      });
      return { ...s, hash: createHash('sha1').update(bytes).digest('hex') };
    }),
  );
}

/** What {@link findDuplicates} returns. */
export interface DuplicateReport<S> {
  /** Samples with their content hash filled in. */
  samples: (S & { hash: string })[];
  /** Groups of byte-identical files (2 or more each). */
  exact: (S & { hash: string })[][];
  /** Groups of visually near-identical images (perceptual hash within `near` bits), when asked. */
  near: (S & { hash: string })[][];
}

/** 64-bit difference hash (dHash) of an image, as 16 hex digits. */
export async function perceptualHash(path: string): Promise<string> {
  const p = await decodePixels(path, { channels: 1, resize: { height: 8, width: 9, fit: 'fill' } });
  let bits = 0n;
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) bits = (bits << 1n) | (p.data[y * 9 + x]! > p.data[y * 9 + x + 1]! ? 1n : 0n);
  return bits.toString(16).padStart(16, '0');
}

const hamming = (a: string, b: string) => {
  let x = BigInt(`0x${a}`) ^ BigInt(`0x${b}`);
  let n = 0;
  while (x) {
    n += Number(x & 1n);
    x >>= 1n;
  }
  return n;
};

/**
 * Finds exact duplicates (same bytes) and, with `near` (a Hamming distance in bits of a 64-bit
 * dHash, e.g. 4), near duplicates such as re-encoded or resized copies.
 */
export async function findDuplicates<S extends { path: string }>(
  samples: readonly S[],
  options: { near?: number } = {},
): Promise<DuplicateReport<S>> {
  const hashed = await hashSamples(samples);
  const byHash = new Map<string, (S & { hash: string })[]>();
  for (const s of hashed) byHash.set(s.hash, [...(byHash.get(s.hash) ?? []), s]);
  const exact = [...byHash.values()].filter((g) => g.length > 1);
  const near: (S & { hash: string })[][] = [];
  if (options.near !== undefined) {
    const reps = [...byHash.values()].map((g) => g[0] as S & { hash: string });
    const ph = await Promise.all(reps.map((s) => perceptualHash(s.path).catch(() => null)));
    const used = new Set<number>();
    for (let i = 0; i < reps.length; i++) {
      if (used.has(i) || ph[i] === null) continue;
      const group = [reps[i] as S & { hash: string }];
      for (let j = i + 1; j < reps.length; j++) {
        if (!used.has(j) && ph[j] !== null && hamming(ph[i] as string, ph[j] as string) <= options.near) {
          group.push(reps[j] as S & { hash: string });
          used.add(j);
        }
      }
      if (group.length > 1) near.push(group);
    }
  }
  return { samples: hashed, exact, near };
}

/** A sample that could not be decoded, with the reason. */
export interface SkippedFile {
  path: string;
  reason: string;
}

export interface FolderSourceOptions extends DecodeOptions {
  /** Keep decoded (and resized) pixels in memory after the first epoch. Default false. */
  cache?: boolean;
}

/** Options of {@link validateSamples}: the decoding `folderSource` will use, and what to do with bad files. */
export interface ValidateSamplesOptions extends FolderSourceOptions {
  /** `'throw'` (default) stops at the first bad file, naming it; `'skip'` drops it and reports it. */
  onError?: 'throw' | 'skip';
  /** Files decoded at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/** A decoding error of `folderSource`'s `load`, naming the sample and its file. */
function loadError(index: number, path: string, error: unknown): MedimgError {
  const detail =
    error instanceof MedimgError
      ? error.message.slice(`Error in ${error.op}: `.length)
      : ((error as Error)?.message ?? String(error));
  return new MedimgError(
    'folderSource',
    `cannot load sample ${index}: ${detail.includes(path) ? detail : `${path}: ${detail}`} (a sample source returns every image it lists: drop unreadable files first with validateSamples(samples, { onError: 'skip' }))`,
  );
}

/**
 * A {@link SampleSource} over image files: decodes with sharp (DICOM with its codecs) on demand (so a whole dataset is
 * never held in memory unless `cache`), resizing while decoding when `resize` is given.
 * `load` returns every listed image or fails with an error naming the file: drop unreadable
 * files first with {@link validateSamples} (`onError: 'skip'` reports them and keeps the rest).
 *
 * @example
 * const { ok } = await validateSamples(samples, { ...decode, onError: 'skip' });
 * const source = folderSource(ok, classes.length, { ...decode, cache: true });
 */
export function folderSource(
  samples: readonly FolderSample[],
  numClasses: number,
  options: FolderSourceOptions,
): SampleSource & { samples: readonly FolderSample[] } {
  const cache = options.cache ? new Map<number, DecodedPixels>() : null;
  const toTensor = async (p: DecodedPixels) => {
    const { pixelsTensor } = await import('./pixels.js');
    return pixelsTensor(p.data, [p.height, p.width, p.channels]);
  };
  return {
    samples,
    length: samples.length,
    numClasses,
    label: (i) => (samples[i] as FolderSample).label,
    describe: (i) => (samples[i] as FolderSample).path,
    size: (i) => {
      const p = cache?.get(i);
      return p && [p.height, p.width, p.channels];
    },
    load: async (i): Promise<tf.Tensor3D> => {
      const hit = cache?.get(i);
      if (hit) return toTensor(hit);
      const { path } = samples[i] as FolderSample;
      let p: DecodedPixels;
      try {
        p = await decodePixels(path, options);
      } catch (error) {
        throw loadError(i, path, error);
      }
      cache?.set(i, p);
      return toTensor(p);
    },
  };
}

/**
 * Decodes every sample once (concurrently) and splits them into readable ones and skipped files
 * with reasons; with `onError: 'throw'` the first bad file throws an error naming it.
 */
export async function validateSamples<S extends FolderSample>(
  samples: readonly S[],
  options: ValidateSamplesOptions,
): Promise<{ ok: S[]; skipped: SkippedFile[] }> {
  const ok: (S | null)[] = new Array(samples.length).fill(null);
  const skipped: SkippedFile[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < samples.length) {
      const i = next++;
      const s = samples[i] as S;
      try {
        const info = await stat(s.path);
        check(info.isFile(), 'validateSamples', `${s.path} is not a file`);
        await decodePixels(s.path, {
          ...options,
          resize: options.resize ?? { height: 8, width: 8, fit: 'fill' },
        });
        ok[i] = s;
      } catch (error) {
        if ((options.onError ?? 'throw') === 'throw') throw error;
        skipped.push({ path: s.path, reason: (error as Error).message });
      }
      options.onProgress?.(++done, samples.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  return {
    ok: ok.filter((s): s is S => s !== null),
    skipped: skipped.sort((a, b) => a.path.localeCompare(b.path)),
  };
}

/** Counts per class, for reports. */
export function classCounts(folder: ImageFolder): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(folder.classes.map((c) => [c, 0]));
  for (const s of folder.samples) counts[folder.classes[s.label] as string]! += 1;
  return counts;
}
