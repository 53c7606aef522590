import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Sharp } from 'sharp';
import { LUMA_WEIGHTS } from '../transforms/functional/grayscale.js';
import { letterbox } from '../transforms/functional/letterbox.js';
import { resize as resizeImage } from '../transforms/functional/resize.js';
import {
  checkImageWindow,
  type ImageWindow,
  minMaxWindow,
  type VoiFunction,
  type WindowOptions,
  windowFunction,
} from '../transforms/functional/window.js';
import { check, MedimgError } from '../util/errors.js';
import { decodeDicomFrame, isDicom, parseDicom } from './dicom.node.js';
import { pixelsTensor } from './pixels.js';

export interface DecodeOptions {
  /** 1 (gray) or 3 (RGB). */
  channels: 1 | 3;
  /** Refuse images with more pixels than this (decompression bombs). Default 64 megapixels. */
  maxPixels?: number;
  /**
   * Resize while decoding, with libvips's antialiased Lanczos filter: `'contain'` keeps the
   * aspect ratio and pads with black (letterbox), `'fill'` stretches, `'cover'` crops the centre.
   * (With `window: 'none'` the float values are resized bilinearly with tfjs instead.)
   */
  resize?: { height: number; width: number; fit?: 'contain' | 'fill' | 'cover' };
  /**
   * Intensity window for DICOM and 16-bit PNG/TIFF. `'auto'` (default): a DICOM file's first
   * Window Center/Width, else its min-max; PNG/TIFF are cut to 8 bits as before (v / 257).
   * `{ center, width }`: that window (in modality values, e.g. HU) to 0-255. `'minmax'`: the
   * image's own range to 0-255. `'none'`: no window, values as they are (Float32Array), for a
   * `Window` transform in the pipeline. MONOCHROME1 is inverted whenever a window is applied.
   */
  window?: ImageWindow;
  /** Frame of a multi-frame DICOM file. Default 0. */
  frame?: number;
}

/** Raw decoded pixels, `height * width * channels`: 8-bit, or float with `window: 'none'`. */
export interface DecodedPixels {
  data: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Format sniffed from the bytes (e.g. `png` for a PNG named `.jpg`, `dicom` for DICOM). */
  format: string;
}

const DEFAULT_MAX_PIXELS = 64e6;

/**
 * Decodes an image file or buffer to 8-bit pixels with sharp (libvips), or DICOM with this
 * library's parser and codecs. The format is sniffed from the bytes, not the file name (DICOM:
 * `DICM` at byte 128, or a `.dcm` name); EXIF orientation is applied; 16-bit, CMYK, gray+alpha
 * and RGBA inputs are normalised to `channels`; DICOM gets Rescale Slope/Intercept, a window
 * and MONOCHROME1 inversion (see {@link DecodeOptions.window}); truncated files and
 * decompression bombs are refused with an error that names the file.
 *
 * @example
 * const p = await decodePixels('scan.dcm', { channels: 1, window: { center: 40, width: 400 } });
 */
export async function decodePixels(
  input: string | Uint8Array,
  options: DecodeOptions,
): Promise<DecodedPixels> {
  const op = 'decodeImage';
  const label = typeof input === 'string' ? input : '<buffer>';
  const channels = options?.channels;
  check(channels === 1 || channels === 3, op, `channels must be 1 or 3, got ${String(channels)}`);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  let bytes: Uint8Array;
  try {
    bytes = typeof input === 'string' ? await readFile(input) : input;
  } catch (error) {
    throw new MedimgError(
      op,
      `cannot read ${label}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (bytes.length === 0) throw new MedimgError(op, `${label} is empty (0 bytes)`);
  const window = checkImageWindow(op, options.window ?? 'auto');
  const ext = typeof input === 'string' ? extname(input).toLowerCase() : '';
  if (isDicom(bytes) || ext === '.dcm' || ext === '.dicom') {
    return decodeDicomPixels(bytes, label, { ...options, channels, window }, maxPixels);
  }
  check(options.frame === undefined || options.frame === 0, op, `${label} is not DICOM: frame must be 0`);
  const sharp = (await import('sharp')).default;
  let meta: Awaited<ReturnType<Sharp['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw new MedimgError(op, `${label} is not a supported image (${(error as Error).message})`);
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) {
    throw new MedimgError(
      op,
      `${label} is ${meta.width}x${meta.height} = ${pixels} pixels, over the limit of ${maxPixels} (decompression-bomb guard; raise maxPixels if intended)`,
    );
  }
  // An explicit window keeps 16-bit images at 16 bits until the window maps them to 0-255.
  const deep = window !== 'auto' && meta.depth === 'ushort';
  let img = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' }).rotate();
  if (meta.hasAlpha) img = img.flatten({ background: { r: 0, g: 0, b: 0 } });
  if (deep) img = channels === 1 ? img.toColourspace('grey16') : img.toColourspace('rgb16');
  else img = channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  if (options.resize) {
    const { height, width, fit = 'contain' } = options.resize;
    img = img.resize(width, height, { fit, background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: 'lanczos3' });
  }
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    out = await img.raw({ depth: deep ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new MedimgError(
      op,
      `${label} could not be decoded (truncated or corrupt?): ${(error as Error).message}`,
    );
  }
  const format = meta.format ?? 'unknown';
  const { height, width } = out.info;
  if (deep) {
    const copy = out.data.byteOffset % 2 === 0 ? out.data : Buffer.from(out.data);
    let values: Uint16Array | Float32Array = new Uint16Array(copy.buffer, copy.byteOffset, copy.length / 2);
    if (out.info.channels !== channels)
      values = fixChannels(Float32Array.from(values), out.info.channels, channels);
    return { data: applyWindow(values, window, null, false), height, width, channels, format };
  }
  let data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  if (out.info.channels !== channels) data = fixChannels(data, out.info.channels, channels);
  if (window === 'auto') return { data, height, width, channels, format };
  return { data: applyWindow(data, window, null, false), height, width, channels, format };
}

function fixChannels<A extends Uint8Array | Float32Array>(data: A, from: number, to: 1 | 3): A {
  const n = data.length / from;
  const out = new (data.constructor as new (n: number) => A)(n * to);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < to; c++) out[i * to + c] = data[i * from + Math.min(c, from - 1)] as number;
  }
  return out;
}

/**
 * Maps values to 0-255 with `window` (`'auto'` uses `own`, else the min-max), rounded to 8 bits
 * and inverted for MONOCHROME1; `'none'` returns the values as float.
 */
function applyWindow(
  values: ArrayLike<number>,
  window: ImageWindow,
  own: WindowOptions | null,
  invert: boolean,
): Uint8Array | Float32Array {
  if (window === 'none') return Float32Array.from(values);
  let spec: WindowOptions;
  if (typeof window === 'object') spec = window;
  else if (window === 'auto' && own) spec = own;
  else {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    spec = values.length ? minMaxWindow(min, max) : { center: 0, width: 1 };
  }
  const f = windowFunction(spec);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Math.round(f(values[i] as number) * 255);
    out[i] = invert ? 255 - v : v;
  }
  return out;
}

const VOI_FUNCTIONS = ['LINEAR', 'LINEAR_EXACT', 'SIGMOID'];

async function decodeDicomPixels(
  bytes: Uint8Array,
  label: string,
  options: DecodeOptions & { window: ImageWindow },
  maxPixels: number,
): Promise<DecodedPixels> {
  const op = 'decodeImage';
  const dcm = await parseDicom(bytes, label);
  const m = dcm.metadata;
  if (m.rows * m.columns > maxPixels) {
    throw new MedimgError(
      op,
      `${label} is ${m.columns}x${m.rows} = ${m.rows * m.columns} pixels, over the limit of ${maxPixels} (decompression-bomb guard; raise maxPixels if intended)`,
    );
  }
  const frame = await decodeDicomFrame(dcm, options.frame ?? 0);
  let own: WindowOptions | null = null;
  const [center, windowWidth] = [m.windowCenter[0], m.windowWidth[0]];
  const fn = (m.voiLutFunction ?? 'LINEAR').toUpperCase();
  if (frame.channels === 3) {
    // Colour: 8-bit values as they are; deeper samples scaled from their stored range.
    own = minMaxWindow(0, m.bitsStored <= 8 ? 255 : 2 ** m.bitsStored - 1);
  } else if (
    center !== undefined &&
    windowWidth !== undefined &&
    windowWidth > 0 &&
    VOI_FUNCTIONS.includes(fn)
  ) {
    const width = fn === 'LINEAR' ? Math.max(1, windowWidth) : windowWidth;
    own = { center, width, voiFunction: fn as VoiFunction };
  }
  const invert = m.photometricInterpretation === 'MONOCHROME1';
  let data = applyWindow(frame.data, options.window, own, invert);
  if (frame.channels !== options.channels) data = convertChannels(data, frame.channels, options.channels);
  const size = options.resize ?? { height: m.rows, width: m.columns };
  if (options.resize) data = await resizeDecoded(data, m.rows, m.columns, options.channels, options.resize);
  return { data, height: size.height, width: size.width, channels: options.channels, format: 'dicom' };
}

/** Gray to RGB by repetition, RGB to gray with the luma weights of the `grayscale` transform. */
function convertChannels<A extends Uint8Array | Float32Array>(data: A, from: 1 | 3, to: 1 | 3): A {
  if (from === 1) return fixChannels(data, 1, to);
  const n = data.length / 3;
  const out = new (data.constructor as new (n: number) => A)(n);
  const [wr, wg, wb] = LUMA_WEIGHTS;
  for (let i = 0; i < n; i++)
    out[i] =
      (data[3 * i] as number) * wr + (data[3 * i + 1] as number) * wg + (data[3 * i + 2] as number) * wb;
  return out;
}

/** Resizes decoded pixels as the image path does: 8-bit with sharp (Lanczos), float with tfjs. */
async function resizeDecoded<A extends Uint8Array | Float32Array>(
  data: A,
  height: number,
  width: number,
  channels: 1 | 3,
  size: NonNullable<DecodeOptions['resize']>,
): Promise<A> {
  const fit = size.fit ?? 'contain';
  if (data instanceof Uint8Array) {
    const sharp = (await import('sharp')).default;
    const out = await sharp(data, { raw: { width, height, channels } })
      .resize(size.width, size.height, {
        fit,
        background: { r: 0, g: 0, b: 0, alpha: 1 },
        kernel: 'lanczos3',
      })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    let bytes = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
    if (out.info.channels !== channels) bytes = fixChannels(bytes, out.info.channels, channels);
    return bytes as A;
  }
  const resized = tf.tidy(() => {
    let image = tf.tensor3d(data, [height, width, channels]);
    if (fit === 'contain') return letterbox(image, { height: size.height, width: size.width });
    if (fit === 'cover') {
      const scale = Math.max(size.height / height, size.width / width);
      const h = Math.max(size.height, Math.round(height * scale));
      const w = Math.max(size.width, Math.round(width * scale));
      image = resizeImage(image, { height: h, width: w });
      const top = Math.floor((h - size.height) / 2);
      const left = Math.floor((w - size.width) / 2);
      return tf.slice(image, [top, left, 0], [size.height, size.width, channels]);
    }
    return resizeImage(image, { height: size.height, width: size.width });
  });
  const out = resized.dataSync() as Float32Array;
  resized.dispose();
  return Float32Array.from(out) as A;
}

/**
 * Decodes an image file or buffer into a float32 tensor `H x W x channels` with values 0-255,
 * the library's image convention. See {@link decodePixels} for what is normalised and refused.
 *
 * @example
 * const mri = await decodeImage('Tr-gl_0010.jpg', { channels: 1 });
 */
export async function decodeImage(input: string | Uint8Array, options: DecodeOptions): Promise<tf.Tensor3D> {
  const p = await decodePixels(input, options);
  return pixelsTensor(p.data, [p.height, p.width, p.channels]);
}
