import * as tf from '@tensorflow/tfjs-core';

export type TensorInfo = tf.TensorInfo;
export type Backend = tf.KernelBackend & { disposeData(dataId: object, force?: boolean): boolean };
export type Attrs = Record<string, unknown>;

export function call(
  name: string,
  backend: Backend,
  inputs: Record<string, TensorInfo> | TensorInfo[],
  attrs: Attrs = {},
): TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new Error(`medimg-classify: wasm kernel '${name}' is not registered`);
  return kernel.kernelFunc({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend,
    attrs: attrs as tf.NamedAttrMap,
  }) as TensorInfo;
}

/** Runs `fn` with a scratch list; every TensorInfo pushed there except the result is freed. */
export function scoped(
  backend: Backend,
  fn: (keep: <T extends TensorInfo>(t: T) => T) => TensorInfo,
): TensorInfo {
  const scratch: TensorInfo[] = [];
  const keep = <T extends TensorInfo>(t: T): T => {
    scratch.push(t);
    return t;
  };
  const result = fn(keep);
  // Dispose by identity: a reshape shares its input's buffer and holds a reference of its own.
  for (const t of scratch) if (t !== result) backend.disposeData(t.dataId);
  return result;
}

export const reshape = (b: Backend, x: TensorInfo, shape: number[]) => call('Reshape', b, { x }, { shape });

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs: Attrs };
export type Shape4 = [number, number, number, number];
export interface ConvAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The shipped wasm kernel of `name`, captured before this library replaces it. */
export const shipped = new Map<string, tf.KernelFunc>();
export function original(
  name: string,
  b: Backend,
  inputs: Record<string, TensorInfo> | TensorInfo[],
  attrs: Attrs = {},
): TensorInfo {
  const fn = shipped.get(name);
  if (!fn) throw new Error(`medimg-classify: no shipped wasm kernel '${name}'`);
  return fn({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend: b,
    attrs: attrs as tf.NamedAttrMap,
  }) as TensorInfo;
}

/** Axes as sorted non-negative numbers. */
export function normAxes(axis: number | number[] | null | undefined, rank: number): number[] {
  const list = axis == null ? Array.from({ length: rank }, (_, i) => i) : Array.isArray(axis) ? axis : [axis];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

/** The wasm backend's view of its heap (public methods of BackendWasm). */
export type HeapBackend = Backend & {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  getMemoryOffset(dataId: object): number;
};

/** The float32 bits of each value as an int32: how the heap loops take floats (i32 parameters). */
export const floatBits = (...values: number[]): number[] =>
  Array.from(new Int32Array(Float32Array.from(values).buffer));
