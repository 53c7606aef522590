import { formatDicomSummary, summarizeDicom } from '../../data/dicom-file.node.js';
import {
  findDuplicates,
  findLeaks,
  IMAGE_ISSUES,
  type ImageIssue,
  inspectImages,
  SPLIT_NAMES,
} from '../../node.js';
import { type Command, num, parse, str, UsageError } from '../args.js';
import { readData } from '../data.js';
import { out } from '../io.js';

const ISSUE_TEXT: Record<ImageIssue, string> = {
  unreadable: 'unreadable',
  'wrong-extension': 'wrong extension (the bytes are another format)',
  '16-bit': '16-bit (or deeper) samples',
  cmyk: 'CMYK colour',
  tiny: 'tiny (< 32 px on a side)',
  huge: 'huge (> 4096 px on a side)',
};

export const inspectDataCmd: Command = {
  name: 'inspect-data',
  summary: 'counts, sizes, odd and unreadable files, duplicates and leaks of a dataset',
  usage: `Usage: medimg-classify inspect-data DIR|CSV [--against DIR|CSV] [--exclude GLOB] [--near BITS]

Reads every file of a class-per-folder dataset or a CSV manifest (path,label[,split]) and
prints class counts, what was left out while listing (hidden files, OS litter, non-images),
formats, image sizes and channels, odd files (wrong extension such as PNG data in a .jpg,
16-bit, CMYK, tiny < 32 px, huge > 4096 px) and unreadable files with the first paths of each,
DICOM modality, bits, photometric interpretation and transfer syntax counts, exact (and
--near) duplicates, duplicates across a manifest's splits, and with --against, images that
also occur in another dataset (leaks).`,
  run: async (argv) => {
    const { values, positionals } = parse(
      inspectDataCmd,
      argv,
      { against: { type: 'string' }, exclude: { type: 'string', multiple: true }, near: { type: 'string' } },
      true,
    );
    if (values.help) return out(inspectDataCmd.usage);
    if (positionals.length !== 1)
      throw new UsageError(`give exactly one DIR or CSV\n\n${inspectDataCmd.usage}`);
    const near =
      values.near === undefined ? undefined : num('near', values.near, 4, { integer: true, min: 0, max: 64 });
    const exclude = (values.exclude as string[] | undefined) ?? [];
    const folder = await readData(positionals[0] as string, { exclude });
    out(`${folder.root}: ${folder.samples.length} images in ${folder.classes.length} classes`);
    for (const [i, c] of folder.classes.entries())
      out(`  ${c}: ${folder.samples.filter((s) => s.label === i).length}`);
    if (folder.hasSplit)
      for (const split of SPLIT_NAMES)
        out(`  ${split} rows: ${folder.samples.filter((s) => s.split === split).length}`);

    const tty = Boolean(process.stdout.isTTY);
    let shown = 0;
    const report = await inspectImages(
      folder.samples.map((s) => s.path),
      {
        onProgress: (done, total) => {
          if (tty && (done === total || Date.now() - shown > 200)) {
            shown = Date.now();
            process.stdout.write(`\rreading images: ${done}/${total}`);
          }
        },
      },
    );
    if (tty) process.stdout.write(`\r${''.padEnd(60)}\r`);
    out(
      `read ${report.files} files: ${report.read} headers, ${report.decoded} decoded, ${report.issues.unreadable.length} unreadable`,
    );
    const table = (t: Record<string, number>) =>
      Object.entries(t)
        .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
    out(`formats: ${table(report.formats)}`);
    out(`channels: ${table(report.channels)}`);
    const sizes = Object.entries(report.sizes).sort((a, b) => b[1] - a[1]);
    out(
      `sizes: ${sizes.length} distinct; most common ${sizes
        .slice(0, 5)
        .map(([k, v]) => `${k} (${v})`)
        .join(', ')}`,
    );
    const odd = IMAGE_ISSUES.filter((k) => k !== 'unreadable' && report.issues[k].length > 0);
    out(`odd files: ${odd.length ? odd.map((k) => `${k}: ${report.issues[k].length}`).join(', ') : 'none'}`);
    const first = (k: ImageIssue, max: number, indent: string) => {
      const list = report.issues[k];
      for (const f of list.slice(0, max)) out(`${indent}${f.path}: ${f.detail}`);
      if (list.length > max) out(`${indent}... and ${list.length - max} more`);
    };
    for (const k of odd) {
      out(`  ${ISSUE_TEXT[k]}: ${report.issues[k].length}`);
      first(k, 10, '    ');
    }
    out(`unreadable: ${report.issues.unreadable.length}`);
    first('unreadable', 20, '  ');

    for (const line of formatDicomSummary(await summarizeDicom(folder.samples.map((s) => s.path)))) out(line);
    const dups = await findDuplicates(folder.samples, near === undefined ? {} : { near });
    out(
      `exact duplicate groups: ${dups.exact.length} (${dups.exact.reduce((a, g) => a + g.length, 0)} files)`,
    );
    for (const g of dups.exact.slice(0, 20)) out(`  ${g.map((s) => s.path).join('  ==  ')}`);
    if (near !== undefined) out(`near-duplicate groups (dHash <= ${near} bits): ${dups.near.length}`);
    if (folder.hasSplit) {
      const rows = (split: string) => dups.samples.filter((s) => s.split === split);
      for (const [a, b] of [
        ['validation', 'train'],
        ['test', 'train'],
        ['test', 'validation'],
      ] as const) {
        const leaks = findLeaks(rows(a), rows(b));
        out(`${a} rows that duplicate ${b} rows: ${leaks.length}`);
        for (const l of leaks.slice(0, 10))
          out(`  ${l.sample.path}  ==  ${l.matches.map((m) => m.path).join(', ')}`);
      }
    }
    const against = str(values.against);
    if (against) {
      const other = await readData(against, { exclude });
      const b = await findDuplicates(other.samples);
      const leaks = findLeaks(dups.samples, b.samples);
      out(`leaks against ${against}: ${leaks.length}`);
      for (const l of leaks.slice(0, 20))
        out(`  ${l.sample.path}  ==  ${l.matches.map((m) => m.path).join(', ')}`);
    }
  },
};
