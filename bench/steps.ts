/**
 * Per-step times of one training step on a fixed random batch (`benchStep`), from the first:
 *   node --import tsx bench/steps.ts simple-cnn|user-cnn|mobilenetv2|resnet50v2 [size] [batch] [full|frozen|conv5|last-block|blocks-13|inference] [steps]
 * The first steps grow the wasm heap and page-fault on it; the bench's model rows time steps 2-3,
 * so this shows when a change moves the warm-up rather than the steady state. To compare two
 * commits, run it in a worktree of each, one after the other.
 */
import { setupBackend } from '../src/node.js';
import { type BenchModel, type BenchTrain, benchModel, benchStep } from './common.js';

const [name = 'simple-cnn', sizeArg, batchArg, trainArg = 'full', stepsArg = '7'] = process.argv.slice(2);
const size = Number(sizeArg ?? (name.endsWith('cnn') ? 128 : 224));
const batch = Number(batchArg ?? 32);
const channels = name.endsWith('cnn') ? 1 : 3;
const backend = await setupBackend(
  'wasm',
  process.env.THREADS ? { threads: Number(process.env.THREADS) } : {},
);
const model = benchModel(name as BenchModel, trainArg as BenchTrain, size, channels);
const step = benchStep(model, trainArg as BenchTrain, batch, size, channels);
const times: number[] = [];
for (let i = 0; i < Number(stepsArg); i++) {
  const t0 = performance.now();
  await step();
  times.push(performance.now() - t0);
}
console.log(
  `${name} ${size} b${batch} ${trainArg}, wasm ${backend.threads} thread(s), ms per step: ${times.map((t) => t.toFixed(0)).join(' ')}`,
);
