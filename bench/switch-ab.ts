/**
 * A library switch's effect on whole training steps, on and off alternating in one process
 * (ten rounds of two steps each way, ABBA order), on wasm with every core:
 *   node --import tsx bench/switch-ab.ts directConv|pointwiseForward|fusedConvTraining|winograd|batchNormFolding|fusedAdam|balancedPool simple-cnn|user-cnn|mobilenetv2|resnet50v2 [size] [full|frozen|conv5|last-block|blocks-13|inference]
 * Runs minutes apart on these machines differ by more than most single changes; alternating in
 * one process keeps both sides on the same machine state. Prints the median step each way and
 * the median of the paired ratios (on / off: below 1, the switch on is faster).
 */
import {
  setBalancedPool,
  setBatchNormFolding,
  setDirectConv,
  setFusedAdam,
  setFusedConvTraining,
  setPointwiseForward,
  setupBackend,
  setWinograd,
} from '../src/node.js';
import { alternate, type BenchModel, type BenchTrain, benchModel, benchStep, median } from './common.js';

const SWITCHES: Record<string, (on: boolean) => void> = {
  directConv: setDirectConv,
  pointwiseForward: setPointwiseForward,
  fusedConvTraining: setFusedConvTraining,
  winograd: setWinograd,
  batchNormFolding: setBatchNormFolding,
  fusedAdam: setFusedAdam,
  balancedPool: setBalancedPool,
};
const [which = 'directConv', name = 'simple-cnn', sizeArg, trainArg = 'full'] = process.argv.slice(2);
const set = SWITCHES[which];
if (!set) throw new Error(`unknown switch '${which}': one of ${Object.keys(SWITCHES).join(', ')}`);
const channels = name.endsWith('cnn') ? 1 : 3;
const size = Number(sizeArg ?? (channels === 1 ? 128 : 224));
await setupBackend('wasm');
const model = benchModel(name as BenchModel, trainArg as BenchTrain, size, channels);
const step = benchStep(model, trainArg as BenchTrain, 32, size, channels);
const times = await alternate(10, set, async () => {
  const t0 = performance.now();
  await step();
  await step();
  return (performance.now() - t0) / 2;
});
const ratio = median(times.on.map((t, i) => t / (times.off[i] as number)));
console.log(
  `${which} on ${name} ${size} ${trainArg}, batch 32: on ${median(times.on).toFixed(1)} ms, off ${median(times.off).toFixed(1)} ms per step; paired ratio on/off ${ratio.toFixed(3)}`,
);
