import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADABELIEF_UPDATE_KERNEL } from '../../src/backend/kernel-names.js';
import { setHeapSimdEnabled } from '../../src/backend/wasm/heap-simd.js';
import { registerWasmTrainingKernels } from '../../src/backend/wasm/index.js';
import { type AdaBeliefConfig, AdaBeliefOptimizer, adaBelief, registerAdaBelief } from '../../src/index.js';
import fixtures from '../fixtures/adabelief.json' with { type: 'json' };
import { useBackend } from '../helpers.js';

/** Maps the reference's PyTorch argument names onto this library's config. */
function toConfig(py: Record<string, unknown>): AdaBeliefConfig {
  const c: AdaBeliefConfig = {};
  if ('lr' in py) c.learningRate = py.lr as number;
  if ('eps' in py) c.epsilon = py.eps as number;
  if ('weight_decay' in py) c.weightDecay = py.weight_decay as number;
  if ('weight_decouple' in py) c.decoupledWeightDecay = py.weight_decouple as boolean;
  if ('fixed_decay' in py) c.fixedDecay = py.fixed_decay as boolean;
  if ('rectify' in py) c.rectify = py.rectify as boolean;
  if ('amsgrad' in py) c.amsgrad = py.amsgrad as boolean;
  if ('degenerated_to_sgd' in py) c.degeneratedToSgd = py.degenerated_to_sgd as boolean;
  if ('betas' in py) [c.beta1, c.beta2] = py.betas as [number, number];
  return c;
}

function relErr(a: tf.Tensor, b: number[][]): number {
  const x = a.dataSync();
  const y = b.flat();
  let worst = 0;
  for (let i = 0; i < y.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / Math.max(1e-3, Math.abs(y[i]!)));
  }
  return worst;
}

// 'wasm' runs the op-by-op update on the shipped kernels; 'wasm-fused' registers this library's
// wasm kernels, whose fused update replaces it (registration lasts for the rest of this file).
describe.each(['cpu', 'wasm', 'wasm-fused'] as const)(
  'AdaBelief trajectories match the reference (%s)',
  (mode) => {
    const backend = mode === 'cpu' ? 'cpu' : 'wasm';
    beforeAll(async () => {
      await useBackend(backend);
      if (mode === 'wasm-fused') registerWasmTrainingKernels();
      expect(tf.getKernel(ADABELIEF_UPDATE_KERNEL, backend) !== undefined).toBe(mode === 'wasm-fused');
    });

    for (const c of fixtures.cases) {
      it(`${c.name}: ${fixtures.steps} steps, learning rate halved at step ${fixtures.lrChangeAt}`, () => {
        const X = tf.tensor2d(fixtures.X);
        const Y = tf.tensor2d(fixtures.Y);
        const w1 = tf.variable(tf.tensor2d(fixtures.W1), true, `w1_${c.name}_${mode}`);
        const w2 = tf.variable(tf.tensor2d(fixtures.W2), true, `w2_${c.name}_${mode}`);
        const opt = adaBelief(toConfig(c.config));
        const loss = () =>
          tf.mean(tf.square(tf.sub(tf.matMul(tf.tanh(tf.matMul(X, w1)), w2), Y))) as tf.Scalar;
        let k = 0;
        let tensorsAfterFirst = 0;
        for (let step = 0; step < fixtures.steps; step++) {
          if (step === fixtures.lrChangeAt) opt.learningRate *= 0.5;
          const cost = opt.minimize(loss, true, [w1, w2])!;
          expect(cost.dataSync()[0]).toBeCloseTo(c.losses[step]!, 4);
          cost.dispose();
          if (step === 0) tensorsAfterFirst = tf.memory().numTensors;
          else expect(tf.memory().numTensors).toBe(tensorsAfterFirst); // no leak per step
          const ref = c.trajectory[k];
          if (ref && ref.step === step + 1) {
            expect(relErr(w1, ref.W1), `W1 at step ${ref.step}`).toBeLessThan(2e-4);
            expect(relErr(w2, ref.W2), `W2 at step ${ref.step}`).toBeLessThan(2e-4);
            k++;
          }
        }
        expect(k).toBe(c.trajectory.length);
        expect(opt.iterations).toBe(fixtures.steps);
        tf.dispose([X, Y, w1, w2]);
        opt.dispose();
      });
    }
  },
);

describe('AdaBelief fused update kernel (wasm)', () => {
  /** 12 steps on 1001 seeded values (SIMD vectors and a scalar tail), learning rate halved at 6. */
  async function trajectory(mode: 'cpu' | 'simd' | 'js', config: AdaBeliefConfig) {
    await useBackend(mode === 'cpu' ? 'cpu' : 'wasm');
    registerWasmTrainingKernels();
    setHeapSimdEnabled(mode !== 'js');
    try {
      const name = `fused_${mode}_${nameSeq++}`;
      const w = tf.tidy(() => tf.variable(tf.randomNormal([7, 11, 13], 0, 1, 'float32', 3), true, name));
      const target = tf.randomNormal([7, 11, 13], 0, 1, 'float32', 4);
      const opt = adaBelief(config);
      const kernels = new Set<string>();
      for (let step = 0; step < 12; step++) {
        if (step === 6) opt.learningRate *= 0.5;
        const profile = await tf.profile(() => {
          opt.minimize(
            () => tf.sum(tf.mul(tf.square(tf.sub(w, target)), tf.abs(target))) as tf.Scalar,
            false,
            [w],
          );
        });
        for (const k of profile.kernels) kernels.add(k.name);
      }
      const values = w.dataSync().slice();
      tf.dispose([w, target]);
      opt.dispose();
      return { values, fused: kernels.has(ADABELIEF_UPDATE_KERNEL) };
    } finally {
      setHeapSimdEnabled(true);
    }
  }
  let nameSeq = 0;

  const configs: [string, AdaBeliefConfig][] = [
    ['defaults (rectified, SGD steps first)', { learningRate: 0.05 }],
    ['rectified without SGD steps', { learningRate: 0.05, degeneratedToSgd: false, beta2: 0.99 }],
    ['not rectified, decoupled decay', { learningRate: 0.05, rectify: false, weightDecay: 0.1 }],
    [
      'L2 decay, fixed epsilon',
      { learningRate: 0.05, rectify: false, weightDecay: 5e-3, decoupledWeightDecay: false, epsilon: 1e-8 },
    ],
    ['fixed decay', { learningRate: 0.05, rectify: false, weightDecay: 1e-3, fixedDecay: true }],
  ];
  for (const [name, config] of configs) {
    it(`${name}: SIMD and JavaScript loops give the op-by-op float32 numbers`, async () => {
      const cpu = await trajectory('cpu', config);
      expect(cpu.fused).toBe(false);
      for (const mode of ['simd', 'js'] as const) {
        const before = tf.memory().numTensors;
        const wasm = await trajectory(mode, config);
        expect(tf.memory().numTensors).toBe(before);
        expect(wasm.fused, mode).toBe(true);
        let worst = 0;
        for (let i = 0; i < cpu.values.length; i++)
          worst = Math.max(
            worst,
            Math.abs(wasm.values[i]! - cpu.values[i]!) / Math.max(1e-6, Math.abs(cpu.values[i]!)),
          );
        expect(worst, mode).toBe(0); // the same float32 operations in the same order
      }
    });
  }

  it('AMSGrad keeps the op-by-op update (it has a third state tensor)', async () => {
    const amsgrad = await trajectory('simd', { learningRate: 0.05, amsgrad: true });
    expect(amsgrad.fused).toBe(false);
  });

  it('bad inputs to the kernel name the tensor', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const [p, g] = [tf.zeros([4]), tf.zeros([5])];
    expect(() =>
      tf.engine().runKernel(
        ADABELIEF_UPDATE_KERNEL,
        { p, g, m: p, s: p },
        {
          decay: 1,
          beta1: 0.9,
          beta2: 0.999,
          epsilon: 1e-16,
          root: 1,
          alpha: 0.1,
          sgd: false,
        },
      ),
    ).toThrow(/g is float32 \[5\], p \[4\]/);
    tf.dispose([p, g]);
  });
});

describe('AdaBelief as a tfjs citizen', () => {
  beforeAll(() => useBackend('cpu'));

  it('has a className, round-trips its config, and registers idempotently', () => {
    expect(AdaBeliefOptimizer.className).toBe('AdaBelief');
    const opt = adaBelief({ learningRate: 0.01, amsgrad: true, weightDecay: 1e-4 });
    const copy = AdaBeliefOptimizer.fromConfig(AdaBeliefOptimizer, opt.getConfig());
    expect(copy.getConfig()).toEqual(opt.getConfig());
    registerAdaBelief();
    registerAdaBelief();
    expect(tf.serialization.SerializationMap.getMap().classNameMap.AdaBelief?.[0]).toBe(AdaBeliefOptimizer);
  });

  it('loads 0.1.0 checkpoints, which named the belief state /v and /max_v', async () => {
    const a = tf.variable(tf.tensor1d([1, -2, 3]), true, 'legacy_a');
    const opt = adaBelief({ learningRate: 0.1, amsgrad: true });
    const loss = () => tf.sum(tf.square(a)) as tf.Scalar;
    for (let i = 0; i < 3; i++) opt.minimize(loss, false, [a]);
    const weights = await opt.getWeights();
    expect(weights.map((w) => w.name)).toEqual([
      'iter',
      'legacy_a/m',
      'legacy_a/s',
      'legacy_a/max_s',
      'legacy_a/step',
    ]);
    const old = weights.map((w) => ({
      ...w,
      name: w.name.replace(/\/s$/, '/v').replace(/\/max_s$/, '/max_v'),
    }));
    const restored = adaBelief({ learningRate: 0.1, amsgrad: true });
    await restored.setWeights(old);
    const again = await restored.getWeights();
    again.forEach((w, i) => {
      expect(w.name).toBe(weights[i]!.name);
      expect(Array.from(w.tensor.dataSync())).toEqual(Array.from(weights[i]!.tensor.dataSync()));
    });
    await expect(
      restored.setWeights([weights[0]!, { name: 'legacy_a/q', tensor: weights[1]!.tensor }]),
    ).rejects.toThrow(/unexpected weight 'legacy_a\/q' \(expected <variable>\/m, \/s, \/max_s or \/step\)/);
    opt.dispose();
    restored.dispose();
    a.dispose();
  });

  it('state is keyed by variable name: getWeights/setWeights restore it, and new variables do not scramble it', async () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'keyed_a');
    const b = tf.variable(tf.tensor1d([4, 5]), true, 'keyed_b');
    const opt = adaBelief({ learningRate: 0.1 });
    const lossA = () => tf.sum(tf.square(a)) as tf.Scalar;
    for (let i = 0; i < 3; i++) opt.minimize(lossA, false, [a]);
    // Unfreeze b later: it starts fresh, a keeps its state (its own step count goes on).
    const lossAB = () => tf.add(tf.sum(tf.square(a)), tf.sum(tf.square(b))) as tf.Scalar;
    opt.minimize(lossAB, false, [b, a]);
    const weights = await opt.getWeights();
    expect(weights.map((w) => w.name)).toEqual([
      'iter',
      'keyed_a/m',
      'keyed_a/s',
      'keyed_a/step',
      'keyed_b/m',
      'keyed_b/s',
      'keyed_b/step',
    ]);
    expect(weights[3]!.tensor.dataSync()[0]).toBe(4);
    expect(weights[6]!.tensor.dataSync()[0]).toBe(1);

    // A fresh optimizer given the weights in another order continues identically.
    const restored = adaBelief({ learningRate: 0.1 });
    await restored.setWeights([weights[0]!, ...weights.slice(4), ...weights.slice(1, 4)]);
    const snapshot = [a.clone(), b.clone()];
    opt.minimize(lossAB, false, [a, b]);
    const expected = [a.arraySync(), b.arraySync()];
    a.assign(snapshot[0]!);
    b.assign(snapshot[1]!);
    restored.minimize(lossAB, false, [a, b]);
    expect(a.arraySync()).toEqual(expected[0]);
    expect(b.arraySync()).toEqual(expected[1]);
    expect(restored.iterations).toBe(5);
    tf.dispose([a, b, ...snapshot, ...weights.filter((w) => w.name.endsWith('/step')).map((w) => w.tensor)]);
    opt.dispose();
    restored.dispose();
  });

  it('trains a tfjs-layers model with compile + fit, and its state survives model save/load', async () => {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [4], units: 8, activation: 'relu' }),
        tfl.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    model.compile({
      optimizer: adaBelief({ learningRate: 0.01 }),
      loss: 'categoricalCrossentropy',
      metrics: ['accuracy'],
    });
    const xs = tf.randomNormal([64, 4], 0, 1, 'float32', 1);
    const labels = tf.tidy(() => tf.argMax(tf.matMul(xs, tf.randomNormal([4, 3], 0, 1, 'float32', 2)), 1));
    const ys = tf.oneHot(labels as tf.Tensor1D, 3);
    const history = await model.fit(xs, ys, { epochs: 30, batchSize: 16, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.7);

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    expect((saved!.trainingConfig!.optimizer_config as { class_name?: string }).class_name).toBe('AdaBelief');
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved!));
    expect(loaded.optimizer).toBeInstanceOf(AdaBeliefOptimizer);
    const before = await model.optimizer.getWeights();
    const after = await loaded.optimizer.getWeights();
    expect(after.length).toBe(before.length);
    expect(after[0]!.tensor.dataSync()[0]).toBe(before[0]!.tensor.dataSync()[0]);
    for (let i = 1; i < before.length; i++) {
      expect(Array.from(after[i]!.tensor.dataSync())).toEqual(Array.from(before[i]!.tensor.dataSync()));
    }
    tf.dispose([xs, labels, ys]);
    model.dispose();
    loaded.dispose();
  });

  it('bad hyperparameters throw clear errors', () => {
    expect(() => adaBelief({ learningRate: -1 })).toThrow(
      'Error in adaBelief: learningRate must be >= 0, got -1',
    );
    expect(() => adaBelief({ beta1: 1 })).toThrow('Error in adaBelief: beta1 must be < 1, got 1');
    expect(() => adaBelief({ beta2: -0.1 })).toThrow('Error in adaBelief: beta2 must be >= 0, got -0.1');
    expect(() => adaBelief({ epsilon: 0 })).toThrow('Error in adaBelief: epsilon must be > 0, got 0');
    expect(() => adaBelief({ weightDecay: -1 })).toThrow(/weightDecay must be >= 0/);
  });
});
