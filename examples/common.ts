/**
 * What both reproductions share: reading a class-per-folder dataset with its duplicates, a held-out
 * test folder that stays held out, cached decoding, and scoring a stage (validation report,
 * pictures, classifier folder, test set scored once). Written against the public API only.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  arraySource,
  type DecodeSpec,
  type EpochLog,
  type EvaluationMetrics,
  evaluateAndSave,
  type FolderSample,
  findDuplicates,
  folderSource,
  hashSamples,
  imageFolder,
  progressCallback,
  type SampleSource,
  type Transform,
  withoutLeaks,
} from 'medimg-classify/node';

/** `../shared` beside a clone of this repository (real data and Keras files, when present). */
export const SHARED = resolve(import.meta.dirname, '../../shared');

export type Sample = FolderSample & { hash: string };

/** Lists a class-per-folder dataset and hashes its files (for duplicate-aware splits). */
export async function readDataset(dir: string, exclude: string[] = []) {
  const folder = await imageFolder(dir, { exclude });
  const { samples, exact } = await findDuplicates(folder.samples);
  return { classes: folder.classes, samples, duplicateGroups: exact };
}

/**
 * Reads a held-out test folder (same classes) and drops the files whose content also occurs in
 * the training pool, so that the score is on images the model has never seen.
 */
export async function readHeldOutTest(
  dir: string,
  classes: string[],
  pool: Sample[],
  exclude: string[] = [],
) {
  const folder = await imageFolder(dir, { exclude, classNames: classes });
  const hashed = await hashSamples(folder.samples);
  const { kept, dropped } = withoutLeaks(hashed, pool);
  console.log(
    `test: ${dir}: ${hashed.length} images; ${dropped.length} duplicate training files and are left out of the score; ${kept.length} scored`,
  );
  return kept;
}

/** Decoded sources, cached per decoding so that stages sharing one decode the files once. */
export function sources(numClasses: number) {
  const made = new Map<string, SampleSource>();
  return (samples: readonly FolderSample[], decode: DecodeSpec, tag: string): SampleSource => {
    const key = `${tag}:${JSON.stringify(decode)}`;
    let s = made.get(key);
    if (!s) {
      s = folderSource(samples, numClasses, { ...decode, cache: true });
      made.set(key, s);
    }
    return s;
  };
}

/**
 * Synthetic phantoms (no real data) as a source for a decoding: resized to its size and repeated
 * to 3 channels when it asks for RGB, as real files would be decoded.
 */
export function phantomSource(
  samples: readonly { pixels: Float32Array; label: number }[],
  size: number,
  numClasses: number,
) {
  return (decode: DecodeSpec): SampleSource => {
    const s = decode.resize?.height ?? size;
    return arraySource(
      samples.map((x) => {
        const img = tf.tidy(() => {
          let t: tf.Tensor3D = tf.image.resizeBilinear(tf.tensor3d(x.pixels, [size, size, 1]), [s, s]);
          if (decode.channels === 3) t = tf.tile(t, [1, 1, 3]);
          return t;
        });
        const pixels = img.dataSync() as Float32Array;
        img.dispose();
        return { label: x.label, pixels };
      }),
      { height: s, width: s, channels: decode.channels, numClasses },
    );
  };
}

export const progress = () =>
  progressCallback({
    live: Boolean(process.stdout.isTTY),
    redraw: (s) => process.stdout.write(`\r${s.padEnd(100)}${s ? '' : '\r'}`),
  });

/** One row of a stage's summary, also written to `summary.json`. */
export interface StageSummary {
  stage: string;
  seconds: number;
  validation: Scores;
  test?: Scores;
}
export interface Scores {
  images: number;
  accuracy: number;
  macroF1: number;
  loss: number | null;
  /** Abnormal images predicted as the normal class. */
  missed: number | null;
  abnormal: number | null;
  recall: Record<string, number>;
}

function scores(m: EvaluationMetrics, classNames: string[]): Scores {
  return {
    images: m.report.support,
    accuracy: m.report.accuracy,
    macroF1: m.report.macro.f1,
    loss: m.loss ?? null,
    missed: m.missedFindings?.count ?? null,
    abnormal: m.missedFindings?.abnormal ?? null,
    recall: Object.fromEntries(classNames.map((c, i) => [c, m.report.perClass[i]!.recall])),
  };
}

/**
 * Scores a trained stage with the library's `evaluateAndSave`: the validation report (the split
 * that picked the best epoch), pictures and a classifier folder; then, when a test set is given,
 * the test set once, reported separately. Adds the stage's `summary.json`.
 */
export async function finishStage(options: {
  stage: string;
  out: string;
  model: tfl.LayersModel;
  classNames: string[];
  normalClass: string;
  decode: DecodeSpec;
  preprocess: Transform;
  /** The training pipeline: its flips become the classifier's test-time augmentation views. */
  trainTransform?: Transform;
  validation: SampleSource;
  test?: SampleSource;
  history: EpochLog[];
  seconds: number;
}): Promise<StageSummary> {
  const { stage, classNames } = options;
  const dir = join(options.out, stage);
  console.log(`\n[${stage}] trained in ${(options.seconds / 60).toFixed(1)} min`);
  const r = await evaluateAndSave({
    dir,
    model: options.model,
    classNames,
    normalClass: options.normalClass,
    decode: options.decode,
    preprocessing: options.preprocess,
    ...(options.trainTransform ? { trainTransform: options.trainTransform } : {}),
    validation: options.validation,
    ...(options.test ? { test: options.test } : {}),
    history: options.history,
    modelCard: { example: stage, seconds: options.seconds },
    log: console.log,
  });
  const summary: StageSummary = {
    stage,
    seconds: options.seconds,
    validation: scores(r.validation, classNames),
    ...(r.test ? { test: scores(r.test, classNames) } : {}),
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The closing table: accuracy, macro F1 and missed findings per stage, validation and test. */
export function printSummary(rows: StageSummary[], normalClass: string): void {
  console.log(
    `\nstage                          split        accuracy  macro F1  ${normalClass} for abnormal`,
  );
  for (const r of rows) {
    for (const [split, s] of [
      ['validation', r.validation],
      ['test', r.test],
    ] as const) {
      if (!s) continue;
      console.log(
        `${r.stage.padEnd(30)} ${split.padEnd(12)} ${pct(s.accuracy).padStart(8)}  ${s.macroF1.toFixed(3).padStart(8)}  ${s.missed}/${s.abnormal}`,
      );
    }
  }
}
