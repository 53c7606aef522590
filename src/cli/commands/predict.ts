import { readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { isImageFile } from '../../data/folder.node.js';
import { describeTta, TTA_VIEWS } from '../../inference/tta.js';
import {
  BACKEND_NAMES,
  decodeImage,
  gradCam,
  loadClassifier,
  type Prediction,
  writeFileAtomic,
  writeGradCamPng,
} from '../../node.js';
import { type Command, ExitCode, num, parse, str, UsageError } from '../args.js';
import { backendFlags, err, out, startBackend, ttaFlag } from '../io.js';

export const predictCmd: Command = {
  name: 'predict',
  summary: 'classify image files, folders or globs with a saved classifier (CSV, Grad-CAM)',
  usage: `Usage: medimg-classify predict --model DIR INPUT... [options]

INPUT is an image file, a folder (every image below it, DICOM files without an extension too) or
a glob ('scans/**/*.png', quoted; the images it matches).
Prints the class and probabilities of each image, with a warning when the top class is normal
but an abnormal class is close. A classifier saved by train or demo applies the rules chosen on
its validation data: the temperature (calibrated probabilities), the threshold on P(not normal)
(the line says 'decided by threshold'), and the referral cut-off ('REFER' lines for images too
uncertain to trust). Files that cannot be read are reported and skipped; the exit code is then
1, after every other file was classified.

  --csv FILE               also write path, predicted class, per-class probabilities, a
                           possible-missed-finding flag and any error, one row per file
  --json                   print the results as JSON instead of lines
  --gradcam                write a Grad-CAM overlay PNG per image to --out, mirroring the inputs'
                           folders (scan.png gets scan.png-gradcam.png)
  --out DIR                Grad-CAM folder (default runs/predict)
  --batch-size N           images per forward pass (default 16)
  --tta N                  test-time augmentation from the classifier's training flips: 2 averages
                           each image and its flip, 4 both flips and their combination, 1 turns
                           it off (default: the classifier's saved setting, else 1)
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)
  --threads N              wasm threads`,
  run: (argv) => predictCommand(argv),
};

const isGlob = (s: string) => /[*?[]/.test(s);

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function walk(dir: string, into: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, into);
    else into.push(p);
  }
}

/** The images among `paths`, as `imageFolder` picks them (extension-less DICOM files too). */
async function images(paths: string[]): Promise<string[]> {
  const kept: string[] = [];
  // One at a time: thousands of extension-less files are thousands of opens.
  for (const p of paths) if (await isImageFile(p)) kept.push(p);
  return kept;
}

/** Files named by the inputs: files as given, images below folders, image glob matches; sorted, unique. */
export async function expandInputs(inputs: string[]): Promise<{ files: string[]; missing: string[] }> {
  const files: string[] = [];
  const missing: string[] = [];
  for (const input of inputs) {
    if (isGlob(input)) {
      const parts = input.split('/');
      const fixed = parts.findIndex((p) => isGlob(p));
      const base = parts.slice(0, fixed).join('/') || '.';
      const all: string[] = [];
      await walk(base, all).catch(() => {});
      const re = globToRegExp(input.replace(/^\.\//, ''));
      const hits = all.filter((f) => re.test(f.replace(/^\.\//, '')));
      const kept = await images(hits);
      if (!hits.length) missing.push(`${input} (no file matches)`);
      else if (!kept.length)
        missing.push(
          `${input} (${hits.length} file${hits.length > 1 ? 's match' : ' matches'}, none an image)`,
        );
      files.push(...kept);
      continue;
    }
    const info = await stat(input).catch(() => null);
    if (!info) missing.push(`${input} (no such file or folder)`);
    else if (info.isDirectory()) {
      const all: string[] = [];
      await walk(input, all);
      const kept = await images(all);
      if (!kept.length) missing.push(`${input} (a folder with no images)`);
      files.push(...kept);
    } else files.push(input);
  }
  return { files: [...new Set(files)], missing };
}

/** The deepest folder that holds every file: Grad-CAM names mirror the paths below it. */
function commonRoot(files: string[]): string {
  const dirs = files.map((f) => dirname(resolve(f)).split(sep));
  const first = dirs[0] ?? [];
  let n = first.length;
  for (const d of dirs) {
    let k = 0;
    while (k < n && d[k] === first[k]) k++;
    n = k;
  }
  return first.slice(0, n).join(sep) || sep;
}

const csvField = (v: string | number) => {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

async function predictCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    predictCmd,
    argv,
    {
      model: { type: 'string' },
      gradcam: { type: 'boolean' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      csv: { type: 'string' },
      'batch-size': { type: 'string' },
      tta: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
    },
    true,
  );
  if (values.help) return out(predictCmd.usage);
  const modelDir = str(values.model);
  if (!modelDir) throw new UsageError(`--model is required\n\n${predictCmd.usage}`);
  if (!positionals.length)
    throw new UsageError(`give at least one image, folder or glob\n\n${predictCmd.usage}`);
  const batchSize = num('batch-size', values['batch-size'], 16, { integer: true, min: 1 });
  const ttaGiven = ttaFlag(values.tta, TTA_VIEWS);
  const flags = backendFlags(values.backend, values.threads);
  await startBackend(flags);
  const clf = await loadClassifier(modelDir);
  const tta = ttaGiven ?? clf.meta.tta ?? 1;
  const rules = [
    clf.meta.temperature !== undefined ? `temperature ${clf.meta.temperature.toFixed(3)}` : '',
    clf.meta.operatingPoint
      ? `abnormal when P(not ${clf.meta.normalClass}) >= ${clf.meta.operatingPoint.threshold.toPrecision(4)}`
      : '',
    clf.meta.referral ? `refer when the top probability < ${clf.meta.referral.threshold.toPrecision(4)}` : '',
    tta > 1 ? `TTA: ${describeTta(tta, clf.flips)}` : '',
  ].filter(Boolean);
  if (rules.length && !values.json) out(`rules (chosen on validation): ${rules.join('; ')}`);
  const { files, missing } = await expandInputs(positionals);
  for (const m of missing) err(`not found: ${m}`);
  if (!files.length) throw new UsageError('no image to classify');
  const camDir = resolve(str(values.out) ?? 'runs/predict');
  const root = commonRoot(files);
  const rows: { path: string; prediction?: Prediction; error?: string }[] = [];
  for (let i = 0; i < files.length; i += batchSize) {
    const group = files.slice(i, i + batchSize);
    const decoded = await Promise.all(
      group.map((path) =>
        decodeImage(path, clf.meta.decode).then(
          (image) => ({ path, image }),
          (e: Error) => ({ path, error: e.message }),
        ),
      ),
    );
    const ok = decoded.filter((d): d is { path: string; image: tf.Tensor3D } => 'image' in d);
    let predictions: Prediction[] = [];
    try {
      predictions = clf.predictBatch(
        ok.map((d) => d.image),
        { tta },
      );
    } catch {
      // One image the model cannot take (a size the preprocessing does not fix): classify one by one.
      predictions = [];
      for (const d of ok) {
        try {
          predictions.push(clf.predictTensor(d.image, { tta }));
        } catch (inner) {
          predictions.push({
            className: '',
            classIndex: -1,
            probabilities: {},
            rule: 'argmax',
            tta,
            warning: (inner as Error).message,
          });
        }
      }
    }
    const byPath = new Map(ok.map((d, k) => [d.path, predictions[k] as Prediction]));
    for (const d of decoded) {
      const p = byPath.get(d.path);
      if ('error' in d) rows.push({ path: d.path, error: d.error });
      else if (p && p.classIndex < 0) rows.push({ path: d.path, error: p.warning ?? 'cannot classify' });
      else rows.push({ path: d.path, prediction: p as Prediction });
      const row = rows.at(-1) as (typeof rows)[number];
      if (!values.json) {
        if (row.error) err(`${row.path}: skipped: ${row.error}`);
        else {
          const r = row.prediction as Prediction;
          out(
            `${row.path}: ${r.className} (${Object.entries(r.probabilities)
              .map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`)
              .join(', ')})${r.rule === 'threshold' ? ', decided by threshold' : ''}`,
          );
          if (r.decision) out(`  ${r.decision}`);
          if (r.warning) out(`  WARNING: ${r.warning}`);
          if (r.referToHuman) out(`  REFER: ${r.referral}`);
        }
      }
      if (values.gradcam && 'image' in d && !row.error) {
        const x = clf.preprocessing ? clf.preprocessing.apply(d.image) : d.image;
        const cam = gradCam(clf.model, x);
        // The extension stays in the name: x.png and x.jpg get x.png-gradcam.png and x.jpg-gradcam.png.
        const rel = relative(root, resolve(d.path));
        const file = join(camDir, `${rel}-gradcam.png`);
        await writeGradCamPng(d.image, cam.heatmap, file);
        if (!values.json) out(`  Grad-CAM: ${file}`);
        tf.dispose([x, cam.heatmap]);
      }
    }
    tf.dispose(ok.map((d) => d.image));
  }
  const csv = str(values.csv);
  if (csv) {
    const names = clf.meta.classNames;
    // Columns for the saved rules come last, and only with them: older readers keep their columns.
    const threshold = clf.meta.operatingPoint !== undefined;
    const referral = clf.meta.referral !== undefined;
    const header = [
      'path',
      'predicted',
      ...names.map((c) => `p_${c}`),
      'possible_missed_finding',
      'error',
      ...(threshold ? ['p_not_normal', 'threshold'] : []),
      ...(referral ? ['refer_to_human'] : []),
    ];
    const lines = rows.map((r) =>
      [
        r.path,
        r.prediction?.className ?? '',
        ...names.map((c) => (r.prediction ? (r.prediction.probabilities[c] ?? '') : '')),
        r.prediction ? (r.prediction.warning ? 1 : 0) : '',
        r.error ?? '',
        ...(threshold ? [r.prediction?.abnormalScore ?? '', r.prediction?.threshold ?? ''] : []),
        ...(referral ? [r.prediction ? (r.prediction.referToHuman ? 1 : 0) : ''] : []),
      ]
        .map(csvField)
        .join(','),
    );
    await writeFileAtomic(resolve(csv), `${[header.join(','), ...lines].join('\n')}\n`);
    if (!values.json) out(`wrote ${rows.length} rows to ${resolve(csv)}`);
  }
  if (values.json)
    out(
      JSON.stringify(
        rows.map((r) => ({ path: r.path, ...(r.prediction ?? {}), ...(r.error ? { error: r.error } : {}) })),
        null,
        2,
      ),
    );
  const failed = rows.filter((r) => r.error).length + missing.length;
  if (failed) {
    err(`${failed} input${failed > 1 ? 's' : ''} could not be classified (see above)`);
    throw new ExitCode(1);
  }
}
