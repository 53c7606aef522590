/**
 * DICOM Part 10 parsing and pixel decoding from bytes (no file system: the reading lives in
 * `dicom-file.ts`). Compressed transfer syntaxes are decoded by wasm/JS codecs that are loaded
 * on first use (see `dicom-codecs.ts`), so importing this module loads none of them.
 */
import { check, MedimgError } from '../util/errors.js';

/** How the pixel data of a transfer syntax is encoded, and so which decoder reads it. */
export type DicomEncoding =
  | 'native'
  | 'encapsulated-native'
  | 'deflate'
  | 'rle'
  | 'jpeg'
  | 'jpeg-lossless'
  | 'jpeg-ls'
  | 'jpeg2000'
  | 'unsupported';

/** A DICOM transfer syntax and whether this library decodes it. */
export interface TransferSyntax {
  uid: string;
  name: string;
  encoding: DicomEncoding;
  /** The npm package that decodes it, when not this library itself. */
  decoder?: string;
  /** Why an unsupported syntax is not decoded. */
  reason?: string;
}

const LIBJPEG = '@cornerstonejs/codec-libjpeg-turbo-8bit';
const LOSSLESS = 'jpeg-lossless-decoder-js';
const CHARLS = '@cornerstonejs/codec-charls';
const OPENJPEG = '@cornerstonejs/codec-openjpeg';

const SYNTAXES: TransferSyntax[] = [
  { uid: '1.2.840.10008.1.2', name: 'Implicit VR Little Endian', encoding: 'native' },
  { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian', encoding: 'native' },
  {
    uid: '1.2.840.10008.1.2.1.98',
    name: 'Encapsulated Uncompressed Explicit VR Little Endian',
    encoding: 'encapsulated-native',
  },
  { uid: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', encoding: 'deflate' },
  { uid: '1.2.840.10008.1.2.2', name: 'Explicit VR Big Endian', encoding: 'native' },
  { uid: '1.2.840.10008.1.2.4.50', name: 'JPEG Baseline (Process 1)', encoding: 'jpeg', decoder: LIBJPEG },
  {
    uid: '1.2.840.10008.1.2.4.51',
    name: 'JPEG Extended (Process 2 & 4)',
    encoding: 'jpeg',
    decoder: LIBJPEG,
    reason: 'only 8-bit (Process 2) streams are decoded; 12-bit (Process 4) is not',
  },
  {
    uid: '1.2.840.10008.1.2.4.57',
    name: 'JPEG Lossless, Non-Hierarchical (Process 14)',
    encoding: 'jpeg-lossless',
    decoder: LOSSLESS,
  },
  {
    uid: '1.2.840.10008.1.2.4.70',
    name: 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, SV1)',
    encoding: 'jpeg-lossless',
    decoder: LOSSLESS,
  },
  { uid: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless', encoding: 'jpeg-ls', decoder: CHARLS },
  {
    uid: '1.2.840.10008.1.2.4.81',
    name: 'JPEG-LS Lossy (Near-Lossless)',
    encoding: 'jpeg-ls',
    decoder: CHARLS,
  },
  {
    uid: '1.2.840.10008.1.2.4.90',
    name: 'JPEG 2000 (Lossless Only)',
    encoding: 'jpeg2000',
    decoder: OPENJPEG,
  },
  { uid: '1.2.840.10008.1.2.4.91', name: 'JPEG 2000', encoding: 'jpeg2000', decoder: OPENJPEG },
  { uid: '1.2.840.10008.1.2.5', name: 'RLE Lossless', encoding: 'rle' },
  ...unsupported('JPEG 2000 Part 2 Multi-component', ['1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93']),
  ...unsupported('JPIP referenced pixel data', ['1.2.840.10008.1.2.4.94', '1.2.840.10008.1.2.4.95']),
  ...unsupported(
    'MPEG-2 / MPEG-4 / HEVC video',
    ['100', '100.1', '101', '101.1', '102', '102.1', '103', '103.1', '104', '104.1', '105', '105.1', '106']
      .concat(['106.1', '107', '108'])
      .map((s) => `1.2.840.10008.1.2.4.${s}`),
  ),
  ...unsupported('JPEG XL', [
    '1.2.840.10008.1.2.4.110',
    '1.2.840.10008.1.2.4.111',
    '1.2.840.10008.1.2.4.112',
  ]),
  ...unsupported('High-Throughput JPEG 2000', [
    '1.2.840.10008.1.2.4.201',
    '1.2.840.10008.1.2.4.202',
    '1.2.840.10008.1.2.4.203',
  ]),
  ...unsupported('SMPTE ST 2110 video', [
    '1.2.840.10008.1.2.7.1',
    '1.2.840.10008.1.2.7.2',
    '1.2.840.10008.1.2.7.3',
  ]),
];

function unsupported(name: string, uids: string[]): TransferSyntax[] {
  return uids.map((uid) => ({ uid, name, encoding: 'unsupported', reason: `${name} is not supported` }));
}

/**
 * Every transfer syntax this library knows, with the package that decodes it or the reason it
 * is refused. A transfer syntax missing here is refused as unknown.
 */
export const DICOM_TRANSFER_SYNTAXES: readonly TransferSyntax[] = SYNTAXES;

/**
 * Looks up a transfer syntax UID; unknown UIDs come back as unsupported.
 *
 * @example
 * transferSyntax('1.2.840.10008.1.2.4.80'); // { name: 'JPEG-LS Lossless', encoding: 'jpeg-ls', decoder: '@cornerstonejs/codec-charls', ... }
 */
export function transferSyntax(uid: string): TransferSyntax {
  return (
    SYNTAXES.find((s) => s.uid === uid) ?? {
      uid,
      name: uid,
      encoding: 'unsupported',
      reason: `unknown transfer syntax ${uid}`,
    }
  );
}

/** Header values of a DICOM image that matter for decoding and for dataset inspection. */
export interface DicomMetadata {
  transferSyntaxUID: string;
  transferSyntax: string;
  sopClassUID?: string;
  modality?: string;
  manufacturer?: string;
  bodyPartExamined?: string;
  seriesDescription?: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  /** (0028,0004), e.g. `MONOCHROME2`, `MONOCHROME1`, `RGB`, `YBR_FULL_422`. */
  photometricInterpretation: string;
  /** 0: pixels interleaved (RGBRGB...), 1: planes (RRR...GGG...BBB...). */
  planarConfiguration: number;
  numberOfFrames: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 signed (two's complement). */
  pixelRepresentation: number;
  /** Rescale Slope; 1 when absent. */
  rescaleSlope: number;
  /** Rescale Intercept; 0 when absent. */
  rescaleIntercept: number;
  rescaleType?: string;
  /** Window Center values (a file may offer several windows). */
  windowCenter: number[];
  windowWidth: number[];
  voiLutFunction?: string;
  /** Row and column spacing in mm. */
  pixelSpacing?: number[];
  sliceThickness?: number;
  /** A Modality LUT Sequence is present (it is not applied; Rescale Slope/Intercept are). */
  hasModalityLutSequence: boolean;
  /** A VOI LUT Sequence is present (it is not applied; windows are). */
  hasVoiLutSequence: boolean;
}

interface Element {
  vr: string;
  offset: number;
  length: number;
}

interface Fragment {
  offset: number;
  length: number;
}

/** A parsed DICOM file: its header elements and where its pixel data lies. */
export interface DicomFile {
  /** The file name (or `<buffer>`), used in every error. */
  label: string;
  bytes: Uint8Array;
  littleEndian: boolean;
  syntax: TransferSyntax;
  metadata: DicomMetadata;
  /** Native pixel data location, or encapsulated fragments with the basic offset table. */
  pixels:
    | { kind: 'native'; offset: number; length: number }
    | { kind: 'encapsulated'; fragments: Fragment[]; offsets: number[]; extendedOffsets?: number[] }
    | null;
}

const PIXEL_DATA = 0x7fe00010;
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQUENCE_END = 0xfffee0dd;
const SHARED_GROUPS = 0x52009229;
const EXTENDED_OFFSETS = 0x7fe00001;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** VRs of the elements read, for implicit-VR files. */
const DICTIONARY = new Map<number, string>([
  [0x00020010, 'UI'],
  [0x00080016, 'UI'],
  [0x00080060, 'CS'],
  [0x00080070, 'LO'],
  [0x0008103e, 'LO'],
  [0x00180015, 'CS'],
  [0x00180050, 'DS'],
  [0x00280002, 'US'],
  [0x00280004, 'CS'],
  [0x00280006, 'US'],
  [0x00280008, 'IS'],
  [0x00280010, 'US'],
  [0x00280011, 'US'],
  [0x00280030, 'DS'],
  [0x00280100, 'US'],
  [0x00280101, 'US'],
  [0x00280102, 'US'],
  [0x00280103, 'US'],
  [0x00281050, 'DS'],
  [0x00281051, 'DS'],
  [0x00281052, 'DS'],
  [0x00281053, 'DS'],
  [0x00281054, 'LO'],
  [0x00281056, 'CS'],
  [0x00283000, 'SQ'],
  [0x00283010, 'SQ'],
  [0x7fe00001, 'OV'],
  [0x7fe00010, 'OW'],
]);

const tagName = (tag: number) =>
  `(${(tag >>> 16).toString(16).padStart(4, '0').toUpperCase()},${(tag & 0xffff).toString(16).padStart(4, '0').toUpperCase()})`;

/**
 * True when the bytes carry the DICOM Part 10 preamble: `DICM` at byte 128.
 *
 * @example
 * if (isDicom(new Uint8Array(await file.arrayBuffer()))) console.log('DICOM');
 */
export function isDicom(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 &&
    bytes[128] === 0x44 &&
    bytes[129] === 0x49 &&
    bytes[130] === 0x43 &&
    bytes[131] === 0x4d
  );
}

/** Explicit VR: two upper-case letters after the tag. */
const looksExplicit = (bytes: Uint8Array, pos: number) =>
  pos + 6 <= bytes.length &&
  (bytes[pos + 4] as number) >= 0x41 &&
  (bytes[pos + 4] as number) <= 0x5a &&
  (bytes[pos + 5] as number) >= 0x41 &&
  (bytes[pos + 5] as number) <= 0x5a;

class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly label: string,
    public little: boolean,
    public explicit: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(pos: number, n: number, what: string): void {
    if (pos + n > this.bytes.length) {
      throw new MedimgError(
        'readDicom',
        `${this.label} is truncated: ${what} needs ${n} bytes at offset ${pos} but the file ends at ${this.bytes.length}`,
      );
    }
  }
  u16(pos: number): number {
    return this.view.getUint16(pos, this.little);
  }
  u32(pos: number): number {
    return this.view.getUint32(pos, this.little);
  }
  tag(pos: number): number {
    this.need(pos, 4, 'an element tag');
    return ((this.u16(pos) << 16) | this.u16(pos + 2)) >>> 0;
  }
  /** Reads one element header at `pos`: tag, VR, value offset and length (0xffffffff: undefined). */
  header(pos: number): { tag: number; vr: string; offset: number; length: number } {
    const tag = this.tag(pos);
    if (tag === ITEM || tag === ITEM_END || tag === SEQUENCE_END) {
      this.need(pos, 8, `item ${tagName(tag)}`);
      return { tag, vr: '', offset: pos + 8, length: this.u32(pos + 4) };
    }
    if (this.explicit) {
      this.need(pos, 8, `element ${tagName(tag)}`);
      const vr = String.fromCharCode(this.bytes[pos + 4] as number, this.bytes[pos + 5] as number);
      if (LONG_VRS.has(vr)) {
        this.need(pos, 12, `element ${tagName(tag)}`);
        return { tag, vr, offset: pos + 12, length: this.u32(pos + 8) };
      }
      return { tag, vr, offset: pos + 8, length: this.u16(pos + 6) };
    }
    this.need(pos, 8, `element ${tagName(tag)}`);
    return { tag, vr: DICTIONARY.get(tag) ?? 'UN', offset: pos + 8, length: this.u32(pos + 4) };
  }
}

/**
 * Walks a dataset from `pos` to `end` (or to an item delimiter when `end` is undefined),
 * recording top-level elements in `into`, and returns the position after it.
 */
function walk(
  r: Reader,
  pos: number,
  end: number | undefined,
  into: Map<number, Element> | null,
  nested: Map<number, Element>,
  onPixelData?: (h: { vr: string; offset: number; length: number }) => number,
): number {
  const limit = end ?? r.bytes.length;
  while (pos < limit) {
    const h = r.header(pos);
    if (h.tag === ITEM_END || h.tag === SEQUENCE_END) {
      if (end === undefined) return h.offset;
      pos = h.offset;
      continue;
    }
    if (h.tag === PIXEL_DATA && into && onPixelData) {
      pos = onPixelData(h);
      continue;
    }
    if (h.tag === PIXEL_DATA && h.length === 0xffffffff) {
      pos = skipFragments(r, h.offset); // encapsulated pixel data nested in a sequence (icon image)
      continue;
    }
    if (h.vr === 'SQ' || h.length === 0xffffffff) {
      // An undefined-length UN holds implicit little-endian items (PS3.5 6.2.2).
      const saved = { little: r.little, explicit: r.explicit };
      if (h.vr === 'UN') Object.assign(r, { little: true, explicit: false });
      const keep = h.tag === SHARED_GROUPS || into === null ? nested : null;
      pos = walkSequence(r, h.offset, h.length === 0xffffffff ? undefined : h.offset + h.length, keep);
      Object.assign(r, saved);
      if (into && (h.tag === 0x00283000 || h.tag === 0x00283010))
        into.set(h.tag, { vr: 'SQ', offset: h.offset, length: 1 });
      continue;
    }
    if (h.length === 0xffffffff) {
      throw new MedimgError('readDicom', `${r.label}: element ${tagName(h.tag)} has an undefined length`);
    }
    r.need(h.offset, h.length, `element ${tagName(h.tag)} (${h.length} bytes)`);
    const target = into ?? nested;
    if (!target.has(h.tag)) target.set(h.tag, { vr: h.vr, offset: h.offset, length: h.length });
    pos = h.offset + h.length;
  }
  return pos;
}

/** Walks the items of a sequence; elements inside go to `keep` (first occurrence) when given. */
function walkSequence(
  r: Reader,
  pos: number,
  end: number | undefined,
  keep: Map<number, Element> | null,
): number {
  const scratch = new Map<number, Element>();
  while (end === undefined || pos < end) {
    const h = r.header(pos);
    if (h.tag === SEQUENCE_END) return h.offset;
    if (h.tag !== ITEM) {
      throw new MedimgError(
        'readDicom',
        `${r.label}: expected a sequence item at offset ${pos}, found ${tagName(h.tag)} (corrupt file?)`,
      );
    }
    if (h.length === 0xffffffff) pos = walk(r, h.offset, undefined, null, keep ?? scratch);
    else {
      r.need(h.offset, h.length, 'a sequence item');
      walk(r, h.offset, h.offset + h.length, null, keep ?? scratch);
      pos = h.offset + h.length;
    }
    if (!keep) scratch.clear();
  }
  return pos;
}

/** Skips the items of encapsulated pixel data up to and past its sequence delimiter. */
function skipFragments(r: Reader, pos: number): number {
  for (;;) {
    const h = r.header(pos);
    if (h.tag === SEQUENCE_END) return h.offset;
    check(
      h.tag === ITEM,
      'readDicom',
      `${r.label}: unexpected ${tagName(h.tag)} inside encapsulated pixel data`,
    );
    r.need(h.offset, h.length, 'a pixel data fragment');
    pos = h.offset + h.length;
  }
}

function text(r: Reader, e: Element | undefined): string | undefined {
  if (!e) return undefined;
  let s = '';
  for (let i = 0; i < e.length; i++) s += String.fromCharCode(r.bytes[e.offset + i] as number);
  return s.replace(/[\0 ]+$/, '').trim();
}

function numbers(r: Reader, e: Element | undefined): number[] {
  if (!e || e.length === 0) return [];
  switch (e.vr) {
    case 'US':
      return Array.from({ length: e.length >> 1 }, (_, i) => r.u16(e.offset + 2 * i));
    case 'SS':
      return Array.from({ length: e.length >> 1 }, (_, i) => r.view.getInt16(e.offset + 2 * i, r.little));
    case 'UL':
      return Array.from({ length: e.length >> 2 }, (_, i) => r.u32(e.offset + 4 * i));
    case 'FD':
      return Array.from({ length: e.length >> 3 }, (_, i) => r.view.getFloat64(e.offset + 8 * i, r.little));
    default:
      return (text(r, e) ?? '')
        .split('\\')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map(Number)
        .filter(Number.isFinite);
  }
}

/**
 * Parses a DICOM Part 10 file (or a bare dataset without preamble, as some `.dcm` files are):
 * file meta, explicit/implicit VR, little/big endian, deflated datasets, sequences of defined and
 * undefined length, native and encapsulated pixel data. Throws a {@link MedimgError} naming
 * `label` for anything truncated or malformed. With `headerOnly`, stops at the Pixel Data (its
 * `pixels` are then null): enough for header reports, even of files with truncated pixels.
 *
 * @example
 * const dcm = await parseDicom(new Uint8Array(await file.arrayBuffer()), file.name);
 * console.log(dcm.metadata.modality, dcm.syntax.name);
 */
export async function parseDicom(
  bytes: Uint8Array,
  label = '<buffer>',
  options: { headerOnly?: boolean } = {},
): Promise<DicomFile> {
  const op = 'readDicom';
  let pos: number;
  let syntaxUid: string | undefined;
  if (isDicom(bytes)) {
    pos = 132;
    const meta = new Reader(bytes, label, true, true);
    while (pos + 8 <= bytes.length && meta.u16(pos) === 0x0002) {
      const h = meta.header(pos);
      meta.need(h.offset, h.length, `file meta element ${tagName(h.tag)}`);
      if (h.tag === 0x00020010) syntaxUid = text(meta, { vr: 'UI', offset: h.offset, length: h.length });
      pos = h.offset + h.length;
    }
  } else {
    // No preamble: accept a bare dataset that starts with a group 0002 or 0008 element.
    const group = bytes.length >= 8 ? bytes[0]! | (bytes[1]! << 8) : -1;
    check(
      group === 0x0002 || group === 0x0008,
      op,
      () => `${label} is not a DICOM file (no 'DICM' marker at byte 128 and no DICOM dataset at its start)`,
    );
    pos = 0;
    if (group === 0x0002) {
      const meta = new Reader(bytes, label, true, looksExplicit(bytes, 0));
      while (pos + 8 <= bytes.length && meta.u16(pos) === 0x0002) {
        const h = meta.header(pos);
        meta.need(h.offset, h.length, `file meta element ${tagName(h.tag)}`);
        if (h.tag === 0x00020010) syntaxUid = text(meta, { vr: 'UI', offset: h.offset, length: h.length });
        pos = h.offset + h.length;
      }
    }
  }
  syntaxUid ??= looksExplicit(bytes, pos) ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2';
  const syntax = transferSyntax(syntaxUid);
  if (syntax.encoding === 'deflate') {
    const inflated = await inflateRaw(bytes.subarray(pos), label);
    const joined = new Uint8Array(pos + inflated.length);
    joined.set(bytes.subarray(0, pos));
    joined.set(inflated, pos);
    bytes = joined;
  }
  // Some writers store an implicit-VR dataset under an explicit-VR syntax (and vice versa):
  // trust the bytes of the first element, as pydicom does.
  const explicit = pos + 6 <= bytes.length ? looksExplicit(bytes, pos) : syntaxUid !== '1.2.840.10008.1.2';
  const r = new Reader(bytes, label, syntaxUid !== '1.2.840.10008.1.2.2', explicit);
  const elements = new Map<number, Element>();
  const nested = new Map<number, Element>();
  let pixels: DicomFile['pixels'] = null;
  walk(r, pos, undefined, elements, nested, (h) => {
    if (options.headerOnly) return bytes.length; // stop at the pixel data
    if (h.length !== 0xffffffff) {
      if (h.offset + h.length > bytes.length) {
        throw new MedimgError(
          op,
          `${label} is truncated: Pixel Data ${tagName(PIXEL_DATA)} declares ${h.length} bytes but only ${bytes.length - h.offset} remain`,
        );
      }
      pixels = { kind: 'native', offset: h.offset, length: h.length };
      return h.offset + h.length;
    }
    const fragments: Fragment[] = [];
    let offsets: number[] = [];
    let p = h.offset;
    let first = true;
    for (;;) {
      if (p + 8 > bytes.length) {
        throw new MedimgError(op, `${label} is truncated inside the encapsulated Pixel Data (offset ${p})`);
      }
      const item = r.header(p);
      if (item.tag === SEQUENCE_END) {
        p = item.offset;
        break;
      }
      if (item.tag !== ITEM) {
        throw new MedimgError(
          op,
          `${label}: unexpected ${tagName(item.tag)} inside the encapsulated Pixel Data (corrupt file?)`,
        );
      }
      if (item.offset + item.length > bytes.length) {
        throw new MedimgError(
          op,
          `${label} is truncated: a Pixel Data fragment declares ${item.length} bytes but only ${bytes.length - item.offset} remain`,
        );
      }
      if (first) offsets = Array.from({ length: item.length >> 2 }, (_, i) => r.u32(item.offset + 4 * i));
      else fragments.push({ offset: item.offset, length: item.length });
      first = false;
      p = item.offset + item.length;
    }
    pixels = { kind: 'encapsulated', fragments, offsets };
    return p;
  });
  const get = (tag: number) => elements.get(tag) ?? nested.get(tag);
  const num = (tag: number, fallback: number) => numbers(r, get(tag))[0] ?? fallback;
  const str = (tag: number) => text(r, get(tag)) || undefined;
  const photometric = str(0x00280004) ?? 'MONOCHROME2';
  const bitsAllocated = num(0x00280100, 0);
  const bitsStored = num(0x00280101, bitsAllocated);
  const metadata: DicomMetadata = {
    transferSyntaxUID: syntaxUid,
    transferSyntax: syntax.name,
    rows: num(0x00280010, 0),
    columns: num(0x00280011, 0),
    samplesPerPixel: num(0x00280002, 1),
    photometricInterpretation: photometric,
    planarConfiguration: num(0x00280006, 0),
    numberOfFrames: Math.max(1, Math.round(num(0x00280008, 1))),
    bitsAllocated,
    bitsStored,
    highBit: num(0x00280102, bitsStored - 1),
    pixelRepresentation: num(0x00280103, 0),
    rescaleSlope: num(0x00281053, 1),
    rescaleIntercept: num(0x00281052, 0),
    windowCenter: numbers(r, get(0x00281050)),
    windowWidth: numbers(r, get(0x00281051)),
    hasModalityLutSequence: elements.has(0x00283000),
    hasVoiLutSequence: elements.has(0x00283010),
  };
  const optional: [keyof DicomMetadata, string | undefined][] = [
    ['sopClassUID', str(0x00080016)],
    ['modality', str(0x00080060)],
    ['manufacturer', str(0x00080070)],
    ['bodyPartExamined', str(0x00180015)],
    ['seriesDescription', str(0x0008103e)],
    ['rescaleType', str(0x00281054)],
    ['voiLutFunction', str(0x00281056)],
  ];
  for (const [key, value] of optional) if (value !== undefined) Object.assign(metadata, { [key]: value });
  const spacing = numbers(r, get(0x00280030));
  if (spacing.length === 2) metadata.pixelSpacing = spacing;
  const thickness = numbers(r, get(0x00180050))[0];
  if (thickness !== undefined) metadata.sliceThickness = thickness;
  const file: DicomFile = { label, bytes, littleEndian: r.little, syntax, metadata, pixels };
  const ext = elements.get(EXTENDED_OFFSETS);
  const px = file.pixels as DicomFile['pixels'];
  if (ext && px?.kind === 'encapsulated') {
    px.extendedOffsets = Array.from({ length: ext.length >> 3 }, (_, i) =>
      Number(r.view.getBigUint64(ext.offset + 8 * i, true)),
    );
  }
  return file;
}

async function inflateRaw(bytes: Uint8Array, label: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
      .stream()
      .pipeThrough(new DecompressionStream('deflate-raw'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new MedimgError(
      'readDicom',
      `${label}: the deflated dataset cannot be inflated (${(error as Error).message})`,
    );
  }
}

/** Decoded pixels of one frame: modality values (Rescale applied), interleaved channels. */
export interface DicomFrame {
  data: Float32Array;
  rows: number;
  columns: number;
  /** 1 for MONOCHROME1/2, 3 for colour (always returned as RGB). */
  channels: 1 | 3;
}

/** Checks what is needed to decode pixels, naming the file and the problem. */
export function checkDecodable(file: DicomFile): void {
  const { label, metadata: m, syntax } = file;
  const op = 'readDicom';
  check(
    file.pixels !== null,
    op,
    `${label} has no Pixel Data (7FE0,0010) (${m.modality ?? 'no'} modality; not an image?)`,
  );
  if (syntax.encoding === 'unsupported') {
    throw new MedimgError(
      op,
      `${label} uses the transfer syntax ${syntax.name} (${syntax.uid}), which is not supported: ${syntax.reason}. Supported: ${SYNTAXES.filter(
        (s) => s.encoding !== 'unsupported',
      )
        .map((s) => s.name)
        .join('; ')}`,
    );
  }
  check(m.rows > 0 && m.columns > 0, op, `${label} has no Rows/Columns (0028,0010/0011)`);
  check(
    [1, 8, 16, 32].includes(m.bitsAllocated),
    op,
    `${label} has Bits Allocated ${m.bitsAllocated}; 1, 8, 16 and 32 are supported`,
  );
  check(
    m.bitsStored >= 1 && m.bitsStored <= m.bitsAllocated,
    op,
    `${label} has Bits Stored ${m.bitsStored} with Bits Allocated ${m.bitsAllocated}`,
  );
  const p = m.photometricInterpretation;
  check(
    (m.samplesPerPixel === 1 && (p === 'MONOCHROME1' || p === 'MONOCHROME2')) ||
      (m.samplesPerPixel === 3 && ['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT'].includes(p)),
    op,
    () =>
      `${label} has Photometric Interpretation ${p} with ${m.samplesPerPixel} sample(s) per pixel; supported: MONOCHROME1, MONOCHROME2 (1 sample), RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT (3 samples)${p === 'PALETTE COLOR' ? ' (PALETTE COLOR lookup tables are not applied)' : ''}`,
  );
}

/** The encoded bytes of one frame of encapsulated pixel data. */
export function encapsulatedFrame(file: DicomFile, frame: number): Uint8Array {
  const px = file.pixels;
  if (px?.kind !== 'encapsulated')
    throw new MedimgError('readDicom', `${file.label}: pixel data is not encapsulated`);
  const frames = file.metadata.numberOfFrames;
  const { fragments } = px;
  const { bytes } = file;
  check(fragments.length > 0, 'readDicom', `${file.label}: the encapsulated Pixel Data has no fragments`);
  const join = (list: Fragment[]) => {
    if (list.length === 1) return bytes.subarray(list[0]!.offset, list[0]!.offset + list[0]!.length);
    const out = new Uint8Array(list.reduce((a, f) => a + f.length, 0));
    let o = 0;
    for (const f of list) {
      out.set(bytes.subarray(f.offset, f.offset + f.length), o);
      o += f.length;
    }
    return out;
  };
  if (frames === 1) return join(fragments);
  const offsets = px.extendedOffsets?.length === frames ? px.extendedOffsets : px.offsets;
  if (offsets.length === frames) {
    // Offsets count from the first fragment's item tag (8 bytes before its value).
    const base = fragments[0]!.offset - 8;
    const start = offsets[frame] as number;
    const stop = frame + 1 < frames ? (offsets[frame + 1] as number) : Number.POSITIVE_INFINITY;
    return join(fragments.filter((f) => f.offset - 8 - base >= start && f.offset - 8 - base < stop));
  }
  if (fragments.length === frames) return join([fragments[frame]!]);
  // No offset table: frames start at fragments that begin with a JPEG SOI or a J2K SOC marker.
  const starts = fragments
    .map((f, i) =>
      bytes[f.offset] === 0xff && (bytes[f.offset + 1] === 0xd8 || bytes[f.offset + 1] === 0x4f) ? i : -1,
    )
    .filter((i) => i >= 0);
  check(
    starts.length === frames,
    'readDicom',
    `${file.label}: cannot split ${fragments.length} pixel data fragments into ${frames} frames (no offset table)`,
  );
  return join(fragments.slice(starts[frame], starts[frame + 1] ?? fragments.length));
}

/**
 * Stored values of one frame as integers (sign-extended by Pixel Representation and Bits
 * Stored), interleaved by sample. `raw` holds the frame in the file's byte order.
 */
function nativeValues(file: DicomFile, raw: Uint8Array, little: boolean, planar: boolean): Float32Array {
  const m = file.metadata;
  const n = m.rows * m.columns * m.samplesPerPixel;
  const out = new Float32Array(n);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const bits = m.bitsAllocated;
  if (bits === 1) {
    for (let i = 0; i < n; i++) out[i] = ((raw[i >> 3] as number) >> (i & 7)) & 1;
    return out;
  }
  const shift = Math.max(0, m.highBit + 1 - m.bitsStored);
  const stored = m.bitsStored;
  const mask = stored >= 32 ? 0xffffffff : 2 ** stored - 1;
  const signed = m.pixelRepresentation === 1;
  const spp = m.samplesPerPixel;
  const pixelsPerPlane = m.rows * m.columns;
  for (let i = 0; i < n; i++) {
    let v =
      bits === 8
        ? (raw[i] as number)
        : bits === 16
          ? view.getUint16(2 * i, little)
          : view.getUint32(4 * i, little);
    if (shift) v = Math.floor(v / 2 ** shift);
    v = stored >= 32 ? v : v % (mask + 1);
    if (signed && v >= 2 ** (stored - 1)) v -= 2 ** stored;
    // Planar (RRR..GGG..BBB..) to interleaved.
    const at = planar && spp > 1 ? (i % pixelsPerPlane) * spp + Math.floor(i / pixelsPerPlane) : i;
    out[at] = v;
  }
  return out;
}

/** Bytes per frame of native pixel data (1-bit frames are packed, so counted in bits). */
function frameBits(m: DicomMetadata): number {
  return m.rows * m.columns * m.samplesPerPixel * m.bitsAllocated;
}

/**
 * Decodes RLE Lossless (DICOM PS3.5 Annex G): a 64-byte header of segment offsets, then one
 * PackBits-coded segment per byte plane (most significant byte first, sample by sample).
 * Returns the frame as native little-endian bytes, planar by sample.
 */
export function decodeRle(data: Uint8Array, m: DicomMetadata, label = '<buffer>'): Uint8Array {
  const op = 'readDicom';
  check(data.length >= 64, op, `${label}: RLE frame shorter than its 64-byte header`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const segments = view.getUint32(0, true);
  const bytesPerSample = m.bitsAllocated / 8;
  const expected = bytesPerSample * m.samplesPerPixel;
  check(
    segments === expected,
    op,
    `${label}: RLE frame has ${segments} segments, expected ${expected} (Bits Allocated ${m.bitsAllocated} x ${m.samplesPerPixel} samples)`,
  );
  const pixels = m.rows * m.columns;
  const out = new Uint8Array(pixels * expected);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : data.length;
    check(
      start >= 64 && start <= end && end <= data.length,
      op,
      `${label}: RLE segment ${s} is out of bounds`,
    );
    const sample = Math.floor(s / bytesPerSample);
    const byte = bytesPerSample - 1 - (s % bytesPerSample); // segments are MSB first; output is little-endian
    const base = sample * pixels * bytesPerSample;
    let p = start;
    let o = 0;
    while (p < end && o < pixels) {
      const n = data[p++] as number;
      if (n < 128) {
        for (let k = 0; k <= n && o < pixels && p < end; k++)
          out[base + o++ * bytesPerSample + byte] = data[p++] as number;
      } else if (n > 128) {
        const v = data[p++] as number;
        for (let k = 0; k < 257 - n && o < pixels; k++) out[base + o++ * bytesPerSample + byte] = v;
      }
    }
    check(
      o === pixels,
      op,
      `${label}: RLE segment ${s} decodes to ${o} bytes, expected ${pixels} (truncated?)`,
    );
  }
  return out;
}

/** YCbCr (full range, JPEG/JFIF) to RGB, rounded and clipped as pydicom's `convert_color_space`. */
function ybrToRgb(data: Float32Array): void {
  for (let i = 0; i < data.length; i += 3) {
    const y = data[i] as number;
    const cb = (data[i + 1] as number) - 128;
    const cr = (data[i + 2] as number) - 128;
    data[i] = Math.min(255, Math.max(0, Math.round(y + 1.402 * cr)));
    data[i + 1] = Math.min(255, Math.max(0, Math.round(y - 0.344136 * cb - 0.714136 * cr)));
    data[i + 2] = Math.min(255, Math.max(0, Math.round(y + 1.772 * cb)));
  }
}

/** YBR_FULL_422 native data: Y1 Y2 Cb Cr per pixel pair, expanded to Y Cb Cr per pixel. */
function expand422(raw: Uint8Array, m: DicomMetadata): Uint8Array {
  const out = new Uint8Array(m.rows * m.columns * 3);
  const perRow = m.columns;
  let p = 0;
  for (let y = 0; y < m.rows; y++) {
    for (let x = 0; x < perRow; x += 2) {
      const y1 = raw[p++] as number;
      const y2 = raw[p++] as number;
      const cb = raw[p++] as number;
      const cr = raw[p++] as number;
      const o = (y * perRow + x) * 3;
      out.set([y1, cb, cr], o);
      if (x + 1 < perRow) out.set([y2, cb, cr], o + 3);
    }
  }
  return out;
}

/**
 * Decodes one frame to modality values: stored values with Rescale Slope/Intercept applied
 * (no window), colour as interleaved RGB. Compressed frames load their codec on first use.
 *
 * @example
 * const dcm = await parseDicom(bytes, 'CT_small.dcm');
 * const hu = await decodeDicomFrame(dcm, 0); // Hounsfield units
 */
export async function decodeDicomFrame(file: DicomFile, frame = 0): Promise<DicomFrame> {
  const op = 'readDicom';
  checkDecodable(file);
  const { label, metadata: m, syntax } = file;
  check(
    Number.isInteger(frame) && frame >= 0 && frame < m.numberOfFrames,
    op,
    `${label}: frame ${frame} is out of range; the file has ${m.numberOfFrames} frame(s)`,
  );
  const px = file.pixels!;
  let values: Float32Array;
  let isYbr = m.photometricInterpretation === 'YBR_FULL' || m.photometricInterpretation === 'YBR_FULL_422';
  if (px.kind === 'native') {
    check(
      syntax.encoding === 'native' || syntax.encoding === 'deflate',
      op,
      `${label}: ${syntax.name} pixel data must be encapsulated`,
    );
    const ybr422 = m.photometricInterpretation === 'YBR_FULL_422' && m.bitsAllocated === 8;
    const bits = ybr422 ? m.rows * m.columns * 16 : frameBits(m);
    const startBit = frame * bits;
    const needed = Math.ceil((startBit + bits) / 8);
    if (needed > px.length) {
      throw new MedimgError(
        op,
        `${label} is truncated or inconsistent: frame ${frame} needs Pixel Data bytes up to ${needed} but it holds ${px.length} (${m.rows}x${m.columns}, ${m.samplesPerPixel} sample(s), ${m.bitsAllocated} bits, ${m.numberOfFrames} frame(s))`,
      );
    }
    let raw: Uint8Array;
    if (m.bitsAllocated === 1 && startBit % 8 !== 0) {
      raw = new Uint8Array(Math.ceil(bits / 8));
      for (let i = 0; i < bits; i++) {
        const b = startBit + i;
        raw[i >> 3]! |= (((file.bytes[px.offset + (b >> 3)] as number) >> (b & 7)) & 1) << (i & 7);
      }
    } else {
      raw = file.bytes.subarray(px.offset + startBit / 8, px.offset + Math.ceil((startBit + bits) / 8));
    }
    if (ybr422) raw = expand422(raw, m);
    values = nativeValues(file, raw, file.littleEndian, m.planarConfiguration === 1 && m.samplesPerPixel > 1);
  } else {
    const encoded = encapsulatedFrame(file, frame);
    if (syntax.encoding === 'rle') {
      values = nativeValues(file, decodeRle(encoded, m, label), true, m.samplesPerPixel > 1);
    } else if (syntax.encoding === 'encapsulated-native') {
      check(encoded.length * 8 >= frameBits(m), op, `${label}: frame ${frame} is truncated`);
      values = nativeValues(file, encoded, true, m.planarConfiguration === 1);
    } else {
      const { decodeCompressed } = await import('./dicom-codecs.node.js');
      const decoded = await decodeCompressed(syntax, encoded, m, label);
      values = decoded.values;
      // Colour JPEG/J2K decoders return RGB (they undo the YCbCr or ICT/RCT transform themselves).
      if (decoded.colorConverted) isYbr = false;
    }
  }
  if (m.samplesPerPixel === 3) {
    if (isYbr) ybrToRgb(values);
    return { data: values, rows: m.rows, columns: m.columns, channels: 3 };
  }
  const { rescaleSlope: slope, rescaleIntercept: intercept } = m;
  if (slope !== 1 || intercept !== 0)
    for (let i = 0; i < values.length; i++) values[i] = values[i]! * slope + intercept;
  return { data: values, rows: m.rows, columns: m.columns, channels: 1 };
}

/**
 * Sign-extends/masks codec output (a 16- or 8-bit container) to the stored bits, as for native
 * data: used by the compressed decoders.
 */
export function storedValues(
  samples: ArrayLike<number>,
  m: DicomMetadata,
  precision: number,
  signedContainer: boolean,
): Float32Array {
  const out = new Float32Array(samples.length);
  const bits = Math.max(m.bitsStored, precision);
  const signed = m.pixelRepresentation === 1;
  for (let i = 0; i < samples.length; i++) {
    let v = samples[i] as number;
    if (signedContainer && v < 0) v += 2 ** Math.max(16, bits); // back to the unsigned bit pattern
    v = bits >= 32 ? v : v % 2 ** bits;
    if (signed && v >= 2 ** (bits - 1)) v -= 2 ** bits;
    out[i] = v;
  }
  return out;
}
