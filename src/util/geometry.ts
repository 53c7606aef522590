/** Pixel geometry shared by the transforms and the wasm kernels that run them. */
/**
 * Python's round(): halves go to the even neighbour (torchvision computes sizes with it; WebAssembly's
 * `f64.nearest` rounds the same way).
 */
export function roundHalfEven(x: number): number {
  // Math.round rounds halves up; a half (r - x exactly 0.5) that went to an odd number goes down.
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Source pixel (flat index `row * width + col`, or -1 outside) for each output pixel of a
 * nearest-neighbour rotation by `angle` degrees counter-clockwise about the image centre, as
 * torchvision's `grid_sample` path. The wasm kernel (`rotate_nearest` in heap-simd-conv.wat)
 * computes the same float64 expressions in the same order.
 */
export function rotationSourceIndex(height: number, width: number, angle: number): Int32Array {
  const rad = (angle * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const out = new Int32Array(height * width);
  for (let y = 0; y < height; y++) {
    const py = y + 0.5 - height / 2;
    for (let x = 0; x < width; x++) {
      const px = x + 0.5 - width / 2;
      // Inverse rotation of the output position (y axis points down, angle counter-clockwise).
      const sx = cos * px - sin * py;
      const sy = sin * px + cos * py;
      const col = roundHalfEven(sx + width / 2 - 0.5);
      const row = roundHalfEven(sy + height / 2 - 0.5);
      out[y * width + x] = row >= 0 && row < height && col >= 0 && col < width ? row * width + col : -1;
    }
  }
  return out;
}

/**
 * Copies `n` images of `pixels` pixels of `c` values from `src` to `dst` (offsets `s`, `d` in
 * values), each output pixel from its `source` pixel, or `fill` where that is -1.
 */
export function gatherRotated(
  src: Float32Array,
  s: number,
  dst: Float32Array,
  d: number,
  n: number,
  c: number,
  source: Int32Array,
  fill: number,
): void {
  const pixels = source.length;
  for (let b = 0; b < n; b++) {
    const base = b * pixels * c;
    for (let p = 0; p < pixels; p++) {
      const from = source[p] as number;
      const o = d + base + p * c;
      if (from < 0) dst.fill(fill, o, o + c);
      else for (let k = 0, i = s + base + from * c; k < c; k++) dst[o + k] = src[i + k] as number;
    }
  }
}
