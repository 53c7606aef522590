/**
 * `npm run bench -- --recipes`: the training recipes users run, end to end on the real images in
 * ../shared/data, beside PyTorch 1.13 running the same recipe on the same files and the same
 * cores (bench/torch_recipes.py, Debian's /usr/bin/python3) in the same invocation:
 *   (a) brain-finetune: MobileNetV2-0.35 at 224 (ImageNet weights from ../shared/models),
 *       blocks 13-16 + Conv_1 trainable, flips, Adam 1e-3 cosine, batch 32
 *   (b) simple-cnn-letterbox: SimpleCNN on 128x128 grayscale letterbox, flips + rotation, Adam
 *   (c) busi: the brain network on BUSI with GaussianBlur, RandomErasing, Normalize, AdaBelief
 * Each side trains `--epochs` (default 4) on a stratified subset (`--images`, default 640) and
 * validates every epoch; the first epoch decodes and fills the decode cache, the last one is
 * reported (images/s of the training loop), with every epoch's images/s, a per-phase breakdown and
 * peak memory (RSS and the wasm heap). Ratios are medians of paired runs (`--repeat=N`). The
 * brain recipe's frozen layers (blocks 0-12) are cached per image and flip by `train()`
 * (`frozenFeatures`): 50%, 75%, 87.5% of the training images hit in epochs 2, 3, 4 (validation
 * images from epoch 2), so its images/s climbs over those epochs; `--frozen-features=off` runs
 * the whole network every step, as PyTorch does.
 *
 * Flags: --recipes[=a,b,c]  --images=N  --epochs=N  --threads=N (default: every core)  --repeat=N
 *        --frozen-features=off
 *        --bn-momentum=M: SimpleCNN's BatchNormalization momentum on our side (Keras's 0.99 by
 *        default; PyTorch's side runs 0.9, its 0.1): over the bench's 80 steps 0.99 keeps most of
 *        the initial moving statistics, which shows in validation accuracy, not in speed
 *        --split=example: the examples' own split instead of a subset (brain MRI: 80/20 of all 5,712
 *        images, seed 42; BUSI: fold 1 of 5, seed 42), so that accuracy is compared on the same
 *        validation images as docs/results.md (a full run: tens of minutes per recipe and side)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { findDuplicates, imageFolder, stratifiedKFold, stratifiedSplit } from '../src/node.js';
import { benchEnv, nativePeak, peaks, relaxedSimdFlags } from './peaks.js';

type Recipe = 'brain-finetune' | 'simple-cnn-letterbox' | 'busi';
const ALL: Recipe[] = ['brain-finetune', 'simple-cnn-letterbox', 'busi'];

interface Side {
  imagesPerSecond: number | null;
  gflopPerImage?: number;
  /** images/s of every epoch's training loop. */
  perEpoch?: number[];
  phases?: Record<string, number>;
  peakRssBytes?: number;
  peakWasmHeapBytes?: number;
  valAccuracy?: number | null;
  note?: string;
}

const pct = (x: number | null | undefined) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '-');

/** Why a child process failed: its spawn error (e.g. a timeout), or the last lines it wrote. */
const failure = (r: { error?: Error; stderr: string | null }) =>
  r.error?.message ?? (r.stderr ?? '').split('\n').filter(Boolean).slice(-2).join(' ');

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

export async function benchRecipes(
  args: string[],
  log: (s?: string) => void,
): Promise<Record<string, unknown>> {
  const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const picked = flag('recipes');
  const recipes = picked ? (picked.split(',') as Recipe[]) : ALL;
  for (const r of recipes)
    if (!ALL.includes(r)) throw new Error(`--recipes: unknown recipe '${r}' (${ALL.join(', ')})`);
  const images = Number(flag('images') ?? 640);
  const epochs = Number(flag('epochs') ?? 4);
  const frozenFeatures = flag('frozen-features') ?? 'on';
  if (frozenFeatures !== 'on' && frozenFeatures !== 'off')
    throw new Error(`--frozen-features must be on or off, got ${frozenFeatures}`);
  const bnMomentum = flag('bn-momentum');
  if (bnMomentum !== undefined && !(Number(bnMomentum) > 0 && Number(bnMomentum) < 1))
    throw new Error(`--bn-momentum must be in (0, 1), got ${bnMomentum}`);
  const threads = Number(flag('threads') ?? cpus().length);
  const repeat = Number(flag('repeat') ?? 1);
  for (const [k, v] of Object.entries({ images, epochs, threads, repeat }))
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  const here = resolve(import.meta.dirname);
  const shared = resolve(here, '../../shared');
  const h5 = join(shared, 'models/teachable-machine-busi/keras_model.h5');
  if (!existsSync(join(shared, 'data')) || !existsSync(h5)) {
    log('recipes skipped: ../shared/data or ../shared/models is absent');
    return { skipped: 'no ../shared' };
  }
  const python = '/usr/bin/python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  const relaxed = relaxedSimdFlags(args);
  log(
    `== Recipes end to end: train() on real images vs PyTorch 1.13, ${threads} threads, ${images} training images, ${epochs} epochs, last epoch reported; frozen-feature cache ${frozenFeatures}; fused multiply-adds in the heap loops ${relaxed.note} ==`,
  );
  const exampleSplit = flag('split') === 'example';
  const env = benchEnv(threads, args);
  const list = (s: { path: string; label: number }[]) =>
    s.map((x) => [resolve(x.path), x.label] as [string, number]);
  const subset = async (dir: string, exclude: string[] = []) => {
    const folder = await imageFolder(dir, { exclude });
    const { samples } = await findDuplicates(folder.samples);
    if (exampleSplit) {
      const parts = exclude.length
        ? stratifiedKFold(samples, { folds: 5, seed: 42 })[0]!
        : stratifiedSplit(samples, { validation: 0.2, seed: 42 });
      return { classes: folder.classes, train: list(parts.train), validation: list(parts.validation) };
    }
    const fraction = Math.min(0.95, (images * 1.2) / samples.length);
    const { validation: picked } = stratifiedSplit(samples, { validation: fraction, seed: 5 });
    const { train, validation } = stratifiedSplit(picked, { validation: 1 / 6, seed: 6 });
    return { classes: folder.classes, train: list(train).slice(0, images), validation: list(validation) };
  };
  const brain = await subset(join(shared, 'data/brain-mri/Training'));
  const busi = await subset(join(shared, 'data/busi/images'), ['*_mask*']);
  const out: Record<
    string,
    { runs: { ours: Side; torch: Side }[]; ratio: number | null; gflopPerImage?: number } & Record<
      string,
      unknown
    >
  > = {};
  const rows: string[] = [];
  for (const recipe of recipes) {
    const data = recipe === 'busi' ? busi : brain;
    const base = {
      recipe,
      epochs,
      batch: 32,
      seed: 0,
      h5,
      classes: data.classes,
      train: data.train,
      validation: data.validation,
    };
    const runs: { ours: Side; torch: Side }[] = [];
    for (let k = 0; k < repeat; k++) {
      const t = spawnSync(
        process.execPath,
        [...relaxed.flags, '--import', 'tsx', join(here, 'recipe-run.ts')],
        {
          input: JSON.stringify({
            ...base,
            threads,
            ...(frozenFeatures === 'off' ? { frozenFeatures: false } : {}),
            ...(bnMomentum !== undefined ? { bnMomentum: Number(bnMomentum) } : {}),
          }),
          encoding: 'utf8',
          maxBuffer: 1 << 26,
          timeout: 3_600_000,
          env,
        },
      );
      const ours: Side =
        t.status === 0
          ? JSON.parse(t.stdout.trim().split('\n').at(-1) ?? '{}')
          : { imagesPerSecond: null, note: failure(t) };
      const oursEpochs = (ours as { epochs?: { imagesPerSecond: number }[] }).epochs;
      if (oursEpochs) ours.perEpoch = oursEpochs.map((e) => e.imagesPerSecond);
      let torch: Side = { imagesPerSecond: null, note: 'PyTorch not installed' };
      if (hasTorch) {
        const p = spawnSync(python, [join(here, 'torch_recipes.py')], {
          input: JSON.stringify({
            ...base,
            threads,
            optimizer: recipe === 'busi' ? 'adabelief' : 'adam',
            lr: 1e-3,
            bn_momentum: 0.1,
            ...(recipe === 'simple-cnn-letterbox' ? { size: 128, channels: 1 } : {}),
          }),
          encoding: 'utf8',
          maxBuffer: 1 << 26,
          timeout: 3_600_000,
          env,
        });
        if (p.status === 0) {
          const r = JSON.parse(p.stdout);
          const last = r.epochs.at(-1);
          torch = {
            imagesPerSecond: last.images_per_second,
            perEpoch: r.epochs.map((e: { images_per_second: number }) => e.images_per_second),
            phases: r.phases,
            valAccuracy: last.val_accuracy,
            ...(r.peak_rss_bytes ? { peakRssBytes: r.peak_rss_bytes } : {}),
          };
        } else torch = { imagesPerSecond: null, note: failure(p) };
      }
      runs.push({ ours, torch });
      const epochList = (side: Side) =>
        side.perEpoch && side.perEpoch.length > 1
          ? ` (epochs: ${side.perEpoch.map((x) => x.toFixed(0)).join(', ')})`
          : '';
      log(
        `  ${recipe} run ${k + 1}: medimg-classify ${ours.imagesPerSecond?.toFixed(1) ?? 'failed'} images/s${epochList(ours)}, PyTorch ${torch.imagesPerSecond?.toFixed(1) ?? torch.note}${epochList(torch)}`,
      );
    }
    const ratios = runs
      .filter((r) => r.ours.imagesPerSecond && r.torch.imagesPerSecond)
      .map((r) => (r.ours.imagesPerSecond as number) / (r.torch.imagesPerSecond as number));
    const ratio = ratios.length ? median(ratios) : null;
    const last = runs.at(-1)!;
    out[recipe] = { runs, ratio, trainImages: data.train.length, validationImages: data.validation.length };
    const ph = last.ours.phases ?? {};
    const fmt = (k: string) => `${k} ${(ph[k] ?? 0).toFixed(1)}s`;
    rows.push(
      `${recipe.padEnd(22)} ${String(last.ours.imagesPerSecond?.toFixed(1) ?? '-').padStart(7)} ${String(last.torch.imagesPerSecond?.toFixed(1) ?? '-').padStart(8)} ${ratio === null ? '   -' : `${ratio.toFixed(2)}x`.padStart(6)}  ` +
        `${['forward', 'backward', 'optimizer', 'frozen', 'transforms', 'data', 'validation'].map(fmt).join(', ')}; ` +
        `peak RSS ${((last.ours.peakRssBytes ?? 0) / 2 ** 30).toFixed(2)} GiB, wasm heap ${((last.ours.peakWasmHeapBytes ?? 0) / 2 ** 30).toFixed(2)} GiB` +
        ` (PyTorch ${((last.torch.peakRssBytes ?? 0) / 2 ** 30).toFixed(2)} GiB); validation accuracy ${pct(last.ours.valAccuracy)} vs PyTorch ${pct(last.torch.valAccuracy)}`,
    );
  }
  log('\nrecipe                  ours/s  PyTorch/s  ratio  where the last epoch went (ours)');
  for (const r of rows) log(r);
  // Achieved GFLOP/s of the training loop (convolution and dense FLOPs of the step, counted from
  // the model: forward, plus input and weight gradients of the layers that train) against the
  // machine's theoretical peaks: wasm SIMD128 (no FMA) for ours, the best native ISA for PyTorch.
  // FLOPs are counted as direct convolutions: Winograd layers (src/backend/wasm/winograd.ts,
  // F(4x4, 3x3)) do 4x fewer multiplies in their products, so a step with them can pass 100% of
  // the peak.
  const peak = peaks();
  const native = nativePeak(peak);
  const torchMalloc = env.MALLOC_MMAP_MAX_ === '0' ? 'kept' : 'default';
  log(
    `\nachieved GFLOP/s, counted as direct convolutions (Winograd F(4x4, 3x3) layers do 4x fewer multiplies in their products; wasm SIMD peak ${peak?.wasmGflops.toFixed(0) ?? '?'}, native ${native?.isa ?? ''} peak ${native?.gflops.toFixed(0) ?? '?'}, ${cpus().length} cores at ${peak?.mhz.toFixed(0) ?? '?'} MHz; PyTorch's freed memory ${torchMalloc === 'kept' ? 'kept mapped' : "returned to the OS (glibc's defaults)"}):`,
  );
  for (const [recipe, r] of Object.entries(out)) {
    const last = r.runs.at(-1);
    const g = last?.ours.gflopPerImage;
    if (!last || g === undefined) continue;
    const at = (ips: number | null, p: number | null | undefined) =>
      ips === null
        ? '-'
        : `${(ips * g).toFixed(1)}${p ? ` (${((100 * ips * g) / p).toFixed(0)}% of peak)` : ''}`;
    // Images whose frozen layers came from the cache did not run them: the count is of the
    // network's work, not of ours.
    const cached = (
      last.ours as { epochs?: { frozenFeatures?: { hits: number; misses: number } }[] }
    ).epochs?.at(-1)?.frozenFeatures;
    const hitShare =
      cached && cached.hits + cached.misses > 0 ? cached.hits / (cached.hits + cached.misses) : 0;
    const line =
      `  ${recipe.padEnd(22)} ${g.toFixed(2)} GFLOP per image; ours ${at(last.ours.imagesPerSecond, peak?.wasmGflops)}, PyTorch ${at(last.torch.imagesPerSecond, native?.gflops)}` +
      (hitShare > 0
        ? `; ${(100 * hitShare).toFixed(0)}% of our last epoch's images took their frozen layers' output from the cache, so ours counts work it did not do`
        : '');
    r.gflopPerImage = g;
    log(line);
  }
  return {
    images,
    epochs,
    threads,
    repeat,
    frozenFeatures,
    relaxedSimd: relaxed.note,
    torchMalloc,
    peaks: peak,
    recipes: out,
  };
}
