import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { check, MedimgError } from '../util/errors.js';
import { type DecodedPixels, type DecodeOptions, decodePixels } from './decode.node.js';
import { isDicomFile } from './dicom-file.node.js';
import type { SampleSource } from './loader.js';
import type { LabeledSample } from './split.js';

/** One file of a class-per-folder dataset. */
export interface FolderSample extends LabeledSample {
  path: string;
  label: number;
}

export interface ImageFolder {
  root: string;
  classes: string[];
  samples: FolderSample[];
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

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

/**
 * Lists a class-per-folder dataset (`root/<class>/<image>`, torchvision's `ImageFolder`):
 * classes are the sorted sub-folder names (or `classNames`, in that order), files are sorted
 * and filtered by extension and `exclude` globs (BUSI keeps `*_mask*.png` beside the images).
 * While `.dcm` is among the extensions, files without an extension (or with a numeric one, as
 * UID-named PACS exports) are kept when they start with the DICOM preamble (`DICM` at byte 128).
 * A missing root, a missing class folder, or a class with no images fails loudly.
 *
 * @example
 * const data = await imageFolder('busi/images', { exclude: ['*_mask*'] });
 */
export async function imageFolder(
  root: string,
  options: { extensions?: string[]; exclude?: string[]; classNames?: string[] } = {},
): Promise<ImageFolder> {
  const op = 'imageFolder';
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    throw new MedimgError(
      op,
      `cannot read folder ${root}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const folders = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const classes = options.classNames ?? folders;
  check(classes.length > 0, op, `${root} has no class sub-folders (expected root/<class>/<image>)`);
  for (const c of classes) check(folders.includes(c), op, `class folder ${join(root, c)} does not exist`);
  const extensions = (options.extensions ?? IMAGE_EXTENSIONS).map((e) =>
    (e.startsWith('.') ? e : `.${e}`).toLowerCase(),
  );
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const samples: FolderSample[] = [];
  for (const [label, c] of classes.entries()) {
    const dir = join(root, c);
    let files: string[];
    try {
      files = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
    } catch (error) {
      throw new MedimgError(
        op,
        `cannot read folder ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    const sniff = extensions.includes('.dcm');
    const kept: string[] = [];
    for (const f of files.sort()) {
      if (exclude.some((re) => re.test(f))) continue;
      const ext = extname(f).toLowerCase();
      if (extensions.includes(ext) || (sniff && maybeDicomName(ext) && (await isDicomFile(join(dir, f)))))
        kept.push(f);
    }
    check(kept.length > 0, op, `class folder ${dir} has no images with extensions ${extensions.join(', ')}`);
    for (const f of kept) samples.push({ path: join(dir, f), label });
  }
  return { root, classes: [...classes], samples };
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
  /** `'throw'` (default) stops at the first bad file, naming it; `'skip'` drops it and reports it. */
  onError?: 'throw' | 'skip';
  /** Keep decoded (and resized) pixels in memory after the first epoch. Default false. */
  cache?: boolean;
}

/**
 * A {@link SampleSource} over image files: decodes with sharp (DICOM with its codecs) on demand (so a whole dataset is
 * never held in memory unless `cache`), resizing while decoding when `resize` is given.
 * With `onError: 'skip'`, call {@link validateSamples} first to drop unreadable files up front.
 */
export function folderSource(
  samples: readonly FolderSample[],
  numClasses: number,
  options: FolderSourceOptions,
): SampleSource & { skipped: SkippedFile[]; samples: readonly FolderSample[] } {
  const cache = options.cache ? new Map<number, DecodedPixels>() : null;
  const skipped: SkippedFile[] = [];
  const toTensor = async (p: DecodedPixels) => {
    const tf = await import('@tensorflow/tfjs-core');
    return tf.tensor3d(Float32Array.from(p.data), [p.height, p.width, p.channels]) as tf.Tensor3D;
  };
  return {
    samples,
    skipped,
    length: samples.length,
    numClasses,
    label: (i) => (samples[i] as FolderSample).label,
    describe: (i) => (samples[i] as FolderSample).path,
    load: async (i): Promise<tf.Tensor3D> => {
      const hit = cache?.get(i);
      if (hit) return toTensor(hit);
      const p = await decodePixels((samples[i] as FolderSample).path, options);
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
  options: FolderSourceOptions & { concurrency?: number; onProgress?: (done: number, total: number) => void },
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
