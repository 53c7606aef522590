import sharp from 'sharp';
import { formatDicomSummary, summarizeDicom } from '../../data/dicom-file.node.js';
import { findDuplicates, findLeaks, imageFolder, validateSamples } from '../../node.js';
import { type Command, num, parse, str, UsageError } from '../args.js';
import { out } from '../io.js';

export const inspectDataCmd: Command = {
  name: 'inspect-data',
  summary: 'counts, sizes, unreadable files, duplicates and leaks of a dataset',
  usage: `Usage: medimg-classify inspect-data DIR [--against DIR] [--exclude GLOB] [--near BITS]

Prints class counts, image sizes and channels, unreadable files, DICOM modality, bits,
photometric interpretation and transfer syntax counts, exact (and --near) duplicates,
and with --against, images that also occur in another folder (leaks).`,
  run: async (argv) => {
    const { values, positionals } = parse(
      inspectDataCmd,
      argv,
      { against: { type: 'string' }, exclude: { type: 'string', multiple: true }, near: { type: 'string' } },
      true,
    );
    if (values.help) return out(inspectDataCmd.usage);
    if (positionals.length !== 1) throw new UsageError(`give exactly one DIR\n\n${inspectDataCmd.usage}`);
    const near =
      values.near === undefined ? undefined : num('near', values.near, 4, { integer: true, min: 0, max: 64 });
    const exclude = (values.exclude as string[] | undefined) ?? [];
    const folder = await imageFolder(positionals[0] as string, { exclude });
    out(`${folder.root}: ${folder.samples.length} images in ${folder.classes.length} classes`);
    for (const [i, c] of folder.classes.entries())
      out(`  ${c}: ${folder.samples.filter((s) => s.label === i).length}`);
    const sizes = new Map<string, number>();
    const channelCounts = new Map<string, number>();
    const { skipped } = await validateSamples(folder.samples, {
      channels: 1,
      onError: 'skip',
      onProgress: () => {},
    });
    for (const s of folder.samples.slice(0, 2000)) {
      try {
        const m = await sharp(s.path).metadata();
        sizes.set(`${m.width}x${m.height}`, (sizes.get(`${m.width}x${m.height}`) ?? 0) + 1);
        channelCounts.set(
          `${m.channels} (${m.format})`,
          (channelCounts.get(`${m.channels} (${m.format})`) ?? 0) + 1,
        );
      } catch {
        // reported as unreadable below
      }
    }
    out(`channels: ${[...channelCounts].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
    out(
      `sizes: ${sizes.size} distinct; most common ${[...sizes]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([k, v]) => `${k} (${v})`)
        .join(', ')}`,
    );
    out(`unreadable: ${skipped.length}`);
    for (const s of skipped) out(`  ${s.path}: ${s.reason}`);
    for (const line of formatDicomSummary(await summarizeDicom(folder.samples.map((s) => s.path)))) out(line);
    const dups = await findDuplicates(folder.samples, near === undefined ? {} : { near });
    out(
      `exact duplicate groups: ${dups.exact.length} (${dups.exact.reduce((a, g) => a + g.length, 0)} files)`,
    );
    for (const g of dups.exact.slice(0, 20)) out(`  ${g.map((s) => s.path).join('  ==  ')}`);
    if (near !== undefined) out(`near-duplicate groups (dHash <= ${near} bits): ${dups.near.length}`);
    const against = str(values.against);
    if (against) {
      const other = await imageFolder(against, { exclude });
      const b = await findDuplicates(other.samples);
      const leaks = findLeaks(dups.samples, b.samples);
      out(`leaks against ${against}: ${leaks.length}`);
      for (const l of leaks.slice(0, 20))
        out(`  ${l.sample.path}  ==  ${l.matches.map((m) => m.path).join(', ')}`);
    }
  },
};
