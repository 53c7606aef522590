import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { check, MedimgError } from '../util/errors.js';
import {
  type DatasetListing,
  type FolderSample,
  globToRegExp,
  type ImageFolderOptions,
  imageFolder,
  type ListingSkip,
  summarizeSkipped,
} from './folder.node.js';

/** The parts of a dataset a manifest's `split` column can name. */
export type SplitName = 'train' | 'validation' | 'test';

export const SPLIT_NAMES: readonly SplitName[] = ['train', 'validation', 'test'];

/** A sample of a manifest (or a folder): path, label, and the manifest's split when it has one. */
export interface DatasetSample extends FolderSample {
  split?: SplitName;
}

/** What {@link readManifest} and {@link readDataset} return. */
export interface Dataset extends DatasetListing<DatasetSample> {
  /** The CSV file, for a manifest. */
  manifest?: string;
  /** True when every sample carries a `split` (the manifest has a split column). */
  hasSplit: boolean;
}

/** Options of {@link readManifest}. */
export interface ManifestOptions {
  /** The classes, in this order (default: the manifest's labels, sorted). */
  classNames?: string[];
  /** Globs (`*`, `?`) of rows to leave out, matched against the file name and the path as written. */
  exclude?: string[];
  /** Column names, if not `path`, `label` and `split` (matched case-insensitively). */
  columns?: { path?: string; label?: string; split?: string };
}

/** One record of a CSV file, with the line it starts on (1-based). */
export interface CsvRecord {
  fields: string[];
  line: number;
}

/**
 * Parses CSV text (RFC 4180): fields separated by commas, records by CRLF, LF or CR; a field in
 * double quotes may hold commas, line breaks and doubled quotes (`""`). A UTF-8 byte order mark
 * (Excel) is dropped, blank lines are skipped. An unterminated quote, or text after a closing
 * quote, throws an error naming `source` and the line.
 *
 * @example
 * parseCsv('path,label\r\n"a, b.png",x\r\n', 'm.csv'); // [{ fields: ['path', 'label'], line: 1 }, { fields: ['a, b.png', 'x'], line: 2 }]
 */
export function parseCsv(text: string, source = '<csv>'): CsvRecord[] {
  const op = 'readManifest';
  const records: CsvRecord[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const endOfRecord = () => {
    if (text[i] === '\r' && text[i + 1] === '\n') i += 2;
    else i += 1;
    line++;
  };
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    let quotedAny = false;
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        quotedAny = true;
        const opened = line;
        i++;
        for (;;) {
          if (i >= n)
            throw new MedimgError(
              op,
              `${source} line ${opened}: unterminated quote (a field opened with " never closes)`,
            );
          const c = text[i] as string;
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
            } else {
              i++;
              break;
            }
          } else {
            if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
            field += c;
            i++;
          }
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r')
          throw new MedimgError(
            op,
            `${source} line ${line}: unexpected ${JSON.stringify(text[i])} after a closing quote (quote a whole field, and double the quotes inside it)`,
          );
      } else {
        const from = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          if (text[i] === '"')
            throw new MedimgError(
              op,
              `${source} line ${line}: a quote inside an unquoted field (quote the whole field, and double the quotes inside it)`,
            );
          i++;
        }
        field = text.slice(from, i);
      }
      fields.push(field);
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (i < n) endOfRecord();
      break;
    }
    if (fields.length === 1 && (fields[0] as string).trim() === '' && !quotedAny) continue; // a blank line
    records.push({ fields, line: start });
  }
  return records;
}

const list = (items: string[], max = 5) =>
  `${items.slice(0, max).join('; ')}${items.length > max ? `; and ${items.length - max} more` : ''}`;

/**
 * Reads a CSV manifest, `path,label[,split]` with a header row (other columns are ignored), as
 * an alternative to a class-per-folder dataset. Relative paths are resolved against the CSV's
 * folder; classes are the sorted labels (or `classNames`); `split` values are `train`,
 * `validation` or `test`. Fields are trimmed; the file is parsed as RFC 4180 (quoted fields
 * with commas, line breaks and doubled quotes; CRLF or LF). Every listed file must exist.
 * Errors name the CSV, the line and the problem: a missing file, a missing column, an empty
 * path or label, an unknown split or label, a path listed twice, an empty manifest.
 *
 * @example
 * // manifest.csv:
 * // path,label,split
 * // images/001.png,benign,train
 * // images/002.png,malignant,validation
 * const data = await readManifest('study/manifest.csv');
 * console.log(data.classes, data.samples[0]); // ['benign', 'malignant'] { path: 'study/images/001.png', label: 0, split: 'train' }
 */
export async function readManifest(csvPath: string, options: ManifestOptions = {}): Promise<Dataset> {
  const op = 'readManifest';
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new MedimgError(op, `cannot read manifest ${csvPath}: ${code}`);
  }
  const expected = 'path,label[,split]';
  const records = parseCsv(text, csvPath);
  check(
    records.length > 0,
    op,
    `${csvPath} is empty: expected a header row (${expected}) and one row per image`,
  );
  const header = (records[0] as CsvRecord).fields.map((h) => h.trim().toLowerCase());
  const names = {
    path: (options.columns?.path ?? 'path').toLowerCase(),
    label: (options.columns?.label ?? 'label').toLowerCase(),
    split: (options.columns?.split ?? 'split').toLowerCase(),
  };
  for (const [i, h] of header.entries())
    check(
      !h || header.indexOf(h) === i,
      op,
      `${csvPath} line ${records[0]?.line}: column '${h}' appears twice in the header`,
    );
  const column = (name: string, required: boolean) => {
    const at = header.indexOf(name);
    check(
      at >= 0 || !required,
      op,
      `${csvPath} line ${records[0]?.line}: no '${name}' column in the header (found: ${header.join(', ')}); the header must name the columns ${expected}`,
    );
    return at;
  };
  const pathAt = column(names.path, true);
  const labelAt = column(names.label, true);
  const splitAt = column(names.split, false);
  const rows = records.slice(1);
  check(rows.length > 0, op, `${csvPath} has a header but no rows (one row per image: ${expected})`);

  const base = dirname(csvPath);
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const skipped: ListingSkip[] = [];
  const seen = new Map<string, number>();
  const parsed: { path: string; written: string; label: string; split?: SplitName; line: number }[] = [];
  for (const { fields, line } of rows) {
    const at = `${csvPath} line ${line}`;
    check(
      fields.length === header.length,
      op,
      `${at}: expected ${header.length} fields (${header.join(',')}), got ${fields.length}`,
    );
    const written = (fields[pathAt] as string).trim();
    const label = (fields[labelAt] as string).trim();
    check(written !== '', op, `${at}: empty path`);
    check(label !== '', op, `${at}: empty label for ${written}`);
    let split: SplitName | undefined;
    if (splitAt >= 0) {
      const value = (fields[splitAt] as string).trim();
      check(
        (SPLIT_NAMES as readonly string[]).includes(value.toLowerCase()),
        op,
        `${at}: unknown split '${value}' for ${written} (use ${SPLIT_NAMES.join(', ')})`,
      );
      split = value.toLowerCase() as SplitName;
    }
    const path = isAbsolute(written) ? written : join(base, written);
    if (exclude.some((re) => re.test(basename(written)) || re.test(written))) {
      skipped.push({ path, reason: 'excluded', detail: `line ${line}` });
      continue;
    }
    const first = seen.get(path);
    check(first === undefined, op, `${at}: ${written} is listed again (first on line ${first})`);
    seen.set(path, line);
    parsed.push({ path, written, label, line, ...(split ? { split } : {}) });
  }

  const labels = [...new Set(parsed.map((r) => r.label))].sort();
  const classes = options.classNames ?? labels;
  check(classes.length > 0, op, `${csvPath}: every row is excluded`);
  for (const r of parsed)
    check(
      classes.includes(r.label),
      op,
      `${csvPath} line ${r.line}: label '${r.label}' is not one of ${classes.join(', ')}`,
    );
  for (const c of classes)
    check(
      labels.includes(c),
      op,
      `${csvPath}: class '${c}' has no rows (labels found: ${labels.join(', ')})`,
    );

  // Every listed file must exist (a manifest lists files on purpose: none is skipped quietly).
  const missing: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < parsed.length) {
      const r = parsed[next++] as (typeof parsed)[number];
      let problem: string | undefined;
      try {
        const info = await stat(r.path);
        if (!info.isFile()) problem = 'not a file';
      } catch (error) {
        problem = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        // A manifest written on Windows: images\001.png
        if (r.written.includes('\\') && !isAbsolute(r.written)) {
          const alt = join(base, r.written.replace(/\\/g, '/'));
          if (
            await stat(alt).then(
              (i) => i.isFile(),
              () => false,
            )
          ) {
            r.path = alt;
            problem = undefined;
          }
        }
      }
      if (problem) missing.push(`line ${r.line}: ${r.written} (${r.path}: ${problem})`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  if (missing.length) {
    missing.sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]));
    throw new MedimgError(
      op,
      `${csvPath}: ${missing.length === 1 ? 'a listed file does not exist' : `${missing.length} listed files do not exist`} (paths are relative to the manifest's folder ${base}): ${list(missing)}`,
    );
  }
  const samples: DatasetSample[] = parsed.map((r) => ({
    path: r.path,
    label: classes.indexOf(r.label),
    ...(r.split ? { split: r.split } : {}),
  }));
  const skippedCounts = summarizeSkipped(skipped);
  return {
    root: csvPath,
    manifest: csvPath,
    classes: [...classes],
    samples,
    skipped,
    skippedCounts,
    hasSplit: splitAt >= 0,
  };
}

/**
 * Reads a dataset from a CSV manifest (a path ending in `.csv`, see {@link readManifest}) or a
 * class-per-folder root (see {@link imageFolder}), in the same shape.
 *
 * @example
 * const data = await readDataset(process.argv[2] ?? 'images', { exclude: ['*_mask*'] });
 * const train = data.hasSplit ? data.samples.filter((s) => s.split === 'train') : data.samples;
 */
export async function readDataset(
  pathOrCsv: string,
  options: ImageFolderOptions & ManifestOptions = {},
): Promise<Dataset> {
  if (/\.csv$/i.test(pathOrCsv)) return readManifest(pathOrCsv, options);
  const folder = await imageFolder(pathOrCsv, options);
  return { ...folder, hasSplit: false };
}
