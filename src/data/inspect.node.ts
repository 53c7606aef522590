import { extname } from 'node:path';
import { decodePixels } from './decode.node.js';
import { isDicomFile } from './dicom-file.node.js';

/**
 * Odd files {@link inspectImages} names:
 * - `wrong-extension`: the bytes are another format than the name says (PNG data in a `.jpg`)
 * - `16-bit`: more than 8 bits per sample (16-bit PNG/TIFF; DICOM is not counted)
 * - `cmyk`: CMYK colour (print JPEGs); decoded to RGB, but the colours may be off
 * - `tiny`: under `tiny` pixels (default 32) on a side
 * - `huge`: over `huge` pixels (default 4096) on a side
 * - `unreadable`: the file cannot be decoded (empty, truncated, not an image, over the pixel limit)
 */
export type ImageIssue = 'wrong-extension' | '16-bit' | 'cmyk' | 'tiny' | 'huge' | 'unreadable';

export const IMAGE_ISSUES: readonly ImageIssue[] = [
  'unreadable',
  'wrong-extension',
  '16-bit',
  'cmyk',
  'tiny',
  'huge',
];

/** What {@link inspectImages} found. */
export interface ImageInspection {
  /** Files looked at (all of them). */
  files: number;
  /** Files whose header could be read. */
  read: number;
  /** Files decoded in full (0 with `decode: false`). */
  decoded: number;
  /** Counts per format as the bytes say (`jpeg`, `png`, `dicom`, ...). */
  formats: Record<string, number>;
  /** Counts per `WIDTHxHEIGHT` (images sharp reads; DICOM sizes come from `summarizeDicom`). */
  sizes: Record<string, number>;
  /** Counts per channel count and format, e.g. `3 (jpeg)`. */
  channels: Record<string, number>;
  /** The odd files of each kind, sorted by path, with what is odd about them. */
  issues: Record<ImageIssue, { path: string; detail: string }[]>;
}

/** The formats (as sharp names them) that a file extension promises. */
const EXPECTED_FORMAT: Record<string, string[]> = {
  '.jpg': ['jpeg'],
  '.jpeg': ['jpeg'],
  '.jpe': ['jpeg'],
  '.jfif': ['jpeg'],
  '.png': ['png'],
  '.tif': ['tiff'],
  '.tiff': ['tiff'],
  '.webp': ['webp'],
  '.gif': ['gif'],
  '.avif': ['heif'],
  '.heic': ['heif'],
  '.heif': ['heif'],
  '.svg': ['svg'],
  '.bmp': ['bmp'],
};

/**
 * Reads the header of every file (sharp's `metadata()`, which does not decode pixels) and, with
 * `decode` (default true), decodes each once at a tiny size to find truncated files; counts
 * formats, channels and sizes, and names the odd files (see {@link ImageIssue}). DICOM files
 * (`.dcm`/`.dicom`, or the `DICM` preamble) are decoded but not otherwise looked at here
 * (see `summarizeDicom`).
 *
 * @example
 * const folder = await imageFolder('Training');
 * const r = await inspectImages(folder.samples.map((s) => s.path));
 * console.log(r.issues['wrong-extension']); // [{ path: 'Training/notumor/Tr-no_1005.jpg', detail: 'png data in a .jpg file' }, ...]
 */
export async function inspectImages(
  paths: readonly string[],
  options: {
    decode?: boolean;
    concurrency?: number;
    tiny?: number;
    huge?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<ImageInspection> {
  const sharp = (await import('sharp')).default;
  const tiny = options.tiny ?? 32;
  const huge = options.huge ?? 4096;
  const decode = options.decode ?? true;
  const result: ImageInspection = {
    files: paths.length,
    read: 0,
    decoded: 0,
    formats: {},
    sizes: {},
    channels: {},
    issues: { unreadable: [], 'wrong-extension': [], '16-bit': [], cmyk: [], tiny: [], huge: [] },
  };
  const count = (table: Record<string, number>, key: string) => {
    table[key] = (table[key] ?? 0) + 1;
  };
  // The library's message without its prefix and the path (the report names the file).
  const problem = (path: string) => (error: unknown) =>
    (error as Error).message
      .replace(/^Error in \w+: /, '')
      .replace(`${path} is `, '')
      .replace(`${path} `, '');
  const check = async (path: string) => {
    const ext = extname(path).toLowerCase();
    if (ext === '.dcm' || ext === '.dicom' || (await isDicomFile(path))) {
      count(result.formats, 'dicom');
      result.read++;
      if (EXPECTED_FORMAT[ext])
        result.issues['wrong-extension'].push({ path, detail: `DICOM data in a ${ext} file` });
    } else {
      let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
      try {
        meta = await sharp(path, { limitInputPixels: false }).metadata();
      } catch (error) {
        // decodePixels says why in the library's words (empty, not an image, cannot read).
        const why = await decodePixels(path, { channels: 1, resize: { height: 8, width: 8 } }).then(
          () => (error as Error).message,
          problem(path),
        );
        result.issues.unreadable.push({ path, detail: why });
        return;
      }
      result.read++;
      const format = meta.format ?? 'unknown';
      count(result.formats, format);
      const { width = 0, height = 0 } = meta;
      count(result.sizes, `${width}x${height}`);
      count(result.channels, `${meta.channels} (${format})`);
      const expected = EXPECTED_FORMAT[ext];
      if (expected && !expected.includes(format))
        result.issues['wrong-extension'].push({ path, detail: `${format} data in a ${ext} file` });
      if (meta.depth && meta.depth !== 'uchar' && meta.depth !== 'char')
        result.issues['16-bit'].push({
          path,
          detail: `${meta.depth === 'ushort' || meta.depth === 'short' ? 16 : meta.depth} bits per sample (${format})`,
        });
      if (meta.space === 'cmyk') result.issues.cmyk.push({ path, detail: `CMYK ${format}` });
      if (Math.min(width, height) < tiny) result.issues.tiny.push({ path, detail: `${width}x${height}` });
      if (Math.max(width, height) > huge) result.issues.huge.push({ path, detail: `${width}x${height}` });
    }
    if (!decode) return;
    try {
      await decodePixels(path, { channels: 1, resize: { height: 8, width: 8, fit: 'fill' } });
      result.decoded++;
    } catch (error) {
      result.issues.unreadable.push({ path, detail: problem(path)(error) });
    }
  };
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < paths.length) {
      await check(paths[next++] as string);
      options.onProgress?.(++done, paths.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  for (const list of Object.values(result.issues))
    list.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return result;
}
