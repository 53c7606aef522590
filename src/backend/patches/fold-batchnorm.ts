/**
 * Patch: a convolution followed by a BatchNormalization in inference mode (and a ReLU or ReLU6)
 * runs as one fused convolution, per model. BatchNormalization in inference mode is a per-channel
 * affine map, so
 *   relu(bn(conv(x, W) + b)) = relu(conv(x, W * s) + (b - mean) * s + beta),  s = gamma / sqrt(var + eps)
 * and the folded weights (a few thousand values) replace two or three passes over every
 * activation (MobileNetV2-0.35 at 224, batch 32, on wasm: 52 BatchNormalization and 35 ReLU6
 * passes, about a third of a forward pass). Frozen layers (Keras semantics, `keras-batchnorm.ts`)
 * and every prediction and validation pass take this path; layers that train with batch
 * statistics do not.
 *
 * How: `finalizeModel` finds, in each functional model's graph, the chains conv -> BN (-> ReLU)
 * where each link has exactly one consumer and is not an output of the model. While that model
 * runs (its `call`, `predict`, `predictOnBatch`, `evaluate`), the convolution computes the
 * folded result and marks the tensor; the BatchNormalization (and ReLU) that receive the marked
 * tensor pass it on without computing.
 * A sub-model that outputs the convolution itself (`tf.model({outputs: conv.output})`) runs
 * without the fold, because the fold is planned per model and only for the model's own graph.
 * While a gradient is recorded, a fold on which no differentiated variable depends (a frozen
 * backbone's) runs off the tape (`untaped` in `unused-input-gradient.ts`), fully fused, and keeps
 * no tensors for the backward pass. Otherwise gradients flow through the folded weights
 * (trainable convolutions and BatchNormalization parameters in inference mode get theirs), and a
 * ReLU6 runs as its own layer, because tfjs has no gradient for a fused ReLU6.
 * Values match the unfolded layers to float32 rounding (the folded weights round once more).
 * Switch off: `setBatchNormFolding(false)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { type BatchNormLayer as BatchNormFields, batchNormMeasured } from '../../models/batchnorm.js';
import { graphOf, nodesInRunOrder, singleInput } from '../../models/layers.js';
import { BATCHNORM_TRAIN_KERNEL } from '../kernel-names.js';
import { independentOfGradientSources, untaped } from './unused-input-gradient.js';

type Layer = tfl.layers.Layer;
type Kwargs = Record<string, unknown> | undefined;
type Call = (inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs) => tf.Tensor | tf.Tensor[];

interface ConvLayer {
  kernel?: tfl.LayerVariable;
  depthwiseKernel?: tfl.LayerVariable;
  bias: tfl.LayerVariable | null;
  useBias: boolean;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number | number[];
  activation: { getClassName(): string } | null;
  rank: number;
}

type BatchNormLayer = BatchNormFields & { trainable: boolean };

/**
 * One fold: a convolution, the BatchNormalization after it, the activation after that and the
 * ZeroPadding2D before the convolution, if any.
 */
interface Fold {
  conv: Layer;
  bn: Layer;
  act?: { layer: Layer; fn: 'relu' | 'relu6' };
  pad?: { layer: Layer; pads: [number, number][] };
}

/** A model's folds, by convolution and by the ZeroPadding2D layer they absorb. */
interface Plan {
  convs: Map<Layer, Fold>;
  pads: Map<Layer, Fold>;
  /** The folds by BatchNormalization layer, for those followed by an activation. */
  acts: Map<Layer, Fold>;
}

const PATCHED = Symbol('medimg.foldBatchNorm');
let enabled = true;
/** The fold plans of the models running now, innermost last. */
const plans: Plan[] = [];
/** Each patched graph's plan, for code that runs part of a graph itself ({@link withFoldPlan}). */
const planOf = new WeakMap<object, Plan>();
/** Tensors a fold has computed ahead: the layers that will receive them and pass them on. */
const ahead = new WeakMap<tf.Tensor, Layer[]>();
/** Inputs a ZeroPadding2D left unpadded for the convolution that pads them itself. */
const unpadded = new WeakMap<tf.Tensor, Fold>();

/** Switches the folding off (`false`) or on again, for every model (on by default). */
export function setBatchNormFolding(on: boolean): void {
  enabled = on;
}

let fuseTrainingActivations = true;

/**
 * Switches off (`false`) or on again the ReLU or ReLU6 that a BatchNormalization training with
 * batch statistics applies itself ({@link trainingActivation}; on by default).
 */
export function setTrainingActivationFusion(on: boolean): void {
  fuseTrainingActivations = on;
}

/**
 * The activation after `bn` in the running model's plan (a conv -> BN -> ReLU/ReLU6 chain), for a
 * BatchNormalization that trains with batch statistics and where the backend applies the
 * activation in its training kernel (wasm, {@link BATCHNORM_TRAIN_KERNEL}): one pass forward and
 * none backward instead of the activation's own. The caller computes the activated output and
 * hands it to `handOn`, after which the activation layer passes it on without computing.
 * Undefined where that does not apply (the fusion off, no plan, no kernel).
 */
export function trainingActivation(
  bn: Layer,
): { fn: 'relu' | 'relu6'; handOn: (y: tf.Tensor) => void } | undefined {
  if (!fuseTrainingActivations || !tf.getKernel(BATCHNORM_TRAIN_KERNEL, tf.getBackend())) return undefined;
  const act = plans.at(-1)?.acts.get(bn)?.act;
  if (!act) return undefined;
  return { fn: act.fn, handOn: (y) => ahead.set(y, [act.layer]) };
}

/** Installs the fold on `model` and on every functional model nested in it (idempotent). */
export function installBatchNormFolding(model: tfl.LayersModel): void {
  const visit = (container: Layer) => {
    const inner = container as unknown as { layers?: Layer[] };
    // A Sequential runs through its inner functional model.
    const graph = graphOf(container);
    if (graph) installOn(graph as unknown as Layer);
    for (const layer of inner.layers ?? []) {
      if (Array.isArray((layer as unknown as { layers?: unknown }).layers)) visit(layer);
    }
  };
  visit(model as unknown as Layer);
}

function installOn(container: Layer): void {
  const target = container as unknown as { call: Call; [PATCHED]?: true };
  if (target[PATCHED]) return;
  target[PATCHED] = true;
  const convs = planFolds(container);
  if (convs.size === 0) return;
  const plan: Plan = { convs, pads: new Map(), acts: new Map() };
  planOf.set(container, plan);
  for (const [conv, fold] of convs) {
    patchConv(conv);
    patchPassThrough(fold.bn);
    if (fold.act) {
      patchPassThrough(fold.act.layer);
      plan.acts.set(fold.bn, fold);
    }
    if (fold.pad) {
      plan.pads.set(fold.pad.layer, fold);
      patchPad(fold.pad.layer);
    }
  }
  // Every way the model runs its own graph for its own outputs: as a layer (`apply`, a nested
  // backbone) and the synchronous top-level calls, which bypass `call`. `execute` with chosen
  // outputs, and asynchronous `fit`/`evaluateDataset`, run unfolded.
  const methods = target as unknown as Record<string, ((...args: unknown[]) => unknown) | undefined>;
  for (const name of ['call', 'predict', 'predictOnBatch', 'evaluate']) {
    const original = methods[name];
    if (typeof original !== 'function') continue;
    methods[name] = (...args: unknown[]) => {
      plans.push(plan);
      try {
        return original.apply(container, args);
      } finally {
        plans.pop();
      }
    };
  }
}

/**
 * Runs `fn` with the fold plan of `container` (a functional model's graph) in force, as its own
 * `call` does: for code that runs some of that graph's layers itself, layer by layer (the frozen
 * feature cache of `train`). Without a plan (nothing to fold, not installed) it just runs `fn`.
 */
export function withFoldPlan<R>(container: object, fn: () => R): R {
  const plan = planOf.get(container);
  if (!plan) return fn();
  plans.push(plan);
  try {
    return fn();
  } finally {
    plans.pop();
  }
}

/** The convolutions of `container`'s graph that can fold the BatchNormalization they feed. */
export function planFolds(container: Layer): Map<Layer, Fold> {
  const graph = graphOf(container);
  const plan = new Map<Layer, Fold>();
  if (!graph) return plan;
  const nodes = nodesInRunOrder(graph);
  const outputIds = new Set(graph.outputs.map((t) => t.id));
  // Consumers of each symbolic tensor, inside this graph.
  const consumers = new Map<number, Layer[]>();
  for (const node of nodes) {
    for (const t of node.inputTensors)
      consumers.set(t.id, [...(consumers.get(t.id) ?? []), node.outboundLayer]);
  }
  /** The only consumer of `layer`'s output, when `layer` runs once and its output goes nowhere else. */
  const soleConsumer = (layer: Layer): Layer | undefined => {
    if (layer.inboundNodes.length !== 1 || layer.outboundNodes.length !== 1) return undefined;
    const out = layer.output as unknown as { id: number };
    if (Array.isArray(out) || outputIds.has(out.id)) return undefined;
    const users = consumers.get(out.id) ?? [];
    const next = users[0];
    if (users.length !== 1 || !next || next.inboundNodes.length !== 1) return undefined;
    return next;
  };
  for (const node of nodes) {
    const conv = node.outboundLayer;
    if (!foldableConv(conv)) continue;
    const bn = soleConsumer(conv);
    if (bn?.getClassName() !== 'BatchNormalization') continue;
    const { axis } = bn as unknown as BatchNormLayer;
    if (axis !== -1 && axis !== 3) continue;
    const fold: Fold = { conv, bn };
    const after = soleConsumer(bn);
    const fn = after ? activationOf(after) : undefined;
    if (after && fn) fold.act = { layer: after, fn };
    const before = conv.inboundNodes[0]?.inboundLayers;
    const padLayer = before?.length === 1 ? before[0] : undefined;
    if (
      padLayer &&
      (conv as unknown as ConvLayer).padding === 'valid' &&
      padLayer.getClassName() === 'ZeroPadding2D' &&
      (padLayer as unknown as { dataFormat: string }).dataFormat === 'channelsLast' &&
      soleConsumer(padLayer) === conv
    ) {
      const [h, w] = (padLayer as unknown as { padding: [number, number][] }).padding;
      fold.pad = { layer: padLayer, pads: [[0, 0], h as [number, number], w as [number, number], [0, 0]] };
    }
    plan.set(conv, fold);
  }
  return plan;
}

function foldableConv(layer: Layer): boolean {
  const name = layer.getClassName();
  if (name !== 'Conv2D' && name !== 'DepthwiseConv2D') return false;
  const c = layer as unknown as ConvLayer;
  const dilations = Array.isArray(c.dilationRate) ? c.dilationRate : [c.dilationRate];
  return (
    c.rank === 2 &&
    c.dataFormat === 'channelsLast' &&
    (c.padding === 'same' || c.padding === 'valid') &&
    (c.activation == null || c.activation.getClassName() === 'linear') &&
    (name === 'Conv2D' || dilations.every((d) => d === 1))
  );
}

/** The fused activation a layer computes: a ReLU layer (bounded at 6 or not) or Activation('relu'). */
function activationOf(layer: Layer): 'relu' | 'relu6' | undefined {
  const name = layer.getClassName();
  if (name === 'ReLU') {
    const { maxValue } = layer as unknown as { maxValue?: number | null };
    if (maxValue == null) return 'relu';
    return maxValue === 6 ? 'relu6' : undefined;
  }
  if (name === 'Activation') {
    const { activation } = layer as unknown as { activation?: { getClassName(): string } };
    return activation?.getClassName() === 'relu' ? 'relu' : undefined;
  }
  return undefined;
}

/**
 * How a fold runs now, for input `x`: off the tape (`untaped`), with no tape to avoid (`plain`),
 * on the tape (`taped`: something differentiated depends on it), or not at all (`null`: the
 * BatchNormalization trains or is being measured, or folding is off).
 */
function foldMode(fold: Fold, x: tf.Tensor, kwargs: Kwargs): 'plain' | 'untaped' | 'taped' | null {
  const bn = fold.bn as unknown as BatchNormLayer;
  if (!enabled || (kwargs?.training === true && bn.trainable) || batchNormMeasured(fold.bn)) return null;
  if (!recording()) return 'plain';
  return independentOfGradientSources([x, ...variablesOf(fold.conv, fold.bn)]) ? 'untaped' : 'taped';
}

/** Replaces `layer`'s `call` with `make(original)`, once. */
function replaceCall(layer: Layer, make: (original: Call) => Call): void {
  const target = layer as unknown as { call: Call; [PATCHED]?: true };
  if (target[PATCHED]) return;
  target[PATCHED] = true;
  target.call = make(target.call.bind(layer));
}

function patchConv(layer: Layer): void {
  const target = layer as unknown as { dispose: () => unknown; [PATCHED]?: true };
  if (!target[PATCHED]) {
    const dispose = target.dispose.bind(layer);
    target.dispose = () => {
      dropFolded(layer);
      return dispose();
    };
  }
  replaceCall(layer, (original) => (inputs, kwargs) => {
    let x = singleInput(inputs);
    const fold = plans.at(-1)?.convs.get(layer);
    if (!x || !fold || x.rank !== 4 || x.dtype !== 'float32') return original(inputs, kwargs);
    const mode = foldMode(fold, x, kwargs);
    let pads = unpadded.get(x) === fold ? fold.pad?.pads : undefined;
    if (pads && mode !== 'plain' && mode !== 'untaped') {
      // The ZeroPadding2D deferred its padding to a fold that no longer runs: pad here.
      x = tf.pad(x, pads);
      pads = undefined;
      if (!mode) return original(x, kwargs);
    }
    if (!mode) return original(inputs, kwargs);
    const bn = fold.bn as unknown as BatchNormLayer;
    // tfjs computes no gradient for a fused ReLU6: on the tape, it stays a layer.
    const act = mode === 'taped' && fold.act?.fn === 'relu6' ? undefined : fold.act;
    const input = x;
    const run = () => foldedConv(layer, bn, input, act?.fn ?? 'linear', mode, pads);
    // Off the tape, nothing differentiated depends on this convolution (a frozen backbone's).
    const y = mode === 'untaped' ? untaped(run) : run();
    ahead.set(y, act ? [fold.bn, act.layer] : [fold.bn]);
    return y;
  });
}

/** A ZeroPadding2D before a fold passes its input on unpadded; the folded convolution pads. */
function patchPad(layer: Layer): void {
  replaceCall(layer, (original) => (inputs, kwargs) => {
    const x = singleInput(inputs);
    const fold = plans.at(-1)?.pads.get(layer);
    if (!x || !fold || x.rank !== 4 || x.dtype !== 'float32') return original(inputs, kwargs);
    const mode = foldMode(fold, x, kwargs);
    if (mode !== 'plain' && mode !== 'untaped') return original(inputs, kwargs);
    const y = mode === 'untaped' ? untaped(() => tf.reshape(x, x.shape)) : tf.reshape(x, x.shape);
    unpadded.set(y, fold);
    return y;
  });
}

function patchPassThrough(layer: Layer): void {
  replaceCall(layer, (original) => (inputs, kwargs) => {
    const x = singleInput(inputs);
    const pending = x ? ahead.get(x) : undefined;
    if (!x || pending?.[0] !== layer) return original(inputs, kwargs);
    // A new handle on the same values: the caller may dispose its input once this returns.
    const y = tf.reshape(x, x.shape);
    if (pending.length > 1) ahead.set(y, pending.slice(1));
    return y;
  });
}

/** The variables a fold reads: the convolution's and the BatchNormalization's. */
function variablesOf(conv: Layer, bn: Layer): tf.Tensor[] {
  return [...conv.weights, ...bn.weights].map((w) => w.read());
}

/** Whether the engine is recording operations for a gradient. */
function recording(): boolean {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
  return state.gradientDepth > 0;
}

/** Folded weights kept for the next call, with the variable values they were folded from. */
interface Folded {
  sources: object[];
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
}
const kept = new WeakMap<Layer, Folded>();

/**
 * The filter and bias with the BatchNormalization folded in: W * s and (b - mean) * s + beta.
 * Off the tape they are kept until a variable changes value (any `assign` gives it a new buffer),
 * the backend changes, or the layer is disposed: tfjs's wasm backend keys its packed weights on the filter tensor,
 * so a new filter each call would repack every layer (MobileNetV2: +20% on a forward pass).
 */
function foldedWeights(layer: Layer, bnLayer: BatchNormLayer, cache: boolean): Omit<Folded, 'sources'> {
  const conv = layer as unknown as ConvLayer;
  // The backend too: each rounds the fold its own way, and results stay the backend's own.
  const sources = [
    tf.backend(),
    ...[...layer.weights, ...(bnLayer as unknown as Layer).weights].map(
      (w) => (w.read() as unknown as { dataId: object }).dataId,
    ),
  ];
  const hit = kept.get(layer);
  if (cache && hit && hit.sources.length === sources.length && hit.sources.every((d, i) => d === sources[i]))
    return hit;
  const folded = tf.tidy(() => {
    const rstd = tf.rsqrt(tf.add(bnLayer.movingVariance.read(), tf.scalar(bnLayer.epsilon)));
    const scale = bnLayer.gamma ? tf.mul(bnLayer.gamma.read(), rstd) : rstd;
    const mean = bnLayer.movingMean.read();
    const shifted = conv.useBias && conv.bias ? tf.sub(conv.bias.read(), mean) : tf.neg(mean);
    const scaled = tf.mul(shifted, scale);
    const bias = (bnLayer.beta ? tf.add(scaled, bnLayer.beta.read()) : scaled) as tf.Tensor1D;
    if (conv.depthwiseKernel) {
      const kernel = conv.depthwiseKernel.read() as tf.Tensor4D;
      const [, , channels, multiplier] = kernel.shape;
      return { filter: tf.mul(kernel, tf.reshape(scale, [channels, multiplier])) as tf.Tensor4D, bias };
    }
    return { filter: tf.mul((conv.kernel as tfl.LayerVariable).read(), scale) as tf.Tensor4D, bias };
  });
  if (!cache) return folded;
  dropFolded(layer);
  kept.set(layer, { sources, filter: tf.keep(folded.filter), bias: tf.keep(folded.bias) });
  return folded;
}

/** Frees the folded weights kept for `layer`. */
function dropFolded(layer: Layer): void {
  const hit = kept.get(layer);
  if (!hit) return;
  kept.delete(layer);
  tf.dispose([hit.filter, hit.bias]);
}

/** The convolution with the BatchNormalization folded into its weights and bias. */
function foldedConv(
  layer: Layer,
  bnLayer: BatchNormLayer,
  x: tf.Tensor,
  activation: 'linear' | 'relu' | 'relu6',
  mode: 'plain' | 'untaped' | 'taped',
  explicitPads?: [number, number][],
): tf.Tensor {
  const conv = layer as unknown as ConvLayer;
  const cache = mode !== 'taped';
  return tf.tidy(() => {
    const { filter, bias } = foldedWeights(layer, bnLayer, cache);
    const strides = conv.strides as [number, number];
    // An absorbed ZeroPadding2D: explicit padding, which tfjs's convolutions take at run time.
    const pad = (explicitPads ?? conv.padding) as 'same' | 'valid';
    const args = { x: x as tf.Tensor4D, filter, strides, pad, dataFormat: 'NHWC' as const, bias, activation };
    if (conv.depthwiseKernel) return tf.fused.depthwiseConv2d(args);
    const dilations = (
      Array.isArray(conv.dilationRate) ? conv.dilationRate : [conv.dilationRate, conv.dilationRate]
    ) as [number, number];
    return tf.fused.conv2d({ ...args, dilations });
  });
}
