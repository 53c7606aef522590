/**
 * SIMD loops over the wasm backend's heap (`heap-simd.wat`), instantiated against the
 * backend's own memory so that they read and write tensors in place. Where they cannot be
 * instantiated (a browser without SIMD, a backend that hides its memory), `heapSimd` returns
 * null and callers keep their JavaScript loops.
 */
import {
  HEAP_SIMD_CONV_FMA_SHARED,
  HEAP_SIMD_CONV_FMA_UNSHARED,
  HEAP_SIMD_CONV_SHARED,
  HEAP_SIMD_CONV_UNSHARED,
  HEAP_SIMD_SHARED,
  HEAP_SIMD_TRAIN_SHARED,
  HEAP_SIMD_TRAIN_UNSHARED,
  HEAP_SIMD_UNSHARED,
  HEAP_SIMD_WINOGRAD_FMA_SHARED,
  HEAP_SIMD_WINOGRAD_FMA_UNSHARED,
  HEAP_SIMD_WINOGRAD_SHARED,
  HEAP_SIMD_WINOGRAD_UNSHARED,
} from './heap-simd.generated.js';

/**
 * A depthwise gradient loop: two inputs and the output (byte offsets), then the geometry of
 * `depthwiseGeometry` (depthwise.ts): n, ih, iw, c, oh, ow, kh, kw, sh, sw, pt, pl.
 */
type DepthwiseLoop = (a: number, b: number, out: number, ...geometry: number[]) => void;

/**
 * The modules' exports (heap-simd.wat, heap-simd-train.wat, heap-simd-winograd.wat,
 * heap-simd-conv.wat); pointers are byte offsets into the backend's heap.
 */
export interface HeapSimd {
  /** dst[r, j] = src[r, j] * a[j] + b[j], for `rows` rows of `c` values. */
  affine_channels(src: number, dst: number, a: number, b: number, rows: number, c: number): void;
  /** One AdaBelief step over `n` values; see heap-simd.wat for the formulas. */
  adabelief(
    p: number,
    g: number,
    m: number,
    s: number,
    pOut: number,
    mOut: number,
    sOut: number,
    n: number,
    decay: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    eps: number,
    root: number,
    alpha: number,
    sgd: number,
  ): void;
  /**
   * Depthwise filter gradient of images [0, n) accumulated into `out` (channel multiplier 1,
   * dilation 1); see heap-simd-train.wat.
   */
  depthwise_filter_grad: DepthwiseLoop;
  /** n unsigned bytes at src as float32 at dst; see heap-simd-train.wat. */
  bytes_to_float(src: number, dst: number, n: number): void;
  /** Runs of `run` bytes (a multiple of 4) copied in reverse order; see heap-simd-train.wat. */
  reverse_runs(src: number, dst: number, len: number, run: number): void;
  /** Runs of `run` bytes gathered by int32 indices, per outer block; see heap-simd-train.wat. */
  gather_runs(
    src: number,
    idx: number,
    dst: number,
    outer: number,
    size: number,
    count: number,
    run: number,
  ): void;
  /**
   * Depthwise input gradient of images [0, n) (channel multiplier 1, dilation 1, c a multiple of
   * 4); see heap-simd-train.wat.
   */
  depthwise_input_grad: DepthwiseLoop;
  /**
   * One tap of a convolution filter gradient into its [ci, co] block of `out`; see heap-simd.wat
   * (ci a multiple of 4, co of 8).
   */
  conv_filter_grad(
    x: number,
    dy: number,
    out: number,
    n: number,
    ih: number,
    oh: number,
    h0: number,
    sh: number,
    xRow: number,
    xStep: number,
    dyRow: number,
    count: number,
    ci: number,
    co: number,
  ): void;
  /** acc[j] += src[r, j] over a float32 [rows, cols] matrix into a zeroed float64 [cols] buffer. */
  column_sums(src: number, rows: number, cols: number, acc: number): void;
  /** dst[b, j, i] = src[b, i, j] for `batch` row-major [rows, cols] matrices of 4-byte values. */
  transpose_2d(src: number, dst: number, batch: number, rows: number, cols: number): void;
  /** dst[c, m, a] = src[a, m, c] for 4-byte values. */
  transpose_210(src: number, dst: number, a: number, m: number, c: number): void;
  /** dst[m, a, :] = src[a, m, :] for rows of c 4-byte values. */
  swap_rows_102(src: number, dst: number, a: number, m: number, c: number): void;
  /** MaxPool 2x2/2 gradient for channels a multiple of 4; see heap-simd.wat. */
  maxpool_grad_2x2(
    x: number,
    g: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
  ): void;
  /**
   * A single-channel 3x3 stride-1 convolution of n images h x w into oh x ow x co (co a multiple
   * of 32), zero-padded by `top` and `left`, plus `bias` [co] (0: none), then act (0 linear,
   * 1 ReLU, 2 ReLU6); see heap-simd-conv.wat.
   */
  conv1_forward(
    x: number,
    f: number,
    y: number,
    bias: number,
    act: number,
    n: number,
    h: number,
    w: number,
    co: number,
    oh: number,
    ow: number,
    top: number,
    left: number,
  ): void;
  /**
   * c [m, n] = act(bias [n] + a [m, k] . w [k, n]), m a multiple of 4, n of 8 (bias 0: none; act 0
   * linear, 1 ReLU, 2 ReLU6): a 1x1 convolution's forward pass; see heap-simd-conv.wat.
   */
  pointwise_forward(
    a: number,
    w: number,
    c: number,
    bias: number,
    act: number,
    m: number,
    k: number,
    n: number,
  ): void;
  /** dst[r, j] = (src[r, j] - a[j]) / b[j] for r < rows, j < c; see heap-simd-conv.wat. */
  sub_div_channels(src: number, dst: number, a: number, b: number, rows: number, c: number): void;
  /** dst[i] = src[i] * w (init 1) or dst[i] += src[i] * w (init 0), for `n` float32 values. */
  axpy(dst: number, src: number, n: number, w: number, init: number): void;
  /**
   * A separable blur's horizontal pass with reflect padding over `rows` rows of w pixels of c
   * floats, `ntaps` float32 taps at `taps`; see heap-simd-train.wat.
   */
  blur_rows(x: number, dst: number, rows: number, w: number, c: number, taps: number, ntaps: number): void;
  /** Its vertical pass over n images of h rows of `row` floats; see heap-simd-train.wat. */
  blur_cols(x: number, dst: number, n: number, h: number, row: number, taps: number, ntaps: number): void;
  /**
   * Nearest-neighbour rotation of n images h x w x c about their centre, `cos` and `sin` of the
   * angle in float64, `fill` outside; see heap-simd-conv.wat.
   */
  rotate_nearest(
    x: number,
    dst: number,
    n: number,
    h: number,
    w: number,
    c: number,
    cos: number,
    sin: number,
    fill: number,
  ): void;
  /**
   * Per-channel float64 sums of a and of a * b over rows (b = a: squares), into acc and acc2; a
   * counted only where lo < y < hi when y is not 0 (lo, hi: float32 bits); see heap-simd-train.wat.
   */
  column_moments(
    a: number,
    b: number,
    rows: number,
    c: number,
    acc: number,
    acc2: number,
    y: number,
    lo: number,
    hi: number,
  ): void;
  /**
   * dst[r, j] = g[r, j] * p[j] + ((x[r, j] - mean[j]) * q[j] + s[j]), with mean, p, q, s the four
   * consecutive [c] vectors at `f`; g counted only where lo < y < hi when y is not 0, dst clamped
   * to [lo, hi] when clamp is not 0 (lo, hi: float32 bits); see heap-simd-train.wat.
   */
  centered_affine(
    x: number,
    g: number,
    dst: number,
    f: number,
    rows: number,
    c: number,
    y: number,
    lo: number,
    hi: number,
    clamp: number,
  ): void;
  /** One step of tfjs's Adam over `n` values; see heap-simd-train.wat. */
  adam(
    p: number,
    g: number,
    m: number,
    v: number,
    pOut: number,
    mOut: number,
    vOut: number,
    n: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    c1: number,
    c2: number,
    eps: number,
    negLearningRate: number,
  ): void;
  /** out[i] = lo <= x[i] <= hi ? dy[i] : 0, for `n` values; lo and hi as their float32 bits. */
  clip_grad(x: number, dy: number, out: number, n: number, loBits: number, hiBits: number): void;
  /**
   * Winograd F(4x4, 3x3) forward pass over tiles [t0, t1): input transform, 36 products with U,
   * output transform plus a bias, then ReLU (act 1) or ReLU6 (act 2); x [n, h, w, ci] read as if
   * zero-padded by `top` and `left`. See heap-simd-winograd.wat.
   */
  wino_forward(
    x: number,
    u: number,
    y: number,
    bias: number,
    act: number,
    h: number,
    w: number,
    ci: number,
    co: number,
    oh: number,
    ow: number,
    top: number,
    left: number,
    scr: number,
    t0: number,
    t1: number,
  ): void;
  /**
   * c = a . b (init 1) or c += a . b (init 0), row-major [m, k] . [k, n] with rows of a `lda`
   * floats apart, n a multiple of 8; reads up to 3 rows of a past m. See heap-simd-winograd.wat.
   */
  gemm(a: number, b: number, c: number, m: number, k: number, n: number, lda: number, init: number): void;
  /**
   * c = a^T . b (init 1) or c += a^T . b (init 0), a [m, k] with rows `lda` floats apart, b [m, n],
   * c [k, n]; k a multiple of 4, n of 8. See heap-simd-winograd.wat.
   */
  gemm_tn(a: number, b: number, c: number, m: number, k: number, n: number, lda: number, init: number): void;
  /**
   * dU += V_p^T . (A dy A^T)_p over tiles [t0, t1): x as in wino_forward, dy [n, oh, ow, co]
   * zero-padded to whole tiles. See heap-simd-winograd.wat.
   */
  wino_filter_grad(
    x: number,
    dy: number,
    du: number,
    h: number,
    w: number,
    top: number,
    left: number,
    ci: number,
    co: number,
    oh: number,
    ow: number,
    scr: number,
    t0: number,
    t1: number,
  ): void;
}

interface EmscriptenModule {
  wasmMemory?: unknown;
  asm?: { memory?: unknown };
}

const instances = new WeakMap<WebAssembly.Memory, HeapSimd | null>();
let enabled = true;

/** Turns the SIMD loops off or on (tests use it to exercise the JavaScript fallbacks). */
export function setHeapSimdEnabled(on: boolean): void {
  enabled = on;
}

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** `setRelaxedSimd`'s setting (null: not set, fused where supported). */
let relaxed: boolean | null = null;
/** Whether the engine validates relaxed SIMD (null: not asked yet). */
let relaxedValid: boolean | null = null;
/** The choice made when the loops were first loaded (null: not yet). */
let chosen: boolean | null = null;

/**
 * Whether this engine runs WebAssembly's relaxed SIMD (its fused multiply-add): Node 22 and later,
 * Chrome and Edge 114 and later, Firefox 146 and later (not Safari); Node 20 with
 * `--experimental-wasm-relaxed-simd`.
 */
export function relaxedSimdSupported(): boolean {
  relaxedValid ??= WebAssembly.validate(decode(HEAP_SIMD_CONV_FMA_UNSHARED));
  return relaxedValid;
}

/**
 * Whether the heap's product loops (the Winograd, GEMM, 1x1 and first-layer convolution loops)
 * fuse their multiply-adds (relaxed SIMD's `f32x4.relaxed_madd`): by default wherever the engine
 * runs relaxed SIMD ({@link relaxedSimdSupported}). Fused, each product rounds once instead of
 * twice: within float32 rounding of the unfused loops and of XNNPACK (no longer the same bits), the
 * same on any number of threads, and the BUSI recipe's epochs 8-12% faster on a 2-core AVX2
 * machine (`docs/results.md`). `setRelaxedSimd(false)` keeps the unfused loops, for numbers
 * bit for bit those of XNNPACK's kernels. Call it before `setupBackend`: the choice is fixed when
 * the loops are first loaded.
 */
export function setRelaxedSimd(on: boolean): void {
  if (typeof on !== 'boolean')
    throw new Error(`medimg-classify: setRelaxedSimd takes true or false, got ${JSON.stringify(on)}`);
  if (chosen !== null && chosen !== (on && relaxedSimdSupported()))
    throw new Error(
      `medimg-classify: setRelaxedSimd(${on}) comes after the heap loops were loaded ${chosen ? 'with' : 'without'} fused multiply-adds; call it before setupBackend (the main thread and the pool's workers must run the same loops)`,
    );
  relaxed = on;
}

/**
 * Whether the heap's product loops fuse their multiply-adds in this process (see
 * {@link setRelaxedSimd}); fixed when the loops are first loaded, for the main thread and the
 * heap pool's workers alike.
 */
export function usesRelaxedSimd(): boolean {
  return chosen ?? ((relaxed ?? true) && relaxedSimdSupported());
}

/** The modules' bytes, for a shared memory (tfjs's threaded build) or an unshared one. */
export function heapSimdModules(shared: boolean): Uint8Array<ArrayBuffer>[] {
  chosen ??= usesRelaxedSimd();
  // The product loops' modules in their fused form where chosen (scripts/build-heap-simd.mjs).
  const [winograd, conv] = chosen
    ? shared
      ? [HEAP_SIMD_WINOGRAD_FMA_SHARED, HEAP_SIMD_CONV_FMA_SHARED]
      : [HEAP_SIMD_WINOGRAD_FMA_UNSHARED, HEAP_SIMD_CONV_FMA_UNSHARED]
    : shared
      ? [HEAP_SIMD_WINOGRAD_SHARED, HEAP_SIMD_CONV_SHARED]
      : [HEAP_SIMD_WINOGRAD_UNSHARED, HEAP_SIMD_CONV_UNSHARED];
  return (
    shared
      ? [HEAP_SIMD_SHARED, HEAP_SIMD_TRAIN_SHARED, winograd, conv]
      : [HEAP_SIMD_UNSHARED, HEAP_SIMD_TRAIN_UNSHARED, winograd, conv]
  ).map(decode);
}

/** The SIMD loops bound to `backend`'s heap, or null where they are not available. */
export function heapSimd(backend: unknown): HeapSimd | null {
  if (!enabled) return null;
  const wasm = (backend as { wasm?: EmscriptenModule }).wasm;
  const memory = wasm?.wasmMemory ?? wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  const cached = instances.get(memory);
  if (cached !== undefined) return cached;
  let simd: HeapSimd | null = null;
  try {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    // Each under 4 KB, so synchronous compilation is allowed on a browser's main thread too.
    const exports = heapSimdModules(shared).map(
      (bytes) => new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports,
    );
    simd = Object.assign({}, ...exports) as HeapSimd;
  } catch {
    simd = null;
  }
  instances.set(memory, simd);
  return simd;
}
