/**
 * Decoders of the compressed DICOM transfer syntaxes, each loaded with a dynamic import on first
 * use (the wasm codecs take ~100 ms to instantiate; importing the library loads none of them):
 *
 * - JPEG Baseline / Extended 8-bit: `@cornerstonejs/codec-libjpeg-turbo-8bit` (wasm)
 * - JPEG Lossless (Process 14): `jpeg-lossless-decoder-js` (JavaScript)
 * - JPEG-LS: `@cornerstonejs/codec-charls` (wasm)
 * - JPEG 2000: `@cornerstonejs/codec-openjpeg` (wasm)
 */
import { check, MedimgError } from '../util/errors.js';
import { type DicomMetadata, storedValues, type TransferSyntax } from './dicom.node.js';

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}

/** The shape shared by the Emscripten decoders of @cornerstonejs/codec-*. */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  getInterleaveMode?(): number;
  delete(): void;
}

type WasmModule = Record<string, new () => WasmDecoder>;
type Factory = (options?: Record<string, unknown>) => Promise<WasmModule>;

const modules = new Map<string, Promise<WasmModule>>();

/** Loads (once) an Emscripten codec module; its console output is silenced. */
function loadWasm(name: string, load: () => Promise<{ default: unknown }>): Promise<WasmModule> {
  let mod = modules.get(name);
  if (!mod) {
    const quiet = () => {};
    mod = load().then((m) => (m.default as Factory)({ print: quiet, printErr: quiet }));
    mod.catch(() => modules.delete(name));
    modules.set(name, mod);
  }
  return mod;
}

/** Output of a compressed decoder, before Rescale. */
export interface CompressedFrame {
  /** Stored values, interleaved by sample. */
  values: Float32Array;
  /** The decoder returned RGB (it undid the JPEG YCbCr or JPEG 2000 ICT/RCT transform). */
  colorConverted: boolean;
}

/** What the header segments of a JPEG stream say: precision, component ids, colour markers. */
export interface JpegHeader {
  /** Start-of-frame marker (0xc0 baseline, 0xc1 extended, 0xc3 lossless, ...). */
  marker: number;
  precision: number;
  componentIds: number[];
  jfif: boolean;
  adobe: boolean;
}

/** Reads a JPEG stream's markers up to its start-of-frame; null when there is none. */
export function jpegHeader(data: Uint8Array): JpegHeader | null {
  let p = 2;
  let jfif = false;
  let adobe = false;
  while (p + 4 <= data.length) {
    if (data[p] !== 0xff) return null;
    const marker = data[p + 1] as number;
    if (marker === 0xff) {
      p++;
      continue;
    }
    const length = ((data[p + 2] as number) << 8) | (data[p + 3] as number);
    // As libjpeg: a JFIF APP0 or Adobe APP14 segment counts only when long enough and labelled.
    const id = String.fromCharCode(...data.subarray(p + 4, p + 9));
    if (marker === 0xe0 && length >= 14 && id === 'JFIF\0') jfif = true;
    if (marker === 0xee && length >= 14 && id === 'Adobe') adobe = true;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const count = data[p + 9] ?? 0;
      const componentIds = Array.from({ length: count }, (_, i) => data[p + 10 + 3 * i] as number);
      return { marker, precision: data[p + 4] as number, componentIds, jfif, adobe };
    }
    p += 2 + length;
  }
  return null;
}

/**
 * DICOM's RGB photometric means a JPEG without colour transform, but a stream without JFIF or
 * Adobe markers makes libjpeg assume YCbCr (unless its component ids are R, G, B). Inserting an
 * Adobe APP14 segment with transform 0 after SOI makes it decode RGB as stored. Streams with
 * ids 1, 2, 3 (the JFIF convention) are left alone: some encoders write YCbCr and label it RGB.
 */
function withoutColorTransform(data: Uint8Array, header: JpegHeader): Uint8Array {
  const ids = header.componentIds.join(',');
  if (
    header.jfif ||
    header.adobe ||
    header.componentIds.length !== 3 ||
    ids === '1,2,3' ||
    ids === '82,71,66'
  )
    return data;
  const app14 = [0xff, 0xee, 0, 14, 0x41, 0x64, 0x6f, 0x62, 0x65, 0, 100, 0, 0, 0, 0, 0];
  const out = new Uint8Array(data.length + app14.length);
  out.set(data.subarray(0, 2));
  out.set(app14, 2);
  out.set(data.subarray(2), 2 + app14.length);
  return out;
}

async function runWasm(
  mod: WasmModule,
  className: string,
  data: Uint8Array,
): Promise<{ info: FrameInfo; decoded: Uint8Array; interleave: number | undefined }> {
  const Decoder = mod[className];
  if (!Decoder) throw new Error(`codec has no ${className}`);
  const decoder = new Decoder();
  try {
    decoder.getEncodedBuffer(data.length).set(data);
    decoder.decode();
    const info = decoder.getFrameInfo();
    // Copy out of the wasm heap before the decoder is deleted.
    const decoded = new Uint8Array(decoder.getDecodedBuffer());
    return { info, decoded, interleave: decoder.getInterleaveMode?.() };
  } finally {
    decoder.delete();
  }
}

function samplesOf(decoded: Uint8Array, bitsPerSample: number, signed: boolean): ArrayLike<number> {
  if (bitsPerSample <= 8) {
    return signed ? new Int8Array(decoded.buffer, decoded.byteOffset, decoded.length) : decoded;
  }
  const copy = decoded.byteOffset % 2 === 0 ? decoded : decoded.slice();
  const n = copy.length >> 1;
  return signed
    ? new Int16Array(copy.buffer, copy.byteOffset, n)
    : new Uint16Array(copy.buffer, copy.byteOffset, n);
}

function planarToInterleaved(values: Float32Array, pixels: number, spp: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let s = 0; s < spp; s++)
    for (let i = 0; i < pixels; i++) out[i * spp + s] = values[s * pixels + i] as number;
  return out;
}

/**
 * Decodes one compressed frame with the codec of its transfer syntax and checks the result
 * against the header (size, samples). Errors name the file.
 */
export async function decodeCompressed(
  syntax: TransferSyntax,
  data: Uint8Array,
  m: DicomMetadata,
  label: string,
): Promise<CompressedFrame> {
  const op = 'readDicom';
  const fail = (error: unknown): never => {
    const detail = error instanceof Error ? error.message : `decoder error ${String(error)}`;
    throw new MedimgError(op, `${label}: the ${syntax.name} pixel data could not be decoded (${detail})`);
  };
  let info: FrameInfo;
  let samples: ArrayLike<number>;
  let colorConverted = false;
  let planar = false;
  switch (syntax.encoding) {
    case 'jpeg': {
      const sof = jpegHeader(data);
      check(sof !== null, op, `${label}: the JPEG frame has no start-of-frame marker (corrupt or truncated)`);
      if (sof.precision > 8) {
        throw new MedimgError(
          op,
          `${label}: ${sof.precision}-bit JPEG (Process 4) is not supported; only 8-bit JPEG Baseline/Extended is decoded`,
        );
      }
      const mod = await loadWasm(
        'libjpeg',
        () => import('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'),
      );
      const rgb = m.photometricInterpretation === 'RGB' ? withoutColorTransform(data, sof) : data;
      const out = await runWasm(mod, 'JPEGDecoder', rgb).catch(fail);
      info = out.info;
      samples = out.decoded;
      colorConverted = true;
      break;
    }
    case 'jpeg-lossless': {
      const { Decoder } = await import('jpeg-lossless-decoder-js');
      let decoded: Uint8Array | Uint16Array;
      const decoder = new Decoder();
      try {
        const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer;
        decoded = decoder.decode(buffer, 0, buffer.byteLength, m.bitsAllocated > 8 ? 2 : 1);
      } catch (error) {
        fail(error);
      }
      info = {
        width: decoder.xDim,
        height: decoder.yDim,
        bitsPerSample: decoder.precision ?? m.bitsStored,
        componentCount: decoder.numComp,
      };
      samples = decoded!;
      break;
    }
    case 'jpeg-ls': {
      const mod = await loadWasm('charls', () => import('@cornerstonejs/codec-charls/decodewasmjs'));
      const out = await runWasm(mod, 'JpegLSDecoder', data).catch(fail);
      info = out.info;
      samples = samplesOf(out.decoded, info.bitsPerSample, m.pixelRepresentation === 1);
      planar = info.componentCount > 1 && out.interleave === 0;
      break;
    }
    case 'jpeg2000': {
      const mod = await loadWasm('openjpeg', () => import('@cornerstonejs/codec-openjpeg/decodewasmjs'));
      const out = await runWasm(mod, 'J2KDecoder', data).catch(fail);
      info = out.info;
      samples = samplesOf(out.decoded, info.bitsPerSample, info.isSigned === true);
      colorConverted = m.photometricInterpretation === 'YBR_ICT' || m.photometricInterpretation === 'YBR_RCT';
      break;
    }
    default:
      throw new MedimgError(op, `${label}: no decoder for ${syntax.name}`);
  }
  check(
    info.width > 0 && info.height > 0,
    op,
    `${label}: the ${syntax.name} pixel data could not be decoded (the decoder returned an empty image; corrupt stream?)`,
  );
  check(
    info.width === m.columns && info.height === m.rows && info.componentCount === m.samplesPerPixel,
    op,
    () =>
      `${label}: the ${syntax.name} frame is ${info.width}x${info.height} with ${info.componentCount} component(s) but the header says ${m.columns}x${m.rows} with ${m.samplesPerPixel}`,
  );
  const n = m.rows * m.columns * m.samplesPerPixel;
  check(
    samples.length >= n,
    op,
    `${label}: the ${syntax.name} frame decoded to too few samples (truncated?)`,
  );
  const signedContainer =
    syntax.encoding === 'jpeg2000' ? info.isSigned === true : m.pixelRepresentation === 1;
  let values = storedValues(
    samples.length === n ? samples : Array.prototype.slice.call(samples, 0, n),
    m,
    info.bitsPerSample,
    signedContainer,
  );
  if (planar) values = planarToInterleaved(values, m.rows * m.columns, m.samplesPerPixel);
  return { values, colorConverted };
}
