import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  arraySource,
  Compose,
  decodeCheckpoint,
  fileCheckpointStore,
  memoryCheckpointStore,
  RandomErasing,
  RandomHorizontalFlip,
  Rescale,
  setLearningRate,
  setupBackend,
  simpleCnn,
  stratifiedSplit,
  syntheticDataset,
  TrainingError,
  train,
} from '../../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const size = 24;
const data = syntheticDataset({ kind: 'brain-mri', perClass: 12, size, seed: 4 });
const source = (s: typeof data.samples) => arraySource(s, { height: size, width: size, numClasses: 4 });
const small = (seed = 1) =>
  simpleCnn({ inputShape: [size, size, 1], numClasses: 4, filters: [4, 8], dense: 8, dropout: 0.2, seed });
const pipeline = () =>
  new Compose(
    [
      new RandomHorizontalFlip(),
      new RandomErasing({ p: 0.5, scale: [0.02, 0.1] }),
      new Rescale({ scale: 1 / 255 }),
    ],
    { seed: 3 },
  );
const weightsOf = (m: { getWeights(): tf.Tensor[] }) => m.getWeights().map((w) => Array.from(w.dataSync()));

describe('train', () => {
  it('resumes bit-identically on cpu (weights, optimizer state, dropout and augmentation generators)', async () => {
    await setupBackend('cpu');
    const { train: tr, validation: va } = stratifiedSplit(data.samples, { validation: 0.25, seed: 1 });
    const run = async (epochs: number, store: ReturnType<typeof memoryCheckpointStore>, resume = false) => {
      const model = small();
      const result = await train({
        model,
        train: source(tr),
        validation: source(va),
        optimizer: adaBelief({ learningRate: 3e-3 }),
        epochs,
        batchSize: 8,
        transform: pipeline(),
        validationTransform: new Rescale({ scale: 1 / 255 }),
        seed: 5,
        checkpoints: store,
        resume,
        restoreBest: false,
      });
      return { model, result };
    };
    const straight = await run(4, memoryCheckpointStore());
    const store = memoryCheckpointStore();
    const first = await run(2, store);
    first.model.dispose();
    const resumed = await run(4, store, true);
    expect(resumed.result.epochsRun).toBe(2);
    expect(resumed.result.history).toEqual(straight.result.history);
    expect(weightsOf(resumed.model)).toEqual(weightsOf(straight.model));
    straight.model.dispose();
    resumed.model.dispose();
  });

  it('keeps the tensor count flat across epochs and reports loss, accuracy and F1 on both splits', async () => {
    await setupBackend('wasm');
    const model = small(2);
    const counts: number[] = [];
    const result = await train({
      model,
      train: source(data.samples),
      validation: source(data.samples.slice(0, 16)),
      optimizer: adaBelief(),
      epochs: 3,
      batchSize: 8,
      transform: pipeline(),
      validationTransform: new Rescale({ scale: 1 / 255 }),
      callbacks: [{ onEpochEnd: () => void counts.push(tf.memory().numTensors) }],
    });
    expect(new Set(counts).size).toBe(1);
    expect(Object.keys(result.history[0]!).sort()).toEqual([
      'accuracy',
      'epoch',
      'f1',
      'loss',
      'lr',
      'val_accuracy',
      'val_f1',
      'val_loss',
    ]);
    model.dispose();
  });

  it('stops early when the monitored metric stalls', async () => {
    await setupBackend('wasm');
    const model = small(3);
    const result = await train({
      model,
      train: source(data.samples),
      optimizer: adaBelief({ learningRate: 0 }),
      epochs: 10,
      batchSize: 16,
      transform: new Rescale({ scale: 1 / 255 }),
      monitor: 'loss',
      earlyStopping: { patience: 2, minDelta: 10 },
    });
    expect(result.stoppedEarly).toBe(true);
    expect(result.epochsRun).toBe(3);
    model.dispose();
  });

  it('stops on a NaN loss with a clear message and keeps the last good checkpoint', async () => {
    await setupBackend('wasm');
    const model = small(4);
    const store = fileCheckpointStore(join(dir, 'nan'));
    const opt = adaBelief({ learningRate: 1e-3 });
    let epochSeen = -1;
    const error = await train({
      model,
      train: source(data.samples),
      optimizer: opt,
      epochs: 5,
      batchSize: 16,
      transform: new Rescale({ scale: 1 / 255 }),
      checkpoints: store,
      callbacks: [
        {
          onEpochEnd: (e) => {
            epochSeen = e;
          },
          // A learning rate that blows the weights up to infinity in epoch 3.
          onEpochBegin: (e) => {
            if (e === 2) setLearningRate(opt, 1e38);
          },
        },
      ],
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingError);
    expect((error as Error).message).toMatch(
      /^Error in train: the loss became (NaN|Infinity) at epoch 3, batch \d+: stopped .* The last good checkpoint is kept at .*nan\/last\.ckpt/,
    );
    expect(epochSeen).toBe(1);
    const bytes = await store.read('last');
    const ckpt = await decodeCheckpoint(bytes!, 'last');
    expect(ckpt.state.epoch).toBe(1);
    expect(ckpt.model.getWeights().every((w) => Array.from(w.dataSync()).every(Number.isFinite))).toBe(true);
    model.dispose();
    ckpt.model.dispose();
  });

  it('an interrupted checkpoint write (process killed) leaves the previous checkpoint loadable', async () => {
    const target = join(dir, 'kill');
    const script = resolve(__dirname, 'write-checkpoints.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', script, target], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let written = 0;
    await new Promise<void>((done) => {
      child.stdout.on('data', (chunk: Buffer) => {
        written += chunk
          .toString()
          .split('\n')
          .filter((l) => l === 'written').length;
        if (written >= 3) {
          child.kill('SIGKILL');
          done();
        }
      });
    });
    await new Promise((r) => child.on('exit', r));
    const bytes = await fileCheckpointStore(target).read('last');
    const ckpt = await decodeCheckpoint(bytes!, 'last');
    expect(ckpt.state.epoch).toBeGreaterThanOrEqual(2);
    ckpt.model.dispose();
  }, 60_000);

  it('learns the synthetic phantoms: validation accuracy well above chance (0.25)', async () => {
    await setupBackend('wasm');
    const d = syntheticDataset({ kind: 'brain-mri', perClass: 80, size: 32, seed: 11 });
    const { train: tr, validation: va } = stratifiedSplit(d.samples, { validation: 0.25, seed: 1 });
    const src = (s: typeof tr) => arraySource(s, { height: 32, width: 32, numClasses: 4 });
    const model = simpleCnn({
      inputShape: [32, 32, 1],
      numClasses: 4,
      filters: [8, 16],
      dense: 32,
      dropout: 0.2,
      seed: 1,
    });
    const result = await train({
      model,
      train: src(tr),
      validation: src(va),
      optimizer: adaBelief({ learningRate: 3e-3 }),
      epochs: 15,
      batchSize: 16,
      transform: new Rescale({ scale: 1 / 255 }),
      validationTransform: new Rescale({ scale: 1 / 255 }),
      seed: 1,
    });
    const best = Math.max(...result.history.map((h) => h.val_accuracy!));
    console.log(
      'synthetic validation accuracy per epoch',
      result.history.map((h) => h.val_accuracy!.toFixed(2)).join(' '),
    );
    expect(best).toBeGreaterThanOrEqual(0.5);
    model.dispose();
  }, 120_000);
});
