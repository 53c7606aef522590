export { countParams, type Pooling } from './common.js';
export { DENSENET_PREPROCESSING, type DenseNet121Options, densenet121 } from './densenet121.js';
export { type EfficientNetB0Options, efficientNetB0 } from './efficientnet-b0.js';
export { finalizeModel } from './finalize.js';
export { type KerasTopOptions, kerasTop } from './head.js';
export { KerasNormalization, type KerasNormalizationArgs } from './keras-normalization.js';
export { type MobileNetV2Options, makeDivisible, mobilenetV2 } from './mobilenet-v2.js';
export { RESNET50V2_IMAGENET, type WeightsDescriptor } from './pretrained.js';
export {
  BACKBONE_NAMES,
  BACKBONES,
  type BackboneBuildOptions,
  type BackboneSpec,
  backboneSpec,
  createBackbone,
} from './registry.js';
export { type ResNet50V2Options, resnet50v2 } from './resnet50v2.js';
export { type SimpleCnnOptions, simpleCnn } from './simple-cnn.js';
export {
  type BatchNormPolicy,
  blockNames,
  DEFAULT_FINE_TUNE_BN_MOMENTUM,
  flattenLayers,
  freeze,
  guardCompile,
  installKerasBatchNorm,
  type UnfreezeOptions,
  unfreeze,
} from './trainability.js';
export { type TransferModelOptions, transferModel } from './transfer.js';
export { assignWeightsByName, type NamedWeight, type WeightMatch, weightKey } from './weights.js';
