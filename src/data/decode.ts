import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import type { Sharp } from 'sharp';
import { check, MedimgError } from '../util/errors.js';

export interface DecodeOptions {
  /** 1 (gray) or 3 (RGB). */
  channels: 1 | 3;
  /** Refuse images with more pixels than this (decompression bombs). Default 64 megapixels. */
  maxPixels?: number;
  /**
   * Resize while decoding, with libvips's antialiased Lanczos filter: `'contain'` keeps the
   * aspect ratio and pads with black (letterbox), `'fill'` stretches, `'cover'` crops the centre.
   */
  resize?: { height: number; width: number; fit?: 'contain' | 'fill' | 'cover' };
}

/** Raw decoded pixels, 8-bit, `height * width * channels`. */
export interface DecodedPixels {
  data: Uint8Array;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Format sniffed from the bytes (e.g. `png` for a PNG named `.jpg`). */
  format: string;
}

const DEFAULT_MAX_PIXELS = 64e6;

/**
 * Decodes an image file or buffer to 8-bit pixels with sharp (libvips). The format is sniffed
 * from the bytes, not the file name; EXIF orientation is applied; 16-bit, CMYK, gray+alpha and
 * RGBA inputs are normalised to `channels`; truncated files and decompression bombs are refused
 * with an error that names the file.
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
  let img = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' }).rotate();
  if (meta.hasAlpha) img = img.flatten({ background: { r: 0, g: 0, b: 0 } });
  img = channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  if (options.resize) {
    const { height, width, fit = 'contain' } = options.resize;
    img = img.resize(width, height, { fit, background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: 'lanczos3' });
  }
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    out = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new MedimgError(
      op,
      `${label} could not be decoded (truncated or corrupt?): ${(error as Error).message}`,
    );
  }
  let data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  if (out.info.channels !== channels) data = fixChannels(data, out.info.channels, channels);
  return { data, height: out.info.height, width: out.info.width, channels, format: meta.format ?? 'unknown' };
}

function fixChannels(data: Uint8Array, from: number, to: 1 | 3): Uint8Array {
  const n = data.length / from;
  const out = new Uint8Array(n * to);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < to; c++) out[i * to + c] = data[i * from + Math.min(c, from - 1)] as number;
  }
  return out;
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
  return tf.tensor3d(Float32Array.from(p.data), [p.height, p.width, p.channels]);
}
