import { open, readFile } from 'node:fs/promises';
import { check, MedimgError } from '../util/errors.js';
import { type DicomMetadata, decodeDicomFrame, isDicom, parseDicom } from './dicom.node.js';

/** Modality values of a DICOM image, as {@link readDicom} returns them. */
export interface DicomImage {
  /**
   * Modality values (stored values after Rescale Slope/Intercept, e.g. Hounsfield units; no
   * window, MONOCHROME1 not inverted), `frames x rows x columns x channels`, frame-major.
   * Colour (YBR) is converted to RGB. Float32: integers are exact up to 2^24.
   */
  data: Float32Array;
  rows: number;
  columns: number;
  /** Frames in `data`: all of the file's, or 1 when `frame` was given. */
  frames: number;
  /** 1 for MONOCHROME1/2, 3 for colour. */
  channels: 1 | 3;
  /** The file's Photometric Interpretation, e.g. `MONOCHROME1` (invert it for display). */
  photometric: string;
  metadata: DicomMetadata;
}

/**
 * True when the file starts with the DICOM preamble (`DICM` at byte 128); reads 132 bytes.
 *
 * @example
 * if (await isDicomFile('export/IM0001')) console.log((await readDicom('export/IM0001')).metadata.modality);
 */
export async function isDicomFile(path: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const head = new Uint8Array(132);
    const { bytesRead } = await handle.read(head, 0, 132, 0);
    return bytesRead === 132 && isDicom(head);
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}

async function readBytes(
  op: string,
  input: string | Uint8Array,
): Promise<{ bytes: Uint8Array; label: string }> {
  if (typeof input !== 'string') return { bytes: input, label: '<buffer>' };
  try {
    return { bytes: await readFile(input), label: input };
  } catch (error) {
    throw new MedimgError(
      op,
      `cannot read ${input}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/**
 * Reads a DICOM file (or buffer) to its modality values: Rescale Slope/Intercept applied, no
 * window, so that you can window yourself (see `windowImage` / the `Window` transform). All
 * frames, or one with `frame`. Native, deflated, RLE, JPEG (8-bit baseline/extended, lossless),
 * JPEG-LS and JPEG 2000 pixel data are decoded; errors name the file and the problem.
 *
 * @example
 * const ct = await readDicom('CT_small.dcm');
 * console.log(ct.metadata.modality, ct.rows, ct.columns, Math.min(...ct.data)); // 'CT' 128 128 -1024...
 * const image = tf.tensor3d(ct.data, [ct.rows, ct.columns, ct.channels]);
 */
export async function readDicom(
  input: string | Uint8Array,
  options: { frame?: number } = {},
): Promise<DicomImage> {
  const { bytes, label } = await readBytes('readDicom', input);
  check(bytes.length > 0, 'readDicom', `${label} is empty (0 bytes)`);
  const dcm = await parseDicom(bytes, label);
  const m = dcm.metadata;
  const frames =
    options.frame === undefined ? Array.from({ length: m.numberOfFrames }, (_, i) => i) : [options.frame];
  const decoded = [];
  for (const f of frames) decoded.push(await decodeDicomFrame(dcm, f));
  const first = decoded[0]!;
  let data = first.data;
  if (decoded.length > 1) {
    data = new Float32Array(first.data.length * decoded.length);
    decoded.forEach((d, i) => data.set(d.data, i * first.data.length));
  }
  return {
    data,
    rows: m.rows,
    columns: m.columns,
    frames: frames.length,
    channels: first.channels,
    photometric: m.photometricInterpretation,
    metadata: m,
  };
}

/** Counts of DICOM header values over a set of files, for dataset inspection. */
export interface DicomSummary {
  /** DICOM files found (by preamble or `.dcm`/`.dicom` name). */
  files: number;
  modality: Record<string, number>;
  /** `"<bits stored>/<bits allocated>"`, with ` signed` for Pixel Representation 1. */
  bits: Record<string, number>;
  photometric: Record<string, number>;
  /** Keyed by transfer syntax name, with ` (unsupported)` where it cannot be decoded. */
  transferSyntax: Record<string, number>;
  /** `"<columns>x<rows>"`, with `x<frames>` for multi-frame files. */
  sizes: Record<string, number>;
  /** Files that look like DICOM but whose header cannot be parsed. */
  unreadable: { path: string; reason: string }[];
}

/**
 * Summarises the DICOM headers of `paths` (other files are ignored): modality, bits,
 * photometric interpretation, transfer syntax and size counts. Reads the files, decodes no
 * pixels, so files with truncated or undecodable pixel data are still counted.
 *
 * @example
 * const s = await summarizeDicom(folder.samples.map((x) => x.path));
 * for (const line of formatDicomSummary(s)) console.log(line);
 */
export async function summarizeDicom(
  paths: readonly string[],
  options: { concurrency?: number } = {},
): Promise<DicomSummary> {
  const summary: DicomSummary = {
    files: 0,
    modality: {},
    bits: {},
    photometric: {},
    transferSyntax: {},
    sizes: {},
    unreadable: [],
  };
  const count = (table: Record<string, number>, key: string) => {
    table[key] = (table[key] ?? 0) + 1;
  };
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++] as string;
      const named = /\.(dcm|dicom)$/i.test(path);
      if (!named && !(await isDicomFile(path))) continue;
      summary.files++;
      try {
        const { bytes } = await readBytes('summarizeDicom', path);
        const { metadata: m, syntax } = await parseDicom(bytes, path, { headerOnly: true });
        count(summary.modality, m.modality ?? '(none)');
        count(
          summary.bits,
          `${m.bitsStored}/${m.bitsAllocated}${m.pixelRepresentation === 1 ? ' signed' : ''}`,
        );
        count(summary.photometric, m.photometricInterpretation);
        count(summary.sizes, `${m.columns}x${m.rows}${m.numberOfFrames > 1 ? `x${m.numberOfFrames}` : ''}`);
        count(
          summary.transferSyntax,
          `${syntax.name}${syntax.encoding === 'unsupported' ? ' (unsupported)' : ''}`,
        );
      } catch (error) {
        summary.unreadable.push({ path, reason: (error as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  summary.unreadable.sort((a, b) => a.path.localeCompare(b.path));
  return summary;
}

/**
 * Lines for a CLI report of {@link summarizeDicom}; none when there are no DICOM files.
 *
 * @example
 * console.log(formatDicomSummary(await summarizeDicom(paths)).join('\n'));
 */
export function formatDicomSummary(summary: DicomSummary): string[] {
  if (summary.files === 0) return [];
  const table = (t: Record<string, number>) =>
    Object.entries(t)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
  return [
    `DICOM files: ${summary.files}`,
    `  modality: ${table(summary.modality)}`,
    `  bits stored/allocated: ${table(summary.bits)}`,
    `  photometric interpretation: ${table(summary.photometric)}`,
    `  transfer syntax: ${table(summary.transferSyntax)}`,
    `  sizes: ${table(summary.sizes)}`,
    ...(summary.unreadable.length ? [`  unreadable headers: ${summary.unreadable.length}`] : []),
    ...summary.unreadable.slice(0, 20).map((u) => `    ${u.path}: ${u.reason}`),
  ];
}
