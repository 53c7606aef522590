import type * as tfl from '@tensorflow/tfjs-layers';
import type { Transform } from '../transforms/base.js';
import { Compose } from '../transforms/compose.js';
import { Normalize, Rescale } from '../transforms/intensity.js';
import { check } from '../util/errors.js';
import { DENSENET_PREPROCESSING, densenet121 } from './densenet121.js';
import { efficientNetB0 } from './efficientnet-b0.js';
import { mobilenetV2 } from './mobilenet-v2.js';
import { RESNET50V2_IMAGENET, type WeightsDescriptor } from './pretrained.js';
import { resnet50v2 } from './resnet50v2.js';

/** What {@link BackboneSpec.build} takes. */
export interface BackboneBuildOptions {
  inputShape: [number, number, number];
  seed?: number;
  /** Width multiplier, for backbones that have one (MobileNetV2). */
  alpha?: number;
}

/**
 * Everything the library knows about one pretrained architecture, in one place: how to build it
 * without its top, what its weights expect, how `unfreeze({ lastBlocks })` counts its blocks,
 * where the CLI starts fine-tuning, and its published ImageNet weights. The CLI (`--model`,
 * `--weights imagenet`, `--unfreeze-from`), `unfreeze` (and so `transferLearn`), the examples and
 * the docs read this table; adding an architecture is adding an entry (see ARCHITECTURE.md).
 */
export interface BackboneSpec {
  /** Name on the command line and in `createBackbone`. */
  name: string;
  /** Name in prose, e.g. `ResNet50V2`. */
  title: string;
  /** Builds the backbone without its top (a 4-D feature map), Keras layer names. */
  build: (options: BackboneBuildOptions) => tfl.LayersModel;
  /** The pipeline its pretrained weights expect, applied to 0-255 RGB images after decoding. */
  preprocessing: () => Transform;
  /** Matches the layer names of its blocks; group 1 is the block's name (`conv5_block3`, `block_16`). */
  blockPattern: RegExp;
  /**
   * First layer that fine-tuning trains: of its last stage (ResNet50V2's conv5, MobileNetV2's
   * blocks 13-16) or of its last block (DenseNet121, EfficientNetB0). `train --unfreeze-from`
   * defaults to it, and the examples and the README pass it as `phase2.unfreeze: { from:
   * spec.lastBlock }` (brain-tumor-mri's MobileNetV2 stage starts earlier, at `block_10_expand`).
   * `transferLearn` does not read it: without `phase2.unfreeze` it unfreezes `{ lastBlocks: 1 }`,
   * the last block `blockPattern` finds.
   */
  lastBlock: string;
  /** Input size its weights were trained at. */
  inputSize: number;
  /** Batch size that fine-tuning its last block fits in a 4 GB wasm heap at `inputSize`. */
  fineTuneBatchSize: number;
  /** Width multipliers it accepts (MobileNetV2), the first being the default. */
  alphas?: readonly number[];
  /** Keras's published ImageNet weights without top, for an input size and width. */
  imagenet: (options?: { alpha?: number; inputSize?: number }) => WeightsDescriptor;
}

const KERAS = 'https://storage.googleapis.com/tensorflow/keras-applications/';
const tfScaling = () => new Rescale({ scale: 1 / 127.5, offset: -1 });
const densenetScaling = () =>
  new Compose([
    new Rescale({ scale: 1 / 255 }),
    new Normalize({ mean: [...DENSENET_PREPROCESSING.mean], std: [...DENSENET_PREPROCESSING.std] }),
  ]);

/** The architectures this library builds with Keras's layer names, so Keras `.h5` weights load by name. */
export const BACKBONES: Readonly<Record<string, BackboneSpec>> = Object.freeze<Record<string, BackboneSpec>>({
  resnet50v2: {
    name: 'resnet50v2',
    title: 'ResNet50V2',
    build: ({ inputShape, seed }) => resnet50v2({ inputShape, ...(seed === undefined ? {} : { seed }) }),
    preprocessing: tfScaling,
    blockPattern: /^(conv\d+_block\d+)_/,
    lastBlock: 'conv5_block1_preact_bn',
    inputSize: 224,
    fineTuneBatchSize: 16,
    imagenet: () => RESNET50V2_IMAGENET.notop,
  },
  mobilenetv2: {
    name: 'mobilenetv2',
    title: 'MobileNetV2',
    build: ({ inputShape, seed, alpha }) =>
      mobilenetV2({ inputShape, alpha: alpha ?? 0.35, ...(seed === undefined ? {} : { seed }) }),
    preprocessing: tfScaling,
    blockPattern: /^(block_\d+|expanded_conv)_/,
    // The last stage: blocks 13-16 (the 160- and 320-channel blocks) and Conv_1.
    lastBlock: 'block_13_expand',
    inputSize: 224,
    fineTuneBatchSize: 32,
    alphas: [0.35, 0.5, 0.75, 1.0, 1.3, 1.4],
    imagenet: ({ alpha = 0.35, inputSize = 224 } = {}) => {
      check(
        [96, 128, 160, 192, 224].includes(inputSize),
        'BACKBONES.mobilenetv2.imagenet',
        `Keras publishes MobileNetV2 weights for inputs of 96, 128, 160, 192 and 224, not ${inputSize}`,
      );
      // Python's str(float(alpha)): 0.35, 0.5, 1.0, 1.4.
      const a = Number.isInteger(alpha) ? alpha.toFixed(1) : String(alpha);
      const fileName = `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${a}_${inputSize}_no_top.h5`;
      return {
        name: `mobilenetv2-${alpha}-${inputSize}-imagenet-notop`,
        fileName,
        url: `${KERAS}mobilenet_v2/${fileName}`,
        // keras.applications.mobilenet_v2 downloads these without a checksum.
        md5: null,
        inputShape: [inputSize, inputSize, 3],
        preprocessing: tfScaling().toJSON(),
        format: 'keras-h5',
        includeTop: false,
      };
    },
  },
  densenet121: {
    name: 'densenet121',
    title: 'DenseNet121',
    build: ({ inputShape, seed }) => densenet121({ inputShape, ...(seed === undefined ? {} : { seed }) }),
    preprocessing: densenetScaling,
    blockPattern: /^(conv\d+_block\d+)_/,
    lastBlock: 'conv5_block16_0_bn',
    inputSize: 224,
    fineTuneBatchSize: 16,
    imagenet: () => ({
      name: 'densenet121-imagenet-notop',
      fileName: 'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5',
      url: `${KERAS}densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5`,
      md5: '4912a53fbd2a69346e7f2c0b5ec8c6d3',
      inputShape: [224, 224, 3],
      preprocessing: densenetScaling().toJSON(),
      format: 'keras-h5',
      includeTop: false,
    }),
  },
  efficientnetb0: {
    name: 'efficientnetb0',
    title: 'EfficientNetB0',
    build: ({ inputShape, seed }) => efficientNetB0({ inputShape, ...(seed === undefined ? {} : { seed }) }),
    // The model rescales and normalises inside (its `rescaling` and `normalization` layers).
    preprocessing: () => new Compose([]),
    blockPattern: /^(block\d+[a-z])_/,
    lastBlock: 'block7a_expand_conv',
    inputSize: 224,
    fineTuneBatchSize: 16,
    imagenet: () => ({
      name: 'efficientnetb0-imagenet-notop',
      fileName: 'efficientnetb0_notop.h5',
      url: 'https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5',
      md5: '50bc09e76180e00e4465e1a485ddc09d',
      inputShape: [224, 224, 3],
      preprocessing: new Compose([]).toJSON(),
      format: 'keras-h5',
      includeTop: false,
    }),
  },
});

/** Names of the registered backbones. */
export const BACKBONE_NAMES: readonly string[] = Object.keys(BACKBONES);

/** The spec of a backbone by name, or a clear error listing the known ones. */
export function backboneSpec(name: string): BackboneSpec {
  const spec = BACKBONES[name.toLowerCase()];
  check(spec, 'backboneSpec', `unknown backbone '${name}': choose one of ${BACKBONE_NAMES.join(', ')}`);
  return spec as BackboneSpec;
}

/**
 * Builds a registered backbone without its top, at its weights' input size unless `inputShape`
 * says otherwise.
 *
 * @example
 * const backbone = createBackbone('mobilenetv2', { alpha: 0.35 });
 * await loadPretrained(backbone, 'mobilenetv2', { alpha: 0.35 }); // medimg-classify/node
 */
export function createBackbone(name: string, options: Partial<BackboneBuildOptions> = {}): tfl.LayersModel {
  const spec = backboneSpec(name);
  if (options.alpha !== undefined)
    check(
      spec.alphas?.includes(options.alpha) ?? false,
      'createBackbone',
      spec.alphas
        ? `alpha must be one of ${spec.alphas.join(', ')} for ${spec.title}, got ${options.alpha}`
        : `${spec.title} has no width multiplier (alpha)`,
    );
  return spec.build({
    inputShape: options.inputShape ?? [spec.inputSize, spec.inputSize, 3],
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.alpha === undefined ? {} : { alpha: options.alpha }),
  });
}
