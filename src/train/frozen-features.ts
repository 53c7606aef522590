/**
 * The frozen-feature cache of `train`: a model whose first layers are frozen (a pretrained
 * backbone with its last blocks unfrozen) computes the same output of those layers for the same
 * image every epoch. When the training pipeline's random choices are discrete (flips: each
 * transform says what it chose, `Transform.variant`), each image has only a few variants, so
 * `train` computes the frozen layers once per image and variant, keeps their output (the
 * "cut": for MobileNetV2-0.35 at 224 with blocks 13-16 trainable, 14 x 14 x 32 floats = 25 KB per
 * image) and runs only the layers after it from the second time an image comes back the same.
 * Validation images (no augmentation) hit from the second epoch on. Images whose choices are
 * continuous (rotation, blur, erasing: no variant) are not kept; a batch of only such images runs
 * the whole model. Values are those of the whole model: the frozen layers run the same kernels on
 * the same images.
 *
 * The split is planned on the model's graph (nested models included): the frozen part is every
 * layer, from the input on, that has no trained weight and computes the same in training and
 * inference (convolutions, frozen BatchNormalization, activations, pooling, merges; no dropout
 * or noise). It must meet the rest at exactly one tensor (a residual connection that crosses it
 * leaves no single cut, and then nothing is cached).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { withFoldPlan } from '../backend/patches/fold-batchnorm.js';
import { hasKerasBatchNorm } from '../backend/patches/keras-batchnorm.js';
import type { Batch } from '../data/loader.js';
import {
  type Graph,
  type GraphNode,
  graphOf,
  nodesInRunOrder,
  type GraphTensor as Sym,
} from '../models/layers.js';
import { check } from '../util/errors.js';

type Layer = tfl.layers.Layer;
type Kwargs = { training: boolean };

/** Layers whose output depends only on their input and weights, in training as in inference. */
const SAME_IN_TRAINING = new Set([
  'Conv1D',
  'Conv2D',
  'Conv3D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'Conv2DTranspose',
  'Dense',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'PReLU',
  'ThresholdedReLU',
  'Softmax',
  'Add',
  'Subtract',
  'Multiply',
  'Average',
  'Maximum',
  'Minimum',
  'Concatenate',
  'ZeroPadding2D',
  'Cropping2D',
  'UpSampling2D',
  'MaxPooling1D',
  'MaxPooling2D',
  'AveragePooling1D',
  'AveragePooling2D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling1D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  'Permute',
  'Rescaling',
  'Normalization',
]);

/** Where the frozen part meets the rest: `tensor` of the graph of `path.at(-1)`, reached through `path`. */
interface Cut {
  path: Layer[];
  tensor: Sym;
}

/**
 * Whether `layer` computes the same in training as in inference with the weights it has now
 * (none of them trained). A BatchNormalization runs in inference mode while training only when it
 * is frozen itself and has the Keras semantics (`installKerasBatchNorm`, which the library's
 * builders and `finalizeModel` install); tfjs-layers' own uses batch statistics.
 */
function runsFrozen(layer: Layer, trained: Set<unknown>): boolean {
  if (layer.weights.some((w) => trained.has(w))) return false;
  const name = layer.getClassName();
  if (name === 'BatchNormalization') return layer.trainable === false && hasKerasBatchNorm(layer);
  return SAME_IN_TRAINING.has(name);
}

/**
 * The single tensor where the frozen part of `container`'s graph, from its inputs on, meets the
 * rest; 'all' when every output is frozen, 'none' when there is no single such tensor. `worked`:
 * the tensors (of this graph and the graphs nested in it) computed by a frozen layer with weights
 * or after one, where a cut saves work (a cut after a padding layer alone would not).
 */
function findCut(container: Layer, trained: Set<unknown>, worked: Set<number>): Cut | 'all' | 'none' {
  const g = graphOf(container) as Graph;
  const frozen = new Set(g.inputs.map((t) => t.id));
  const cuts = new Map<string, Cut>();
  const add = (cut: Cut) => cuts.set(`${cut.path.map((l) => l.name).join('/')}:${cut.tensor.id}`, cut);
  const here = (tensor: Sym) => add({ path: [container], tensor });
  for (const node of nodesInRunOrder(g)) {
    const layer = node.outboundLayer;
    if (layer.getClassName() === 'InputLayer') continue;
    const inputs = node.inputTensors;
    if (!inputs.every((t) => frozen.has(t.id))) {
      for (const t of inputs) if (frozen.has(t.id)) here(t);
      continue;
    }
    const inner = graphOf(layer);
    if (inner) {
      if (inputs.length !== 1 || inner.inputs.length !== 1) return 'none';
      if (worked.has((inputs[0] as Sym).id)) worked.add((inner.inputs[0] as Sym).id);
      const found = findCut(layer, trained, worked);
      if (found === 'all') {
        for (const t of node.outputTensors) frozen.add(t.id);
        if (inner.outputs.some((t) => worked.has(t.id))) for (const t of node.outputTensors) worked.add(t.id);
      } else if (found === 'none') return 'none';
      else if (found.path.length === 1 && found.tensor.id === (inner.inputs[0] as Sym).id)
        here(inputs[0] as Sym);
      else add({ path: [container, ...found.path], tensor: found.tensor });
    } else if (runsFrozen(layer, trained)) {
      const work = layer.weights.length > 0 || inputs.some((t) => worked.has(t.id));
      for (const t of node.outputTensors) {
        frozen.add(t.id);
        if (work) worked.add(t.id);
      }
    } else for (const t of inputs) here(t);
  }
  if (g.outputs.every((t) => frozen.has(t.id))) return 'all';
  for (const t of g.outputs) if (frozen.has(t.id)) here(t);
  return cuts.size === 1 ? ([...cuts.values()][0] as Cut) : 'none';
}

/** The node of `g` that runs the nested model `layer` (exactly one). */
function nodeOf(g: Graph, layer: Layer): GraphNode | undefined {
  const nodes = nodesInRunOrder(g).filter((n) => n.outboundLayer === layer);
  return nodes.length === 1 ? nodes[0] : undefined;
}

/**
 * Computes `targets` of `container`'s graph from the `known` values, running only the layers
 * they need, in the model's order, with the container's fold plan, as `container.call` does.
 * In inference, an intermediate is disposed as soon as its last consumer has run (as tfjs-layers'
 * executor does); in training, the caller's tidy disposes them after the gradient.
 */
function evaluate(
  container: Layer,
  known: Map<number, tf.Tensor>,
  targets: Sym[],
  kwargs: Kwargs,
): tf.Tensor[] {
  const g = graphOf(container) as Graph;
  const need = new Set(targets.filter((t) => !known.has(t.id)).map((t) => t.id));
  const steps: GraphNode[] = [];
  for (const node of nodesInRunOrder(g).reverse()) {
    if (!node.outputTensors.some((t) => need.has(t.id))) continue;
    steps.push(node);
    for (const t of node.inputTensors) if (!known.has(t.id)) need.add(t.id);
  }
  steps.reverse();
  // Uses left per tensor object (a layer may hand its input on as its output).
  const uses = new Map<tf.Tensor, number>();
  const consumers = new Map<number, number>();
  for (const node of steps)
    for (const t of node.inputTensors) consumers.set(t.id, (consumers.get(t.id) ?? 0) + 1);
  const keep = new Set<tf.Tensor>(known.values());
  const targetIds = new Set(targets.map((t) => t.id));
  const values = new Map(known);
  const bind = (s: Sym, value: tf.Tensor) => {
    values.set(s.id, value);
    uses.set(value, (uses.get(value) ?? 0) + (consumers.get(s.id) ?? 0));
    if (targetIds.has(s.id)) keep.add(value);
  };
  for (const [id, value] of known) uses.set(value, (uses.get(value) ?? 0) + (consumers.get(id) ?? 0));
  return withFoldPlan(g, () => {
    for (const node of steps) {
      const inputs = node.inputTensors.map((t) => {
        const value = values.get(t.id);
        check(value !== undefined, 'frozenFeatures', `no value for ${t.name} (the graph has no single cut)`);
        return value;
      });
      const out = node.outboundLayer.apply(inputs, kwargs) as tf.Tensor | tf.Tensor[];
      const outs = Array.isArray(out) ? out : [out];
      node.outputTensors.forEach((s, i) => bind(s, outs[i] as tf.Tensor));
      if (kwargs.training) continue;
      for (const value of inputs) {
        const left = (uses.get(value) ?? 0) - 1;
        uses.set(value, left);
        if (left <= 0 && !keep.has(value)) value.dispose();
      }
    }
    return targets.map((t) => values.get(t.id) as tf.Tensor);
  });
}

/**
 * A model cut in two where its frozen part ends: `prefix` computes the cut from images, `suffix`
 * the model's output from the cut.
 */
export class FrozenSplit {
  /** Shape of the cut for one image. */
  readonly shape: number[];
  /** Name of the layer whose output is the cut (e.g. `block_12_add`). */
  readonly name: string;
  private readonly path: Layer[];
  private readonly tensor: Sym;
  private readonly trained: unknown[];

  /** @internal Use {@link frozenSplit}. */
  constructor(cut: Cut, trained: unknown[]) {
    this.path = cut.path;
    this.tensor = cut.tensor;
    this.trained = trained;
    this.shape = cut.tensor.shape.slice(1) as number[];
    this.name = cut.tensor.sourceLayer.name;
  }

  /** Whether the model still trains exactly the weights it trained when this split was planned. */
  matches(model: tfl.LayersModel): boolean {
    const now = model.trainableWeights;
    return now.length === this.trained.length && now.every((w, i) => w === this.trained[i]);
  }

  /** The cut for a batch of images (inference mode: the frozen layers compute the same in both). */
  prefix(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let value = x;
      this.path.forEach((container, d) => {
        const g = graphOf(container) as Graph;
        const next = this.path[d + 1];
        const target = next ? ((nodeOf(g, next) as GraphNode).inputTensors[0] as Sym) : this.tensor;
        value = evaluate(container, new Map([[(g.inputs[0] as Sym).id, value]]), [target], {
          training: false,
        })[0] as tf.Tensor;
      });
      return value;
    });
  }

  /** The model's output from the cut, as `model.apply(x, { training })` computes it. */
  suffix(cut: tf.Tensor, training: boolean): tf.Tensor {
    const run = (d: number): tf.Tensor => {
      const container = this.path[d] as Layer;
      const g = graphOf(container) as Graph;
      const next = this.path[d + 1];
      const from = next ? ((nodeOf(g, next) as GraphNode).outputTensors[0] as Sym) : this.tensor;
      const value = next ? run(d + 1) : cut;
      return evaluate(container, new Map([[from.id, value]]), g.outputs.slice(0, 1), {
        training,
      })[0] as tf.Tensor;
    };
    return training ? run(0) : tf.tidy(() => run(0));
  }
}

/**
 * Plans where `model`'s frozen part ends ({@link FrozenSplit}), or null where nothing would be
 * saved: no frozen layer with weights before the first trained one, no single cut, nested models
 * run more than once, or a model with more than one input or output.
 */
export function frozenSplit(model: tfl.LayersModel): FrozenSplit | null {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return null;
  const trained = model.trainableWeights;
  const worked = new Set<number>();
  const found = findCut(model as unknown as Layer, new Set(trained), worked);
  if (found === 'all' || found === 'none' || !worked.has(found.tensor.id)) return null;
  // Each nested model on the way runs once here and has one output (findCut checked the inputs).
  for (let d = 0; d + 1 < found.path.length; d++) {
    const next = found.path[d + 1] as Layer;
    const node = nodeOf(graphOf(found.path[d] as Layer) as Graph, next);
    if (node?.outputTensors.length !== 1 || (graphOf(next) as Graph).outputs.length !== 1) return null;
  }
  return new FrozenSplit(found, trained);
}

/** How a {@link FrozenFeatureCache} did. */
export interface FrozenFeatureStats {
  /** The layer whose output is cached. */
  cut: string;
  /** Images whose cut came from the cache / was computed. */
  hits: number;
  misses: number;
  /** Bytes held (at most the cache's `maxBytes`). */
  bytes: number;
}

/** The cache's key of sample `index` with `variant`. */
const keyOf = (index: number, variant: string) => `${index}\u0000${variant}`;

/**
 * The cut of each image and variant a source has produced, up to `maxBytes`: what a batch of
 * that source needs from the frozen layers, computed only for images not seen before.
 */
export class FrozenFeatureCache {
  private readonly entries = new Map<string, Float32Array>();
  private readonly size: number;
  private stats = { hits: 0, misses: 0, bytes: 0 };

  constructor(
    readonly split: FrozenSplit,
    private readonly maxBytes: number,
  ) {
    this.size = split.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether the cut of sample `index` with `variant` is kept (`batches`' `skip`). */
  has(index: number, variant: string): boolean {
    return this.entries.has(keyOf(index, variant));
  }

  /**
   * The cut for `batch`, `[B, ...split.shape]`: kept values for images seen before with the same
   * variant, the frozen layers for the others (kept while they fit in `maxBytes`, unless the
   * transform could not say what it chose: a `null` variant). Null, and nothing counted, where no
   * image of the batch has a variant (a continuous augmentation): the whole model then runs,
   * which measured ~5% faster than the frozen layers apart (BUSI's recipe, epochs of 480 images
   * in one process, ABBA). A batch whose `xs` holds only some images (`loaded`, from `batches`'
   * `skip`) must hold every image whose cut is not kept.
   */
  features(batch: Batch): tf.Tensor | null {
    const { variants, loaded } = batch;
    const keys = batch.indices.map((index, k) => {
      const variant = variants?.[k];
      return variant === null || variant === undefined ? null : keyOf(index, variant);
    });
    if (keys.every((key) => key === null)) {
      check(!loaded, 'train', 'a batch with images left out has no image with a variant');
      return null;
    }
    const shape = [keys.length, ...this.split.shape];
    const out = new Float32Array(keys.length * this.size);
    const missing: number[] = [];
    keys.forEach((key, k) => {
      const entry = key === null ? undefined : this.entries.get(key);
      if (entry) out.set(entry, k * this.size);
      else missing.push(k);
    });
    this.stats.hits += keys.length - missing.length;
    this.stats.misses += missing.length;
    if (!missing.length) return tf.tensor(out, shape);
    // Rows of xs: the batch positions themselves, or where `loaded` puts them.
    const row = loaded ? new Map(loaded.map((k, j) => [k, j])) : null;
    const rows = missing.map((k) => {
      const r = row ? row.get(k) : k;
      check(
        r !== undefined,
        'train',
        `sample ${batch.indices[k]} was left out of its batch, but its frozen features are not kept`,
      );
      return r;
    });
    const all = rows.length === batch.xs.shape[0];
    const fresh = tf.tidy(() => this.split.prefix(all ? batch.xs : tf.gather(batch.xs, rows)));
    // Nothing kept and no room to keep any: the frozen layers' output as it is.
    if (missing.length === keys.length && this.stats.bytes + this.size * 4 > this.maxBytes) return fresh;
    const data = fresh.dataSync() as Float32Array;
    fresh.dispose();
    missing.forEach((k, j) => {
      const one = data.subarray(j * this.size, (j + 1) * this.size);
      out.set(one, k * this.size);
      const key = keys[k];
      if (key !== null && this.stats.bytes + one.byteLength <= this.maxBytes) {
        this.entries.set(key as string, one.slice());
        this.stats.bytes += one.byteLength;
      }
    });
    return tf.tensor(out, shape);
  }

  /** Hits, misses and bytes so far. */
  summary(): FrozenFeatureStats {
    return { cut: this.split.name, ...this.stats };
  }
}
