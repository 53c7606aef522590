;; SIMD training loops over the wasm backend's heap, a second module beside heap-simd.wat (each
;; stays under the 4 KB a browser compiles synchronously): training-mode batch normalisation, on
;; row-major [rows, c] float32 tensors with per-channel vectors of c values, tfjs's Adam update,
;; the strided depthwise input gradient, the separable blur's passes, and copies (flips, gathers,
;; bytes to float32). Pointers are byte offsets.
;; Assembled into heap-simd.generated.ts by scripts/build-heap-simd.mjs.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; dst[i] = src[i] * w (init = 1) or dst[i] += src[i] * w (init = 0), i < n: one tap of a
  ;; separable filter over a contiguous run (the Gaussian blur kernel, blur.ts).
  (func $axpy (export "axpy")
    (param $dst i32) (param $src i32) (param $n i32) (param $w f32) (param $init i32)
    (local $i i32) (local $nv i32) (local $o i32) (local $vw v128) (local $acc v128) (local $a f32)
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (local.set $vw (f32x4.splat (local.get $w)))
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.ge_u (local.get $i) (local.get $nv)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $acc (f32x4.mul (v128.load (i32.add (local.get $src) (local.get $o))) (local.get $vw)))
      (if (i32.eqz (local.get $init)) (then
        (local.set $acc (f32x4.add (v128.load (i32.add (local.get $dst) (local.get $o))) (local.get $acc)))))
      (v128.store (i32.add (local.get $dst) (local.get $o)) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $a (f32.mul (f32.load (i32.add (local.get $src) (local.get $o))) (local.get $w)))
      (if (i32.eqz (local.get $init)) (then
        (local.set $a (f32.add (f32.load (i32.add (local.get $dst) (local.get $o))) (local.get $a)))))
      (f32.store (i32.add (local.get $dst) (local.get $o)) (local.get $a))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sLoop))))

  ;; Reflect padding's source of position i on an axis of `size` (no edge repeat, as torch).
  (func $reflect (param $i i32) (param $size i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $i) (i32.const 0))
      (then (i32.sub (i32.const 0) (local.get $i)))
      (else (select (i32.sub (i32.shl (i32.sub (local.get $size) (i32.const 1)) (i32.const 1)) (local.get $i))
        (local.get $i) (i32.ge_s (local.get $i) (local.get $size))))))

  ;; dst[i] = sum over taps k of src[i + k * stride / 4] * taps[k], i < n, summed in tap order from
  ;; the first (the order axpy's passes per tap add in): every tap of a blur's interior in one pass.
  (func $taps_run (param $dst i32) (param $src i32) (param $n i32) (param $stride i32) (param $taps i32)
    (param $ntaps i32)
    (local $i i32) (local $k i32) (local $p i32) (local $acc v128) (local $a f32)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128) (local $t4 v128)
    ;; Five taps (GaussianBlur's usual kernel size): their splats stay in registers.
    (if (i32.eq (local.get $ntaps) (i32.const 5)) (then
      (local.set $t0 (v128.load32_splat (local.get $taps)))
      (local.set $t1 (v128.load32_splat offset=4 (local.get $taps)))
      (local.set $t2 (v128.load32_splat offset=8 (local.get $taps)))
      (local.set $t3 (v128.load32_splat offset=12 (local.get $taps)))
      (local.set $t4 (v128.load32_splat offset=16 (local.get $taps)))
      (block $fDone (loop $fLoop
        (br_if $fDone (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $acc (f32x4.mul (v128.load (local.get $p)) (local.get $t0)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (local.tee $p (i32.add (local.get $p) (local.get $stride)))) (local.get $t1))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (local.tee $p (i32.add (local.get $p) (local.get $stride)))) (local.get $t2))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (local.tee $p (i32.add (local.get $p) (local.get $stride)))) (local.get $t3))))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (local.tee $p (i32.add (local.get $p) (local.get $stride)))) (local.get $t4))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $acc))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $fLoop)))))
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
      (local.set $p (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $acc (f32x4.mul (v128.load (local.get $p)) (v128.load32_splat (local.get $taps))))
      (local.set $k (i32.const 1))
      (block $kDone (loop $kLoop
        (br_if $kDone (i32.ge_u (local.get $k) (local.get $ntaps)))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (v128.load (local.get $p))
          (v128.load32_splat (i32.add (local.get $taps) (i32.shl (local.get $k) (i32.const 2)))))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $kLoop)))
      (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))
      (local.set $a (f32.mul (f32.load (local.get $p)) (f32.load (local.get $taps))))
      (local.set $k (i32.const 1))
      (block $kDone (loop $kLoop
        (br_if $kDone (i32.ge_u (local.get $k) (local.get $ntaps)))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $a (f32.add (local.get $a) (f32.mul (f32.load (local.get $p))
          (f32.load (i32.add (local.get $taps) (i32.shl (local.get $k) (i32.const 2)))))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $kLoop)))
      (f32.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (local.get $a))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sLoop))))

  ;; The horizontal pass of a separable blur with reflect padding over `rows` rows of w pixels of c
  ;; floats (ntaps float32 taps at `taps`, tap k shifted by k - p, p = (ntaps - 1) / 2): per row,
  ;; the columns all of whose taps fall inside in one taps_run, the p at each edge tap by tap.
  (func (export "blur_rows")
    (param $x i32) (param $dst i32) (param $rows i32) (param $w i32) (param $c i32) (param $taps i32)
    (param $ntaps i32)
    (local $k i32) (local $shift i32) (local $p i32) (local $col i32) (local $cb i32) (local $tap f32)
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (local.set $p (i32.shr_u (i32.sub (local.get $ntaps) (i32.const 1)) (i32.const 1)))
    (block $done (loop $row
      (br_if $done (i32.eqz (local.get $rows)))
      ;; Columns [p, w - p), all of whose taps fall inside the row: every tap in one pass.
      (if (i32.gt_s (local.get $w) (i32.shl (local.get $p) (i32.const 1))) (then
        (call $taps_run (i32.add (local.get $dst) (i32.mul (local.get $p) (local.get $cb))) (local.get $x)
          (i32.mul (i32.sub (local.get $w) (i32.shl (local.get $p) (i32.const 1))) (local.get $c))
          (local.get $cb) (local.get $taps) (local.get $ntaps))))
      ;; The others tap by tap, reflected at the edges.
      (local.set $k (i32.const 0))
      (loop $tapLoop
        (local.set $tap (f32.load (i32.add (local.get $taps) (i32.shl (local.get $k) (i32.const 2)))))
        (local.set $shift (i32.sub (local.get $k) (local.get $p)))
        (local.set $col (i32.const 0))
        (block $bDone (loop $border
          (if (i32.and (i32.eq (local.get $col) (local.get $p)) (i32.gt_s (local.get $w) (i32.shl (local.get $p) (i32.const 1))))
            (then (local.set $col (i32.sub (local.get $w) (local.get $p)))))
          (br_if $bDone (i32.ge_s (local.get $col) (local.get $w)))
          (call $axpy (i32.add (local.get $dst) (i32.mul (local.get $col) (local.get $cb)))
            (i32.add (local.get $x)
              (i32.mul (call $reflect (i32.add (local.get $col) (local.get $shift)) (local.get $w)) (local.get $cb)))
            (local.get $c) (local.get $tap) (i32.eqz (local.get $k)))
          (local.set $col (i32.add (local.get $col) (i32.const 1)))
          (br $border)))
        (br_if $tapLoop (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (local.get $ntaps))))
      (local.set $x (i32.add (local.get $x) (i32.mul (local.get $w) (local.get $cb))))
      (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $w) (local.get $cb))))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $row))))

  ;; The vertical pass over n images of h rows of `row` floats: each output row the taps' weighted
  ;; sum of whole rows, in tap order; in one taps_run where all of them fall inside the image,
  ;; tap by tap with reflected rows at the edges.
  (func (export "blur_cols")
    (param $x i32) (param $dst i32) (param $n i32) (param $h i32) (param $row i32) (param $taps i32)
    (param $ntaps i32)
    (local $y i32) (local $k i32) (local $rb i32) (local $img i32) (local $p i32)
    (local.set $rb (i32.shl (local.get $row) (i32.const 2)))
    (local.set $p (i32.shr_u (i32.sub (local.get $ntaps) (i32.const 1)) (i32.const 1)))
    (block $done (loop $image
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $img (local.get $x))
      (local.set $y (i32.const 0))
      (block $yDone (loop $yLoop
        (br_if $yDone (i32.ge_u (local.get $y) (local.get $h)))
        (if (i32.and (i32.ge_u (local.get $y) (local.get $p)) (i32.lt_u (i32.add (local.get $y) (local.get $p)) (local.get $h)))
          (then
            (call $taps_run (local.get $dst) (i32.add (local.get $img) (i32.mul (local.get $rb) (i32.sub (local.get $y) (local.get $p))))
              (local.get $row) (local.get $rb) (local.get $taps) (local.get $ntaps)))
          (else
            (local.set $k (i32.const 0))
            (loop $tapLoop
              (call $axpy (local.get $dst)
                (i32.add (local.get $img) (i32.mul (local.get $rb)
                  (call $reflect (i32.sub (i32.add (local.get $y) (local.get $k)) (local.get $p)) (local.get $h))))
                (local.get $row) (f32.load (i32.add (local.get $taps) (i32.shl (local.get $k) (i32.const 2))))
                (i32.eqz (local.get $k)))
              (br_if $tapLoop (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (local.get $ntaps))))))
        (local.set $dst (i32.add (local.get $dst) (local.get $rb)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $yLoop)))
      (local.set $x (i32.add (local.get $x) (i32.mul (local.get $h) (local.get $rb))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $image))))

  ;; Per-channel float64 sums over every row r of a [rows, c] float32 matrix and of its products
  ;; with b (b = a: its squares): acc[j] += a[r, j]; acc2[j] += a[r, j] * b[r, j], the products
  ;; in float64 (exact for float32 values). One pass gives a batch norm's mean and variance (x, x^2)
  ;; or its gradient's dbeta and dgamma (dy, dy * x). With y (not 0), a[r, j] counts only where
  ;; y[r, j] > ylo and not y[r, j] >= yhi (float32 bits; NaN: no upper bound): the gradient of a
  ;; ReLU or ReLU6 with output y before it.
  (func (export "column_moments")
    (param $a i32) (param $b i32) (param $rows i32) (param $c i32) (param $acc i32) (param $acc2 i32)
    (param $y i32) (param $ylo i32) (param $yhi i32)
    (local $j i32) (local $cv i32) (local $o i32) (local $p i32) (local $q i32)
    (local $va v128) (local $vb v128) (local $lo v128) (local $hi v128) (local $fa f64)
    (local $ml v128) (local $mh v128)
    (local.set $ml (f32x4.splat (f32.reinterpret_i32 (local.get $ylo))))
    (local.set $mh (f32x4.splat (f32.reinterpret_i32 (local.get $yhi))))
    (local.set $cv (i32.and (local.get $c) (i32.const -4)))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $j (i32.const 0))
        (block $vDone (loop $vLoop
          (br_if $vDone (i32.ge_u (local.get $j) (local.get $cv)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $va (v128.load (i32.add (local.get $a) (local.get $o))))
          (if (local.get $y) (then
            (local.set $vb (v128.load (i32.add (local.get $y) (local.get $o))))
            (local.set $va (v128.and (local.get $va)
              (v128.andnot (f32x4.gt (local.get $vb) (local.get $ml)) (f32x4.ge (local.get $vb) (local.get $mh)))))))
          (local.set $vb (v128.load (i32.add (local.get $b) (local.get $o))))
          (local.set $lo (f64x2.promote_low_f32x4 (local.get $va)))
          (local.set $hi
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $va) (local.get $va))))
          (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p)) (local.get $lo)))
          (v128.store offset=16 (local.get $p) (f64x2.add (v128.load offset=16 (local.get $p)) (local.get $hi)))
          (local.set $q (i32.add (local.get $acc2) (i32.shl (local.get $j) (i32.const 3))))
          (v128.store (local.get $q)
            (f64x2.add (v128.load (local.get $q))
              (f64x2.mul (local.get $lo) (f64x2.promote_low_f32x4 (local.get $vb)))))
          (v128.store offset=16 (local.get $q)
            (f64x2.add (v128.load offset=16 (local.get $q))
              (f64x2.mul (local.get $hi)
                (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $vb) (local.get $vb))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $j) (local.get $c)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $fa (f64.promote_f32 (f32x4.extract_lane 0
            (call $maybeMasked (f32x4.splat (f32.load (i32.add (local.get $a) (local.get $o))))
              (local.get $y) (local.get $o) (local.get $ml) (local.get $mh)))))
          (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $fa)))
          (local.set $q (i32.add (local.get $acc2) (i32.shl (local.get $j) (i32.const 3))))
          (f64.store (local.get $q)
            (f64.add (f64.load (local.get $q))
              (f64.mul (local.get $fa) (f64.promote_f32 (f32.load (i32.add (local.get $b) (local.get $o)))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $sLoop)))
        (local.set $o (i32.shl (local.get $c) (i32.const 2)))
        (local.set $a (i32.add (local.get $a) (local.get $o)))
        (local.set $b (i32.add (local.get $b) (local.get $o)))
        (if (local.get $y) (then (local.set $y (i32.add (local.get $y) (local.get $o)))))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))

  ;; Lane 0 of v where y is 0 or y[o] > lo and not y[o] >= hi (one float), else 0: the loops'
  ;; scalar tails.
  (func $maybeMasked (param $v v128) (param $y i32) (param $o i32) (param $lo v128) (param $hi v128) (result v128)
    (if (result v128) (local.get $y)
      (then (v128.and (local.get $v)
        (v128.andnot
          (f32x4.gt (f32x4.splat (f32.load (i32.add (local.get $y) (local.get $o)))) (local.get $lo))
          (f32x4.ge (f32x4.splat (f32.load (i32.add (local.get $y) (local.get $o)))) (local.get $hi)))))
      (else (local.get $v))))

  ;; dst[r, j] = g[r, j] * p[j] + ((x[r, j] - mean[j]) * q[j] + s[j]) over `rows` rows of c values:
  ;; the normalisation (p = 0) and its input gradient in one pass. f is the per-channel vectors'
  ;; base: mean, p, q, s at f, f + 4c, f + 8c, f + 12c. With y (not 0), g[r, j] counts only where
  ;; y[r, j] > lo and not y[r, j] >= hi (the gradient through a ReLU or ReLU6 with output y; hi
  ;; NaN: no upper bound); with clamp (not 0), dst is clamped to [lo, hi] (the ReLU or ReLU6
  ;; itself; NaN to lo, as tfjs's wasm Relu and ClipByValue do). lo and hi are float32 bits.
  (func (export "centered_affine")
    (param $x i32) (param $g i32) (param $dst i32) (param $f i32) (param $rows i32) (param $c i32)
    (param $y i32) (param $lo i32) (param $hi i32) (param $clamp i32)
    (local $j i32) (local $cv i32) (local $o i32) (local $cb i32) (local $m i32)
    (local $vg v128) (local $v v128) (local $ml v128) (local $mh v128)
    (local.set $ml (f32x4.splat (f32.reinterpret_i32 (local.get $lo))))
    (local.set $mh (f32x4.splat (f32.reinterpret_i32 (local.get $hi))))
    (local.set $cv (i32.and (local.get $c) (i32.const -4)))
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $j (i32.const 0))
        (block $vDone (loop $vLoop
          (br_if $vDone (i32.ge_u (local.get $j) (local.get $cv)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $m (i32.add (local.get $f) (local.get $o)))
          (local.set $vg (v128.load (i32.add (local.get $g) (local.get $o))))
          (if (local.get $y) (then
            (local.set $v (v128.load (i32.add (local.get $y) (local.get $o))))
            (local.set $vg (v128.and (local.get $vg)
              (v128.andnot (f32x4.gt (local.get $v) (local.get $ml)) (f32x4.ge (local.get $v) (local.get $mh)))))))
          (local.set $v
            (f32x4.add
              (f32x4.mul (local.get $vg) (v128.load (i32.add (local.get $m) (local.get $cb))))
              (f32x4.add
                (f32x4.mul
                  (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $o))) (v128.load (local.get $m)))
                  (v128.load (i32.add (local.get $m) (i32.shl (local.get $cb) (i32.const 1)))))
                (v128.load (i32.add (local.get $m) (i32.mul (local.get $cb) (i32.const 3)))))))
          (if (local.get $clamp) (then
            (local.set $v (f32x4.pmin (local.get $mh) (f32x4.pmax (local.get $ml) (local.get $v))))))
          (v128.store (i32.add (local.get $dst) (local.get $o)) (local.get $v))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $j) (local.get $c)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $m (i32.add (local.get $f) (local.get $o)))
          (local.set $vg (call $maybeMasked (f32x4.splat (f32.load (i32.add (local.get $g) (local.get $o))))
            (local.get $y) (local.get $o) (local.get $ml) (local.get $mh)))
          (local.set $v (f32x4.splat
            (f32.add
              (f32.mul
                (f32x4.extract_lane 0 (local.get $vg))
                (f32.load (i32.add (local.get $m) (local.get $cb))))
              (f32.add
                (f32.mul
                  (f32.sub (f32.load (i32.add (local.get $x) (local.get $o))) (f32.load (local.get $m)))
                  (f32.load (i32.add (local.get $m) (i32.shl (local.get $cb) (i32.const 1)))))
                (f32.load (i32.add (local.get $m) (i32.mul (local.get $cb) (i32.const 3))))))))
          (if (local.get $clamp) (then
            (local.set $v (f32x4.pmin (local.get $mh) (f32x4.pmax (local.get $ml) (local.get $v))))))
          (f32.store (i32.add (local.get $dst) (local.get $o)) (f32x4.extract_lane 0 (local.get $v)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $sLoop)))
        (local.set $x (i32.add (local.get $x) (local.get $cb)))
        (local.set $g (i32.add (local.get $g) (local.get $cb)))
        (local.set $dst (i32.add (local.get $dst) (local.get $cb)))
        (if (local.get $y) (then (local.set $y (i32.add (local.get $y) (local.get $cb)))))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))

  ;; One step of tfjs's AdamOptimizer over n values, in the order of its ops, so the same float32
  ;; numbers (c1 = 1 - accBeta1 and c2 = 1 - accBeta2 as tfjs computes them, lr negated):
  ;;   m' = m * beta1 + g * omb1;  v' = v * beta2 + (g * g) * omb2
  ;;   p' = ((m' / c1) / (sqrt(v' / c2) + eps)) * nlr + p
  (func (export "adam")
    (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $pOut i32) (param $mOut i32)
    (param $vOut i32) (param $n i32) (param $beta1 f32) (param $omb1 f32) (param $beta2 f32)
    (param $omb2 f32) (param $c1 f32) (param $c2 f32) (param $eps f32) (param $nlr f32)
    (local $i i32) (local $nv i32) (local $o i32) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.ge_u (local.get $i) (local.get $nv)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $gv (v128.load (i32.add (local.get $g) (local.get $o))))
      (local.set $mv
        (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $o))) (f32x4.splat (local.get $beta1)))
          (f32x4.mul (local.get $gv) (f32x4.splat (local.get $omb1)))))
      (local.set $vv
        (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $o))) (f32x4.splat (local.get $beta2)))
          (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (f32x4.splat (local.get $omb2)))))
      (v128.store (i32.add (local.get $mOut) (local.get $o)) (local.get $mv))
      (v128.store (i32.add (local.get $vOut) (local.get $o)) (local.get $vv))
      (v128.store (i32.add (local.get $pOut) (local.get $o))
        (f32x4.add
          (f32x4.mul
            (f32x4.div
              (f32x4.div (local.get $mv) (f32x4.splat (local.get $c1)))
              (f32x4.add
                (f32x4.sqrt (f32x4.div (local.get $vv) (f32x4.splat (local.get $c2))))
                (f32x4.splat (local.get $eps))))
            (f32x4.splat (local.get $nlr)))
          (v128.load (i32.add (local.get $p) (local.get $o)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $gs (f32.load (i32.add (local.get $g) (local.get $o))))
      (local.set $ms
        (f32.add
          (f32.mul (f32.load (i32.add (local.get $m) (local.get $o))) (local.get $beta1))
          (f32.mul (local.get $gs) (local.get $omb1))))
      (local.set $vs
        (f32.add
          (f32.mul (f32.load (i32.add (local.get $v) (local.get $o))) (local.get $beta2))
          (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $omb2))))
      (f32.store (i32.add (local.get $mOut) (local.get $o)) (local.get $ms))
      (f32.store (i32.add (local.get $vOut) (local.get $o)) (local.get $vs))
      (f32.store (i32.add (local.get $pOut) (local.get $o))
        (f32.add
          (f32.mul
            (f32.div
              (f32.div (local.get $ms) (local.get $c1))
              (f32.add (f32.sqrt (f32.div (local.get $vs) (local.get $c2))) (local.get $eps)))
            (local.get $nlr))
          (f32.load (i32.add (local.get $p) (local.get $o)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sLoop))))
  ;; Depthwise convolution input gradient (channel multiplier 1, dilation 1, c a multiple of 4):
  ;;   dx[b, h, w, j] = sum over taps (ty, tx) with h + pt - ty = r*sh, w + pl - tx = q*sw, r < oh,
  ;;   q < ow of dy[b, r, q, j] * f[ty, tx, j]
  ;; for every position of images [0, n) of dx (all written), taps in order (ty, then tx).
  (func (export "depthwise_input_grad")
    (param $dy i32) (param $f i32) (param $dx i32) (param $n i32) (param $ih i32) (param $iw i32)
    (param $c i32) (param $oh i32) (param $ow i32) (param $kh i32) (param $kw i32) (param $sh i32)
    (param $sw i32) (param $pt i32) (param $pl i32)
    (local $b i32) (local $h i32) (local $w i32) (local $ty i32) (local $tx i32) (local $r i32)
    (local $q i32) (local $j i32) (local $row i32) (local $dyrow i32) (local $frow i32) (local $cb i32)
    (local $o i32)
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (local.set $row (local.get $dx))
    (block $bDone (loop $bLoop
      (br_if $bDone (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $h (i32.const 0))
      (block $hDone (loop $hLoop
        (br_if $hDone (i32.ge_u (local.get $h) (local.get $ih)))
        (local.set $w (i32.const 0))
        (block $wDone (loop $wLoop
          (br_if $wDone (i32.ge_u (local.get $w) (local.get $iw)))
          (local.set $j (i32.const 0))
          (block $zDone (loop $zLoop
            (br_if $zDone (i32.ge_u (local.get $j) (local.get $cb)))
            (v128.store (i32.add (local.get $row) (local.get $j)) (v128.const i32x4 0 0 0 0))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $zLoop)))
          (local.set $ty (i32.const 0))
          (block $tyDone (loop $tyLoop
            (br_if $tyDone (i32.ge_u (local.get $ty) (local.get $kh)))
            (local.set $r (i32.sub (i32.add (local.get $h) (local.get $pt)) (local.get $ty)))
            ;; A row r*sh inside [0, oh*sh): non-negative, a multiple of the stride, in range.
            (if (i32.and
                  (i32.ge_s (local.get $r) (i32.const 0))
                  (i32.eqz (i32.rem_u (local.get $r) (local.get $sh))))
              (then
                (local.set $r (i32.div_u (local.get $r) (local.get $sh)))
                (if (i32.lt_u (local.get $r) (local.get $oh)) (then
                  (local.set $tx (i32.const 0))
                  (block $txDone (loop $txLoop
                    (br_if $txDone (i32.ge_u (local.get $tx) (local.get $kw)))
                    (local.set $q (i32.sub (i32.add (local.get $w) (local.get $pl)) (local.get $tx)))
                    (if (i32.and
                          (i32.ge_s (local.get $q) (i32.const 0))
                          (i32.eqz (i32.rem_u (local.get $q) (local.get $sw))))
                      (then
                        (local.set $q (i32.div_u (local.get $q) (local.get $sw)))
                        (if (i32.lt_u (local.get $q) (local.get $ow)) (then
                          (local.set $dyrow
                            (i32.add (local.get $dy)
                              (i32.mul
                                (i32.add
                                  (i32.mul
                                    (i32.add (i32.mul (local.get $b) (local.get $oh)) (local.get $r))
                                    (local.get $ow))
                                  (local.get $q))
                                (local.get $cb))))
                          (local.set $frow
                            (i32.add (local.get $f)
                              (i32.mul
                                (i32.add (i32.mul (local.get $ty) (local.get $kw)) (local.get $tx))
                                (local.get $cb))))
                          (local.set $j (i32.const 0))
                          (block $vDone (loop $vLoop
                            (br_if $vDone (i32.ge_u (local.get $j) (local.get $cb)))
                            (local.set $o (i32.add (local.get $row) (local.get $j)))
                            (v128.store (local.get $o)
                              (f32x4.add
                                (v128.load (local.get $o))
                                (f32x4.mul
                                  (v128.load (i32.add (local.get $dyrow) (local.get $j)))
                                  (v128.load (i32.add (local.get $frow) (local.get $j))))))
                            (local.set $j (i32.add (local.get $j) (i32.const 16)))
                            (br $vLoop)))))))
                    (local.set $tx (i32.add (local.get $tx) (i32.const 1)))
                    (br $txLoop)))))))
            (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
            (br $tyLoop)))
          (local.set $row (i32.add (local.get $row) (local.get $cb)))
          (local.set $w (i32.add (local.get $w) (i32.const 1)))
          (br $wLoop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bLoop))))
  ;; Copies `run` bytes (a multiple of 4) from src to dst: 16 at a time, then 4.
  (func $copy (param $src i32) (param $dst i32) (param $run i32)
    (local $k i32)
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.gt_u (i32.add (local.get $k) (i32.const 16)) (local.get $run)))
      (v128.store (i32.add (local.get $dst) (local.get $k)) (v128.load (i32.add (local.get $src) (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 16)))
      (br $vLoop)))
    (block $wDone (loop $wLoop
      (br_if $wDone (i32.ge_u (local.get $k) (local.get $run)))
      (i32.store (i32.add (local.get $dst) (local.get $k)) (i32.load (i32.add (local.get $src) (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 4)))
      (br $wLoop))))

  ;; dst gets the `len` runs of `run` bytes that start at src, last first (a flip of one row).
  (func (export "reverse_runs") (param $src i32) (param $dst i32) (param $len i32) (param $run i32)
    (local $s i32)
    (local.set $s (i32.add (local.get $src) (i32.mul (local.get $len) (local.get $run))))
    (block $done (loop $next
      (br_if $done (i32.le_u (local.get $s) (local.get $src)))
      (local.set $s (i32.sub (local.get $s) (local.get $run)))
      (call $copy (local.get $s) (local.get $dst) (local.get $run))
      (local.set $dst (i32.add (local.get $dst) (local.get $run)))
      (br $next))))

  ;; For each of `outer` blocks of `size` runs of `run` bytes at src, dst gets the runs that the
  ;; `count` int32 indices at idx name, in order (a gather along one axis; indices in range).
  (func (export "gather_runs")
    (param $src i32) (param $idx i32) (param $dst i32) (param $outer i32) (param $size i32)
    (param $count i32) (param $run i32)
    (local $o i32) (local $j i32) (local $block i32)
    (local.set $block (i32.mul (local.get $size) (local.get $run)))
    (block $oDone (loop $oLoop
      (br_if $oDone (i32.ge_u (local.get $o) (local.get $outer)))
      (local.set $j (i32.const 0))
      (block $jDone (loop $jLoop
        (br_if $jDone (i32.ge_u (local.get $j) (local.get $count)))
        (call $copy
          (i32.add (local.get $src)
            (i32.mul (i32.load (i32.add (local.get $idx) (i32.shl (local.get $j) (i32.const 2)))) (local.get $run)))
          (local.get $dst) (local.get $run))
        (local.set $dst (i32.add (local.get $dst) (local.get $run)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $jLoop)))
      (local.set $src (i32.add (local.get $src) (local.get $block)))
      (local.set $o (i32.add (local.get $o) (i32.const 1)))
      (br $oLoop))))
  ;; dst[i] = src[i] for n unsigned bytes at src, as float32 (decoded 8-bit pixels to a tensor).
  (func (export "bytes_to_float") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $v v128) (local $h v128)
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $n)))
      (local.set $v (v128.load (i32.add (local.get $src) (local.get $i))))
      (local.set $h (i16x8.extend_low_i8x16_u (local.get $v)))
      (v128.store (local.get $dst) (f32x4.convert_i32x4_u (i32x4.extend_low_i16x8_u (local.get $h))))
      (v128.store offset=16 (local.get $dst) (f32x4.convert_i32x4_u (i32x4.extend_high_i16x8_u (local.get $h))))
      (local.set $h (i16x8.extend_high_i8x16_u (local.get $v)))
      (v128.store offset=32 (local.get $dst) (f32x4.convert_i32x4_u (i32x4.extend_low_i16x8_u (local.get $h))))
      (v128.store offset=48 (local.get $dst) (f32x4.convert_i32x4_u (i32x4.extend_high_i16x8_u (local.get $h))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $i) (local.get $n)))
      (f32.store (local.get $dst) (f32.convert_i32_u (i32.load8_u (i32.add (local.get $src) (local.get $i)))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sLoop))))
  ;; Depthwise convolution filter gradient (channel multiplier 1, dilation 1), accumulated into
  ;; `out` ([kh, kw, c], zeroed by the caller) over images [0, n):
  ;;   out[ty, tx, j] += x[b, r*sh - pt + ty, q*sw - pl + tx, j] * dy[b, r, q, j]
  ;; Output positions outside, taps inside: each dy row is read once and the x rows its taps read
  ;; are neighbours in cache (taps outside, the x tensor was read once per tap).
  (func (export "depthwise_filter_grad")
    (param $x i32) (param $dy i32) (param $out i32) (param $n i32) (param $ih i32) (param $iw i32)
    (param $c i32) (param $oh i32) (param $ow i32) (param $kh i32) (param $kw i32) (param $sh i32)
    (param $sw i32) (param $pt i32) (param $pl i32)
    (local $b i32) (local $r i32) (local $q i32) (local $ty i32) (local $tx i32) (local $h i32)
    (local $w i32) (local $j i32) (local $cb i32) (local $cv i32) (local $xrow i32) (local $acc i32)
    (local $o i32)
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (local.set $cv (i32.and (local.get $cb) (i32.const -16)))
    (block $bDone (loop $bLoop
      (br_if $bDone (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $r (i32.const 0))
      (block $rDone (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $oh)))
        (local.set $q (i32.const 0))
        (block $qDone (loop $qLoop
          (br_if $qDone (i32.ge_u (local.get $q) (local.get $ow)))
          (local.set $ty (i32.const 0))
          (block $tyDone (loop $tyLoop
            (br_if $tyDone (i32.ge_u (local.get $ty) (local.get $kh)))
            (local.set $h
              (i32.add (i32.sub (i32.mul (local.get $r) (local.get $sh)) (local.get $pt)) (local.get $ty)))
            ;; Unsigned: a negative row is out of range too.
            (if (i32.lt_u (local.get $h) (local.get $ih)) (then
              (local.set $tx (i32.const 0))
              (block $txDone (loop $txLoop
                (br_if $txDone (i32.ge_u (local.get $tx) (local.get $kw)))
                (local.set $w
                  (i32.add (i32.sub (i32.mul (local.get $q) (local.get $sw)) (local.get $pl)) (local.get $tx)))
                (if (i32.lt_u (local.get $w) (local.get $iw)) (then
                  (local.set $xrow
                    (i32.add (local.get $x)
                      (i32.mul
                        (i32.add
                          (i32.mul (i32.add (i32.mul (local.get $b) (local.get $ih)) (local.get $h)) (local.get $iw))
                          (local.get $w))
                        (local.get $cb))))
                  (local.set $acc
                    (i32.add (local.get $out)
                      (i32.mul (i32.add (i32.mul (local.get $ty) (local.get $kw)) (local.get $tx)) (local.get $cb))))
                  (local.set $j (i32.const 0))
                  (block $vDone (loop $vLoop
                    (br_if $vDone (i32.ge_u (local.get $j) (local.get $cv)))
                    (local.set $o (i32.add (local.get $acc) (local.get $j)))
                    (v128.store (local.get $o)
                      (f32x4.add
                        (v128.load (local.get $o))
                        (f32x4.mul
                          (v128.load (i32.add (local.get $xrow) (local.get $j)))
                          (v128.load (i32.add (local.get $dy) (local.get $j))))))
                    (local.set $j (i32.add (local.get $j) (i32.const 16)))
                    (br $vLoop)))
                  (block $sDone (loop $sLoop
                    (br_if $sDone (i32.ge_u (local.get $j) (local.get $cb)))
                    (local.set $o (i32.add (local.get $acc) (local.get $j)))
                    (f32.store (local.get $o)
                      (f32.add
                        (f32.load (local.get $o))
                        (f32.mul
                          (f32.load (i32.add (local.get $xrow) (local.get $j)))
                          (f32.load (i32.add (local.get $dy) (local.get $j))))))
                    (local.set $j (i32.add (local.get $j) (i32.const 4)))
                    (br $sLoop)))))
                (local.set $tx (i32.add (local.get $tx) (i32.const 1)))
                (br $txLoop)))))
            (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
            (br $tyLoop)))
          ;; The next dy row.
          (local.set $dy (i32.add (local.get $dy) (local.get $cb)))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br $qLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bLoop))))
)
