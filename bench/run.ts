/**
 * `npm run bench`: numbers, not tests. Prints a table and writes bench/results.json.
 *
 *  1. Training throughput (images/s) per model on wasm (this library's kernels) and cpu (tfjs's
 *     pure-JS backend, the "before"), and PyTorch at 1 and 2 threads in the same run when
 *     Debian's /usr/bin/python3 has torch, with the ratio to PyTorch's single thread.
 *  2. Transform pipeline throughput beside torchvision.
 *  3. Decoding + letterbox + augmentation throughput on ../shared/data (with and without the
 *     cache) beside PIL/torchvision, when the data is there.
 *  4. AdaBelief vs Adam training curves on the same small task (chart + numbers).
 *
 * With --recipes (see bench/recipes.ts): the real training recipes end to end on ../shared/data beside
 * PyTorch instead, written to bench/results-recipes.json.
 *
 * Flags: --quick (fewer steps, skips the slowest configurations), --only=models|transforms|loader|optimizers,
 *        --model=simple-cnn|user-cnn|mobilenetv2|resnet50v2, --train=full|frozen|conv5|last-block|inference,
 *        --no-cpu (skip the slow pure-JS baseline),
 *        --no-relaxed-simd (time the unfused heap loops: on Node 20 the bench otherwise passes
 *        --experimental-wasm-relaxed-simd to its Node children, as Node 22 and later run by default),
 *        --repeat=N (time each model N times, PyTorch and wasm back to back each time, and report
 *        medians: the ratio is the median of the N paired ratios, which a shared machine's drift
 *        moves less than separate medians)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  adaBelief,
  arraySource,
  Compose,
  decodePixels,
  GaussianBlur,
  Grayscale,
  imageFolder,
  Letterbox,
  Normalize,
  RandomErasing,
  RandomHorizontalFlip,
  Rescale,
  setupBackend,
  simpleCnn,
  stratifiedSplit,
  syntheticDataset,
  train,
  trainingCurvesChart,
  writeChart,
} from '../src/node.js';
import { benchEnv, peaks, relaxedSimdFlags } from './peaks.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice(7);
const modelFilter = args.find((a) => a.startsWith('--model='))?.slice(8);
const trainFilter = args.find((a) => a.startsWith('--train='))?.slice(8);
const skipCpu = args.includes('--no-cpu');
const repeat = Number(args.find((a) => a.startsWith('--repeat='))?.slice(9) ?? 1);
if (!Number.isInteger(repeat) || repeat < 1)
  throw new Error(`--repeat must be a positive integer, got ${repeat}`);
const here = resolve(import.meta.dirname);
const shared = resolve(here, '../../shared/data');
const python = '/usr/bin/python3';
const hasTorch =
  existsSync(python) &&
  spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, peaks: peaks() },
  torch: hasTorch,
};
const log = (s = '') => console.log(s);
/** Both sides' child processes: same threads, same allocator settings (see benchEnv). */
const env = benchEnv(cpus().length, args);
const relaxed = relaxedSimdFlags(args);
results.relaxedSimd = relaxed.note;

function torch(
  jobs: object[],
  timeout = 900_000,
): { results: (Record<string, unknown> & { imagesPerSecond: number })[] } | null {
  if (!hasTorch) return null;
  const r = spawnSync(python, [join(here, 'torch_bench.py')], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    env,
    timeout,
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) {
    log(`  (PyTorch failed: ${r.stderr.split('\n').slice(-3).join(' ')})`);
    return null;
  }
  return JSON.parse(r.stdout);
}

interface ModelJob {
  label: string;
  model: 'simple-cnn' | 'user-cnn' | 'resnet50v2' | 'mobilenetv2';
  train: 'full' | 'frozen' | 'conv5' | 'last-block' | 'inference';
  size: number;
  channels: number;
  batch: number;
  torchModel: string;
  torchTrain: string;
}

/** Median of the numbers present; null when there are none. */
function median(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function tfjsTiming(
  backend: 'wasm' | 'cpu',
  job: ModelJob,
  steps: number,
  timeoutS: number,
  threads?: number,
) {
  const r = spawnSync(
    process.execPath,
    [
      ...relaxed.flags,
      '--import',
      'tsx',
      join(here, 'models.ts'),
      JSON.stringify({ ...job, backend, steps, threads }),
    ],
    {
      encoding: 'utf8',
      env,
      timeout: timeoutS * 1000,
    },
  );
  if (r.error || r.status !== 0)
    return {
      imagesPerSecond: null,
      note: r.error
        ? `over ${timeoutS}s for ${steps + 3} steps`
        : r.stderr.split('\n').filter(Boolean).slice(-1)[0],
    };
  const line = r.stdout.trim().split('\n').at(-1) ?? '{}';
  return JSON.parse(line) as {
    imagesPerSecond: number;
    secondsPerStep: number;
    threads: number;
    gflopPerImage: number;
  };
}

async function models() {
  log('== Training throughput (images/s; higher is better) ==');
  const jobs: ModelJob[] = [
    {
      label: 'SimpleCNN 128x128x1 b32, train all',
      model: 'simple-cnn',
      train: 'full',
      size: 128,
      channels: 1,
      batch: 32,
      torchModel: 'simple-cnn',
      torchTrain: 'full',
    },
    {
      label: 'user-built tfjs-layers CNN (no BN) 128x128x1 b32, trainOnBatch + tf.train.adam',
      model: 'user-cnn',
      train: 'full',
      size: 128,
      channels: 1,
      batch: 32,
      torchModel: 'user-cnn',
      torchTrain: 'full',
    },
    {
      label: 'SimpleCNN 128x128x1 b32, inference',
      model: 'simple-cnn',
      train: 'inference',
      size: 128,
      channels: 1,
      batch: 32,
      torchModel: 'simple-cnn',
      torchTrain: 'inference',
    },
    {
      label: 'MobileNetV2-0.35 224 b32, frozen backbone',
      model: 'mobilenetv2',
      train: 'frozen',
      size: 224,
      channels: 3,
      batch: 32,
      torchModel: 'mobilenetv2',
      torchTrain: 'frozen',
    },
    {
      label: 'MobileNetV2-0.35 224 b32, last block unfrozen',
      model: 'mobilenetv2',
      train: 'last-block',
      size: 224,
      channels: 3,
      batch: 32,
      torchModel: 'mobilenetv2',
      torchTrain: 'last-block',
    },
    {
      label: 'MobileNetV2-0.35 224 b32, train all',
      model: 'mobilenetv2',
      train: 'full',
      size: 224,
      channels: 3,
      batch: 32,
      torchModel: 'mobilenetv2',
      torchTrain: 'full',
    },
    {
      label: 'MobileNetV2-0.35 224 b32, inference',
      model: 'mobilenetv2',
      train: 'inference',
      size: 224,
      channels: 3,
      batch: 32,
      torchModel: 'mobilenetv2',
      torchTrain: 'inference',
    },
    {
      label: 'ResNet50V2 224 b8, frozen backbone',
      model: 'resnet50v2',
      train: 'frozen',
      size: 224,
      channels: 3,
      batch: 8,
      torchModel: 'resnet50',
      torchTrain: 'frozen',
    },
    {
      label: 'ResNet50V2 224 b8, conv5 unfrozen',
      model: 'resnet50v2',
      train: 'conv5',
      size: 224,
      channels: 3,
      batch: 8,
      torchModel: 'resnet50',
      torchTrain: 'conv5',
    },
    {
      label: 'ResNet50V2 224 b8, train all',
      model: 'resnet50v2',
      train: 'full',
      size: 224,
      channels: 3,
      batch: 8,
      torchModel: 'resnet50',
      torchTrain: 'full',
    },
    {
      label: 'ResNet50V2 224 b8, inference',
      model: 'resnet50v2',
      train: 'inference',
      size: 224,
      channels: 3,
      batch: 8,
      torchModel: 'resnet50',
      torchTrain: 'inference',
    },
  ].filter(
    (j) =>
      (!quick || !(j.model === 'resnet50v2' && j.train === 'full')) &&
      (!modelFilter || j.model === modelFilter) &&
      (!trainFilter || j.train === trainFilter),
  ) as ModelJob[];
  const steps = quick ? 1 : 2;
  const f = (v: number | null | undefined) => (v == null ? '   -  ' : v.toFixed(2).padStart(6));
  const rows = [];
  for (const job of jobs) {
    const runs: Record<'torch1' | 'torch2' | 'wasm' | 'wasm1t', number | null>[] = [];
    let wasmThreads: number | null = null;
    let gflopPerImage: number | null = null;
    for (let rep = 0; rep < repeat; rep++) {
      const pt = torch(
        [1, 2].map((threads) => ({
          model: job.torchModel,
          train: job.torchTrain,
          size: job.size,
          channels: job.channels,
          batch: job.batch,
          threads,
          steps: steps + 1,
        })),
      );
      const torchAt = (threads: number) =>
        pt?.results.find((r) => r.threads === threads)?.imagesPerSecond ?? null;
      // wasm on every core (the default), and on one thread to compare with PyTorch at 1 thread.
      const wasm = tfjsTiming('wasm', job, steps, 900);
      const wasm1 = tfjsTiming('wasm', job, steps, 900, 1);
      if ('threads' in wasm) {
        wasmThreads = wasm.threads;
        gflopPerImage = wasm.gflopPerImage;
      }
      runs.push({
        torch1: torchAt(1),
        torch2: torchAt(2),
        wasm: wasm.imagesPerSecond,
        wasm1t: wasm1.imagesPerSecond,
      });
      if (repeat > 1) {
        const run = runs.at(-1)!;
        log(
          `  ${job.label} run ${rep + 1}/${repeat}: wasm ${f(run.wasm)}  wasm(1t) ${f(run.wasm1t)}  torch(1t) ${f(run.torch1)}  torch(2t) ${f(run.torch2)}`,
        );
      }
    }
    // The pure-JS cpu backend takes minutes per step on convolutions: measure SimpleCNN only, with a cap.
    const cpu =
      job.model === 'simple-cnn' && !skipCpu
        ? tfjsTiming('cpu', job, 1, quick ? 120 : 300)
        : { imagesPerSecond: null, note: 'not run (minutes per step)' };
    const column = (k: keyof (typeof runs)[number]) => median(runs.map((r) => r[k]));
    const pairedRatio = (a: keyof (typeof runs)[number], b: keyof (typeof runs)[number]) =>
      median(runs.map((r) => (r[a] && r[b] ? r[a] / r[b] : null)));
    const wasm = column('wasm');
    const torch2 = column('torch2');
    const row = {
      ...job,
      wasm,
      wasmThreads,
      wasm1t: column('wasm1t'),
      cpu: cpu.imagesPerSecond,
      cpuNote: 'note' in cpu ? cpu.note : undefined,
      torch1: column('torch1'),
      torch2,
      ratioToTorch1: pairedRatio('wasm', 'torch1'),
      ratio1tTo1t: pairedRatio('wasm1t', 'torch1'),
      ratioToTorch2: pairedRatio('wasm', 'torch2'),
      gflopPerImage,
      wasmGflops: wasm && gflopPerImage ? wasm * gflopPerImage : null,
      torch2Gflops: torch2 && gflopPerImage ? torch2 * gflopPerImage : null,
      runs,
    };
    rows.push(row);
    const { torch1 } = row;
    log(
      `${job.label.padEnd(48)} wasm(${row.wasmThreads ?? '?'}t) ${f(row.wasm)}  wasm(1t) ${f(row.wasm1t)}  cpu ${f(row.cpu)}  torch(1t) ${f(torch1)}  torch(2t) ${f(torch2)}  wasm/torch1 ${f(row.ratioToTorch1)}  wasm1t/torch1 ${f(row.ratio1tTo1t)}  wasm/torch2 ${f(row.ratioToTorch2)}  GFLOP/s wasm ${f(row.wasmGflops)} torch(2t) ${f(row.torch2Gflops)}`,
    );
  }
  log(
    '  (PyTorch has no ResNet50V2; torchvision ResNet50 v1, same size class, stands in. GFLOP/s: convolution and dense multiply-adds x2 per step, counted from the model: forward, plus input and weight gradients of the layers that train.)',
  );
  const p = peaks();
  if (p)
    log(
      `  Machine peak (all ${cpus().length} cores at ${p.mhz.toFixed(0)} MHz): native AVX2+FMA ${p.nativeGflops?.toFixed(0) ?? '-'} GFLOP/s, AVX-512 ${p.avx512Gflops?.toFixed(0) ?? '-'} GFLOP/s, wasm SIMD128 (no FMA) ${p.wasmGflops.toFixed(0)} GFLOP/s; fused multiply-adds in the heap loops ${relaxed.note}.` +
        ` PyTorch ran with ${env.MALLOC_MMAP_MAX_ === '0' ? 'freed memory kept mapped (MALLOC_MMAP_MAX_=0; --torch-malloc=default for glibc defaults)' : "glibc's default allocator settings"}.`,
    );
  results.torchMalloc = env.MALLOC_MMAP_MAX_ === '0' ? 'kept' : 'default';
  results.models = rows;
}

async function transforms() {
  log(
    '\n== Transform pipeline (letterbox 224, grayscale, blur, erasing, normalize; 256x256x3 inputs, batch 32) ==',
  );
  await setupBackend('wasm');
  const pipe = new Compose(
    [
      new Letterbox({ height: 224, width: 224 }),
      new Grayscale(),
      new GaussianBlur({ kernelSize: 5, sigma: [0.1, 2] }),
      new RandomErasing({ p: 0.5 }),
      new Normalize({ mean: [127.5], std: [127.5] }),
    ],
    { seed: 1 },
  );
  const batch = tf.randomUniform([32, 256, 256, 3], 0, 255, 'float32', 1) as tf.Tensor4D;
  tf.dispose(pipe.apply(batch));
  const reps = quick ? 2 : 4;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) tf.tidy(() => pipe.apply(batch).dataSync());
  const ips = (32 * reps) / ((performance.now() - t0) / 1000);
  batch.dispose();
  const pt = torch([{ kind: 'transforms', batch: 32, threads: 1, steps: reps }]);
  const tv = pt?.results[0]?.imagesPerSecond ?? null;
  log(
    `medimg-classify (wasm) ${ips.toFixed(1)} images/s; torchvision (1 thread) ${tv?.toFixed(1) ?? '-'} images/s; ratio ${tv ? (ips / tv).toFixed(2) : '-'}`,
  );
  results.transforms = { imagesPerSecond: ips, torchvision: tv };
}

async function loader() {
  log('\n== Decoding + letterbox 224 + augmentation on ../shared/data ==');
  if (!existsSync(shared)) {
    log('  skipped: ../shared/data is absent');
    return;
  }
  await setupBackend('wasm');
  const folder = await imageFolder(join(shared, 'brain-mri/Training'));
  const files = folder.samples.filter((_, i) => i % 19 === 0).slice(0, quick ? 100 : 300);
  const aug = new Compose([new RandomHorizontalFlip(), new Rescale({ scale: 1 / 255 })], { seed: 1 });
  const run = async (cache: Map<string, Awaited<ReturnType<typeof decodePixels>>> | null) => {
    const t0 = performance.now();
    await Promise.all(
      files.map(async (s) => {
        const p =
          cache?.get(s.path) ??
          (await decodePixels(s.path, { channels: 1, resize: { height: 224, width: 224, fit: 'contain' } }));
        cache?.set(s.path, p);
        tf.tidy(() => aug.apply(tf.tensor3d(Float32Array.from(p.data), [p.height, p.width, 1])));
      }),
    );
    return files.length / ((performance.now() - t0) / 1000);
  };
  const cold = await run(null);
  const cache = new Map();
  await run(cache);
  const warm = await run(cache);
  const pt = torch([{ kind: 'decode', files: files.map((f) => f.path), threads: 1 }]);
  const pil = pt?.results[0]?.imagesPerSecond ?? null;
  log(
    `decode+letterbox+augment: ${cold.toFixed(0)} images/s (sharp, libuv threads), cached ${warm.toFixed(0)} images/s; PIL/torchvision ${pil?.toFixed(0) ?? '-'} images/s`,
  );
  results.loader = { imagesPerSecond: cold, cachedImagesPerSecond: warm, pil };
}

async function optimizers() {
  log('\n== AdaBelief vs Adam on the same small task (synthetic brain-MRI phantoms, SimpleCNN) ==');
  await setupBackend('wasm');
  const size = 48;
  const data = syntheticDataset({ kind: 'brain-mri', perClass: quick ? 50 : 100, size, seed: 1 });
  const { train: tr, validation: va } = stratifiedSplit(data.samples, { validation: 0.25, seed: 1 });
  const src = (s: typeof tr) => arraySource(s, { height: size, width: size, numClasses: 4 });
  const history: { epoch: number; metric: string; split: string; value: number }[] = [];
  const summary: Record<string, unknown> = {};
  for (const [name, make] of [
    ['AdaBelief', () => adaBelief({ learningRate: 1e-3 })],
    ['Adam', () => tf.train.adam(1e-3)],
  ] as const) {
    const model = simpleCnn({
      inputShape: [size, size, 1],
      numClasses: 4,
      filters: [16, 32, 64],
      dense: 64,
      dropout: 0.3,
      seed: 1,
    });
    const r = await train({
      model,
      train: src(tr),
      validation: src(va),
      optimizer: make(),
      epochs: quick ? 6 : 16,
      batchSize: 16,
      transform: new Rescale({ scale: 1 / 255 }),
      validationTransform: new Rescale({ scale: 1 / 255 }),
      seed: 1,
    });
    for (const h of r.history) {
      history.push({ epoch: h.epoch + 1, metric: 'validation loss', split: name, value: h.val_loss! });
      history.push({
        epoch: h.epoch + 1,
        metric: 'validation accuracy',
        split: name,
        value: h.val_accuracy!,
      });
      history.push({ epoch: h.epoch + 1, metric: 'train loss', split: name, value: h.loss! });
    }
    const last = r.history.at(-1)!;
    summary[name] = {
      finalValLoss: last.val_loss,
      finalValAccuracy: last.val_accuracy,
      bestValAccuracy: Math.max(...r.history.map((h) => h.val_accuracy!)),
    };
    log(
      `${name.padEnd(10)} final val loss ${last.val_loss!.toFixed(4)}, final val accuracy ${last.val_accuracy!.toFixed(3)}, best ${(summary[name] as { bestValAccuracy: number }).bestValAccuracy.toFixed(3)}`,
    );
    model.dispose();
  }
  const chart = await writeChart(
    trainingCurvesChart(history, { title: 'AdaBelief vs Adam (same model, data, seed)' }),
    join(here, 'adabelief-vs-adam'),
  );
  log(`chart: ${chart.png}`);
  results.optimizers = summary;
}

const recipesFlag = args.some((a) => a === '--recipes' || a.startsWith('--recipes='));
const recipes = async () => {
  const { benchRecipes } = await import('./recipes.js');
  results.recipes = await benchRecipes(args, log);
};
const sections: Record<string, () => Promise<void>> = recipesFlag
  ? { recipes }
  : { models, transforms, loader, optimizers };
for (const [name, fn] of Object.entries(sections)) if (!only || only === name || recipesFlag) await fn();
writeFileSync(
  join(
    here,
    recipesFlag
      ? 'results-recipes.json'
      : only || modelFilter || trainFilter
        ? `results-${only ?? 'all'}${modelFilter ? `-${modelFilter}` : ''}${trainFilter ? `-${trainFilter}` : ''}.json`
        : 'results.json',
  ),
  `${JSON.stringify(results, null, 2)}\n`,
);
log('\nwrote bench results JSON');
void execFileSync;
