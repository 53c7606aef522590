import * as tf from '@tensorflow/tfjs-core';
import { SEPARABLE_BLUR_KERNEL, type SeparableBlurAttrs } from '../../backend/kernel-names.js';
import { check, checkNumber } from '../../util/errors.js';
import { type Image, imageSize, mapBatch } from './_image.js';

export interface GaussianBlurOptions {
  /** Odd kernel size, or `[kx, ky]` (width, height) as torchvision. */
  kernelSize: number | readonly [number, number];
  /** Standard deviation (> 0), or `[sx, sy]`. */
  sigma: number | readonly [number, number];
}

/** torchvision's 1-D kernel: a normalised Gaussian over `linspace(-(k-1)/2, (k-1)/2, k)`. */
export function gaussianKernel1d(kernelSize: number, sigma: number): number[] {
  const half = (kernelSize - 1) * 0.5;
  const values: number[] = [];
  for (let i = 0; i < kernelSize; i++) {
    const x = -half + i;
    values.push(Math.exp(-0.5 * (x / sigma) ** 2));
  }
  const sum = values.reduce((a, b) => a + b, 0);
  return values.map((v) => v / sum);
}

/**
 * The `size x size` matrix applying a 1-D kernel with reflect padding (torchvision's 'reflect':
 * the edge sample is not repeated), so that `M . x` equals the padded correlation of `x`.
 */
export function blurMatrix(size: number, kernel: number[]): Float32Array {
  const half = (kernel.length - 1) / 2;
  const m = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let k = 0; k < kernel.length; k++) {
      let j = i + k - half;
      if (j < 0) j = -j;
      if (j >= size) j = 2 * (size - 1) - j;
      m[i * size + j] = (m[i * size + j] as number) + (kernel[k] as number);
    }
  }
  return m;
}

function transposeSquare(m: Float32Array, size: number): Float32Array {
  const t = new Float32Array(size * size);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) t[j * size + i] = m[i * size + j] as number;
  return t;
}

function pair(op: string, name: string, value: number | readonly [number, number]): [number, number] {
  if (typeof value === 'number') return [value, value];
  check(Array.isArray(value) && value.length === 2, op, `${name} must be a number or a pair [x, y]`);
  return [value[0], value[1]];
}

/**
 * Gaussian blur with torchvision's `F.gaussian_blur` semantics: separable normalised kernel,
 * reflect padding, same output size.
 *
 * @example
 * const soft = gaussianBlur(image, { kernelSize: 5, sigma: 1.2 });
 */
export function gaussianBlur<T extends Image>(image: T, options: GaussianBlurOptions): T {
  const op = 'gaussianBlur';
  const [kx, ky] = pair(op, 'kernelSize', options?.kernelSize);
  const [sx, sy] = pair(op, 'sigma', options.sigma);
  for (const k of [kx, ky]) {
    checkNumber(k, op, 'kernelSize', { integer: true, min: 1 });
    check(k % 2 === 1, op, `kernelSize must be odd, got ${k}`);
  }
  for (const s of [sx, sy]) checkNumber(s, op, 'sigma', { min: 0, minExclusive: true });
  const { height, width } = imageSize(image);
  check(
    Math.floor(kx / 2) < width && Math.floor(ky / 2) < height,
    op,
    `kernelSize [${kx}, ${ky}] needs reflect padding larger than the ${height}x${width} image allows`,
  );
  return mapBatch(op, image, (batch) => {
    // A backend with its own separable blur (wasm: on the heap) runs it; the rest compose ops.
    if (tf.getKernel(SEPARABLE_BLUR_KERNEL, tf.getBackend()) !== undefined) {
      const attrs: SeparableBlurAttrs = { kx: gaussianKernel1d(kx, sx), ky: gaussianKernel1d(ky, sy) };
      return tf
        .engine()
        .runKernel(SEPARABLE_BLUR_KERNEL, { x: batch }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    }
    const c = batch.shape[3];
    if (c === 1) {
      // Gray images: the separable blur with reflect padding is B_y . X . B_x^T with banded
      // matrices that fold the padding in; two small matrix products instead of pad + 2 convolutions.
      // (Batch dimensions broadcast; B_x is built transposed so that no transpose runs.)
      const by = tf.tensor3d(blurMatrix(height, gaussianKernel1d(ky, sy)), [1, height, height]);
      const bxT = tf.tensor3d(transposeSquare(blurMatrix(width, gaussianKernel1d(kx, sx)), width), [
        1,
        width,
        width,
      ]);
      const n = batch.shape[0];
      const planes = tf.reshape(batch, [n, height, width]);
      return tf.reshape(tf.matMul(tf.matMul(by, planes), bxT), [n, height, width, 1]);
    }
    const px = Math.floor(kx / 2);
    const py = Math.floor(ky / 2);
    const padded = tf.mirrorPad(
      batch,
      [
        [0, 0],
        [py, py],
        [px, px],
        [0, 0],
      ],
      'reflect',
    );
    const kxT = tf.tile(tf.reshape(tf.tensor1d(gaussianKernel1d(kx, sx)), [1, kx, 1, 1]), [
      1,
      1,
      c,
      1,
    ]) as tf.Tensor4D;
    const kyT = tf.tile(tf.reshape(tf.tensor1d(gaussianKernel1d(ky, sy)), [ky, 1, 1, 1]), [
      1,
      1,
      c,
      1,
    ]) as tf.Tensor4D;
    const horizontal = tf.depthwiseConv2d(padded, kxT, 1, 'valid');
    return tf.depthwiseConv2d(horizontal, kyT, 1, 'valid');
  });
}
