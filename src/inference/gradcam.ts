import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { check, MedimgError } from '../util/errors.js';

type Layer = tfl.layers.Layer;

/** Result of {@link gradCam}: a heat map in [0, 1] at the input's size, and the class explained. */
export interface GradCamResult {
  heatmap: tf.Tensor2D;
  classIndex: number;
  probabilities: number[];
  layerName: string;
}

function inboundLayers(layer: Layer): Layer[] {
  const nodes = (layer as unknown as { inboundNodes: { inboundLayers: Layer[] }[] }).inboundNodes;
  return nodes.flatMap((n) => n.inboundLayers);
}

/**
 * Grad-CAM (Selvaraju et al. 2017): weights the feature maps of a convolutional layer by the
 * mean gradient of the class score and keeps the positive part, showing where the model
 * looked. The default layer is the last layer of the model whose output is a feature map
 * (for a transfer model, its backbone); the layers after it must form a chain.
 *
 * @example
 * const { heatmap, classIndex } = gradCam(model, image);
 */
export function gradCam(
  model: tfl.LayersModel,
  image: tf.Tensor3D | tf.Tensor4D,
  options: { layerName?: string; classIndex?: number } = {},
): GradCamResult {
  const op = 'gradCam';
  check(
    image.rank === 3 || (image.rank === 4 && image.shape[0] === 1),
    op,
    `image must be H x W x C or 1 x H x W x C, got [${image.shape}]`,
  );
  const layers = model.layers;
  let index: number;
  if (options.layerName) {
    index = layers.findIndex((l) => l.name === options.layerName);
    check(
      index >= 0,
      op,
      `no top-level layer named '${options.layerName}' (layers: ${layers.map((l) => l.name).join(', ')})`,
    );
  } else {
    index = -1;
    for (let i = layers.length - 1; i >= 0; i--) {
      const shape = (layers[i] as Layer).outputShape as number[];
      if (Array.isArray(shape) && shape.length === 4 && !Array.isArray(shape[0])) {
        index = i;
        break;
      }
    }
    check(index >= 0, op, 'the model has no layer with a feature-map (4-D) output');
  }
  const target = layers[index] as Layer;
  const tail = layers.slice(index + 1);
  tail.forEach((layer, k) => {
    const prev = k === 0 ? target : (tail[k - 1] as Layer);
    const ins = inboundLayers(layer);
    if (ins.length !== 1 || ins[0] !== prev) {
      throw new MedimgError(
        op,
        `the layers after '${target.name}' do not form a chain (at '${layer.name}'): pass a layerName nearer the output`,
      );
    }
  });
  const features = tfl.model({ inputs: model.inputs, outputs: outputInModel(model, target) });
  const batch = image.rank === 3 ? tf.expandDims(image, 0) : image;
  try {
    return tf.tidy(() => {
      const maps = features.predict(batch) as tf.Tensor4D;
      const head = (a: tf.Tensor) =>
        tail.reduce((x, layer) => layer.apply(x, { training: false }) as tf.Tensor, a) as tf.Tensor2D;
      const probs = head(maps);
      const probabilities = Array.from(probs.dataSync());
      const classIndex = options.classIndex ?? probabilities.indexOf(Math.max(...probabilities));
      check(
        Number.isInteger(classIndex) && classIndex >= 0 && classIndex < probabilities.length,
        op,
        `classIndex must be in [0, ${probabilities.length}), got ${classIndex}`,
      );
      const grads = tf.grad((a: tf.Tensor) => tf.sum(tf.slice(head(a), [0, classIndex], [1, 1])))(
        maps,
      ) as tf.Tensor4D;
      const weights = tf.mean(grads, [1, 2], true); // [1, 1, 1, K]
      let cam = tf.relu(tf.sum(tf.mul(maps, weights), 3, true)) as tf.Tensor4D; // [1, h, w, 1]
      const max = tf.max(cam);
      cam = tf.div(cam, tf.maximum(max, 1e-12)) as tf.Tensor4D;
      const [h, w] = [batch.shape[1] as number, batch.shape[2] as number];
      const heatmap = tf.reshape(tf.image.resizeBilinear(cam, [h, w], false, true), [h, w]) as tf.Tensor2D;
      return {
        heatmap,
        classIndex,
        probabilities,
        layerName: target.name,
      } as unknown as tf.TensorContainerObject;
    }) as unknown as GradCamResult;
  } finally {
    if (batch !== image) batch.dispose();
  }
}

/**
 * The target layer's output in `model`'s graph. A nested backbone has an inbound node per model it
 * was applied in (its own, the classifier's), where `layer.output` would be ambiguous.
 */
function outputInModel(model: tfl.LayersModel, layer: Layer): tfl.SymbolicTensor {
  const nodes = (layer as unknown as { inboundNodes: unknown[] }).inboundNodes;
  if (nodes.length <= 1) return layer.output as tfl.SymbolicTensor;
  const inModel = (model as unknown as { containerNodes: Set<string> }).containerNodes;
  for (let i = nodes.length - 1; i >= 0; i--)
    if (inModel.has(`${layer.name}_ib-${i}`)) return layer.getOutputAt(i) as tfl.SymbolicTensor;
  throw new MedimgError('gradCam', `layer '${layer.name}' is not connected in this model`);
}

/**
 * Colours a heat map (jet-like colormap) and blends it over a grayscale or RGB image:
 * returns 8-bit RGB pixels `H x W x 3`, ready to write as PNG.
 */
export function gradCamOverlay(
  image: tf.Tensor3D,
  heatmap: tf.Tensor2D,
  options: { alpha?: number } = {},
): Uint8Array {
  const [h, w, c] = image.shape;
  check(
    heatmap.shape[0] === h && heatmap.shape[1] === w,
    'gradCamOverlay',
    `heatmap [${heatmap.shape}] does not match the image [${image.shape}]`,
  );
  const alpha = options.alpha ?? 0.45;
  const img = image.dataSync();
  const heat = heatmap.dataSync();
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of img) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const scale = hi > lo ? 255 / (hi - lo) : 1;
  const out = new Uint8Array(h * w * 3);
  for (let i = 0; i < h * w; i++) {
    const t = heat[i] as number;
    const jet = [
      clamp01(1.5 - Math.abs(4 * t - 3)),
      clamp01(1.5 - Math.abs(4 * t - 2)),
      clamp01(1.5 - Math.abs(4 * t - 1)),
    ];
    for (let k = 0; k < 3; k++) {
      const base = ((img[i * c + Math.min(k, c - 1)] as number) - lo) * scale;
      const a = alpha * Math.min(1, t * 1.5);
      out[i * 3 + k] = Math.round(base * (1 - a) + 255 * (jet[k] as number) * a);
    }
  }
  return out;
}

const clamp01 = (v: number) => (v < 0 ? 0 : Math.min(v, 1));
