import {
  type Dataset,
  type DatasetListing,
  type ImageFolderOptions,
  type ManifestOptions,
  MedimgError,
  readDataset,
  SKIP_REASONS,
  type SkipReason,
  type SplitName,
} from '../node.js';
import { out } from './io.js';

/**
 * Lines that say what listing a dataset left out: one with the counts per reason, then, per
 * reason, the first few paths. None when nothing was left out.
 */
export function skippedLines(data: DatasetListing, first = 3): string[] {
  if (data.skipped.length === 0) return [];
  const counts = Object.entries(data.skippedCounts) as [SkipReason, number][];
  counts.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const lines = [
    `${data.root}: left out ${data.skipped.length} ${data.skipped.length === 1 ? 'entry' : 'entries'} (${counts.map(([r, n]) => `${r}: ${n}`).join(', ')})`,
  ];
  for (const [reason, n] of counts) {
    const entries = data.skipped.filter((s) => s.reason === reason).slice(0, first);
    lines.push(`  ${reason}: ${SKIP_REASONS[reason]}`);
    for (const s of entries) lines.push(`    ${s.path}${s.detail ? ` (${s.detail})` : ''}`);
    if (n > entries.length) lines.push(`    ... and ${n - entries.length} more`);
  }
  return lines;
}

/**
 * Reads a class-per-folder root or a `.csv` manifest and prints what was left out. With `rows`,
 * a manifest with a split column is cut to those rows (e.g. `evaluate` scores the test rows).
 */
export async function readData(
  path: string,
  options: ImageFolderOptions & ManifestOptions,
  rows?: SplitName,
): Promise<Dataset> {
  const data = await readDataset(path, options);
  for (const line of skippedLines(data)) out(line);
  if (!rows || !data.hasSplit) return data;
  const samples = data.samples.filter((s) => s.split === rows);
  if (samples.length === 0)
    throw new MedimgError('readManifest', `${path} has a split column but no '${rows}' rows`);
  out(`using the ${samples.length} '${rows}' rows of ${path} (its split column)`);
  return { ...data, samples };
}
