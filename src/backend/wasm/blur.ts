import { SEPARABLE_BLUR_KERNEL, type SeparableBlurAttrs } from '../kernel-names.js';
import type { HeapBackend, KernelArgs, TensorInfo } from './common.js';
import { heapSimd } from './heap-simd.js';

/** Reflect padding's source of position `i` on an axis of `size` (no edge repeat, as torch). */
const reflect = (i: number, size: number) => (i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i);

/**
 * A separable blur with reflect padding on the heap: a horizontal pass into a scratch buffer,
 * then a vertical one, each tap one multiply-add over a contiguous run (`axpy` in SIMD, or the
 * same float32 operations in JavaScript). tfjs's path (MirrorPad + two depthwise convolutions,
 * which build an XNNPACK operator for each new filter) took ~7 ms per 224x224x3 image, and the
 * gray path's banded matrix products ~16 ms per 224x224 plane.
 */
export function separableBlur({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const b = backend as HeapBackend;
  const { x } = inputs as { x: TensorInfo };
  const { kx, ky } = attrs as unknown as SeparableBlurAttrs;
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const px = (kx.length - 1) / 2;
  const py = (ky.length - 1) / 2;
  if (x.dtype !== 'float32' || x.shape.length !== 4 || !Number.isInteger(px) || !Number.isInteger(py))
    throw new Error(
      `medimg-classify: ${SEPARABLE_BLUR_KERNEL} needs a float32 NHWC image and odd taps; got ${x.dtype} [${x.shape}], ${kx.length}x${ky.length} taps`,
    );
  if (px >= w || py >= h)
    throw new Error(
      `medimg-classify: ${SEPARABLE_BLUR_KERNEL}: taps ${kx.length}x${ky.length} too wide for ${h}x${w}`,
    );
  const out = b.makeOutput([n, h, w, c], 'float32');
  const tmp = b.makeOutput([n, h, w, c], 'float32');
  const simd = heapSimd(b);
  if (simd) {
    // Both passes in the heap loops, one call each (an axpy call per row and tap, ~3,600 per
    // 224x224x3 image, cost ~0.3 ms in calls alone): the same operations in the same order.
    const taps = b.makeOutput([kx.length + ky.length], 'float32');
    b.typedArrayFromHeap(taps).set([...kx, ...ky]);
    const [px0, pt, po, ptaps] = [x, tmp, out, taps].map((t) => b.getMemoryOffset(t.dataId)) as number[];
    simd.blur_rows(px0 as number, pt as number, n * h, w, c, ptaps as number, kx.length);
    simd.blur_cols(pt as number, po as number, n, h, w * c, (ptaps as number) + 4 * kx.length, ky.length);
    b.disposeData(taps.dataId);
    b.disposeData(tmp.dataId);
    return out;
  }
  // Without the loops: one tap over `len` values, dst[d + i] (=|+=) src[s + i] * tap (offsets in
  // values), as the loops' axpy computes it in float32. Views after makeOutput: allocating may
  // grow (and move) the heap.
  const view = new Map([x, out, tmp].map((t) => [t, b.typedArrayFromHeap(t) as Float32Array] as const));
  const f = Math.fround;
  const axpy = (
    dst: TensorInfo,
    d: number,
    src: TensorInfo,
    s: number,
    len: number,
    tap: number,
    init: boolean,
  ): void => {
    const dv = view.get(dst) as Float32Array;
    const sv = view.get(src) as Float32Array;
    const t = f(tap);
    for (let i = 0; i < len; i++) {
      const a = f((sv[s + i] as number) * t);
      dv[d + i] = init ? a : f((dv[d + i] as number) + a);
    }
  };
  const row = w * c;
  // Horizontal: for each row and tap, the interior in one run, the reflected edges pixel by pixel.
  for (let r = 0; r < n * h; r++) {
    const o = r * row;
    kx.forEach((tap, k) => {
      const shift = k - px;
      const lo = Math.max(0, -shift);
      const hi = Math.min(w, w - shift);
      if (hi > lo) axpy(tmp, o + lo * c, x, o + (lo + shift) * c, (hi - lo) * c, tap, k === 0);
      // The columns whose tap falls in the reflected border: at most the tap's shift on each side
      // (walking every column for them took most of the time on 224-wide images).
      for (let col = 0; col < Math.min(lo, w); col++)
        axpy(tmp, o + col * c, x, o + reflect(col + shift, w) * c, c, tap, k === 0);
      for (let col = Math.max(hi, lo); col < w; col++)
        axpy(tmp, o + col * c, x, o + reflect(col + shift, w) * c, c, tap, k === 0);
    });
  }
  // Vertical: each output row is a weighted sum of whole (reflected) rows.
  for (let img = 0; img < n; img++)
    for (let y = 0; y < h; y++) {
      const o = (img * h + y) * row;
      ky.forEach((tap, k) => {
        axpy(out, o, tmp, (img * h + reflect(y + k - py, h)) * row, row, tap, k === 0);
      });
    }
  b.disposeData(tmp.dataId);
  return out;
}
