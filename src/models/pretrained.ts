import type { TransformJSON } from '../transforms/base.js';

/** Where a set of published weights lives, how to check it, and what input it expects. */
export interface WeightsDescriptor {
  name: string;
  fileName: string;
  url: string;
  /** md5 of the file, or null where the publisher gives none (then the file is not verified). */
  md5: string | null;
  /** Input size the weights were trained at, `[height, width, channels]`. */
  inputShape: [number, number, number];
  /** Preprocessing the backbone expects, as a transform pipeline in JSON (see `transformFromJSON`). */
  preprocessing: TransformJSON;
  format: 'keras-h5';
  includeTop: boolean;
}

const KERAS_RESNET = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/';

/**
 * Keras's published ImageNet weights for ResNet50V2 (file names and md5 sums as in
 * `keras.applications.resnet_v2`). Inputs scaled as `x / 127.5 - 1` at 224x224.
 */
export const RESNET50V2_IMAGENET: { notop: WeightsDescriptor; top: WeightsDescriptor } = {
  notop: {
    name: 'resnet50v2-imagenet-notop',
    fileName: 'resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5',
    url: `${KERAS_RESNET}resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5`,
    md5: 'fac2f116257151a9d068a22e544a4917',
    inputShape: [224, 224, 3],
    preprocessing: { name: 'Rescale', config: { scale: 1 / 127.5, offset: -1 } },
    format: 'keras-h5',
    includeTop: false,
  },
  top: {
    name: 'resnet50v2-imagenet',
    fileName: 'resnet50v2_weights_tf_dim_ordering_tf_kernels.h5',
    url: `${KERAS_RESNET}resnet50v2_weights_tf_dim_ordering_tf_kernels.h5`,
    md5: '3ef43a0b657b3be2300d5770ece849e0',
    inputShape: [224, 224, 3],
    preprocessing: { name: 'Rescale', config: { scale: 1 / 127.5, offset: -1 } },
    format: 'keras-h5',
    includeTop: true,
  },
};
