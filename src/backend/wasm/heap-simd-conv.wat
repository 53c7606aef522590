;; Direct convolutions in SIMD128 over the tfjs wasm backend's heap (see heap-simd.wat for how the
;; modules are built and bound): a grayscale network's first layer, where XNNPACK's general
;; convolution spent ~14 ms of a 128x128 batch of 32 on one input channel; the nearest-neighbour
;; rotation of RandomRotation; and Normalize's per-channel (x - mean) / std in one pass.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; A single-channel 3x3 stride-1 convolution (a grayscale network's first layer), 32 output
  ;; channels at a time: y[i, oy, ox, c] = act(bias[c] + sum over in-range taps (ky, kx), ky-major,
  ;; of x[i, oy - top + ky, ox - left + kx] * f[ky, kx, c]), for n images; bias 0: none; act 0
  ;; linear, 1 ReLU, 2 ReLU6. co a multiple of 32. Eight accumulators per pixel.
  (func (export "conv1_forward")
    (param $x i32) (param $f i32) (param $y i32) (param $bias i32) (param $act i32) (param $n i32)
    (param $h i32) (param $w i32) (param $co i32) (param $oh i32) (param $ow i32) (param $top i32)
    (param $left i32)
    (local $oy i32) (local $ox i32) (local $c i32) (local $ky i32) (local $kx i32) (local $ky1 i32)
    (local $kx0 i32) (local $kx1 i32) (local $p i32) (local $q i32) (local $v v128) (local $cb i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local.set $cb (i32.shl (local.get $co) (i32.const 2)))
    (block $done (loop $image
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $oy (i32.const 0))
      (loop $row
        ;; Taps ky in [max(0, top - oy), min(3, h + top - oy)).
        (local.set $ky1 (i32.sub (i32.add (local.get $h) (local.get $top)) (local.get $oy)))
        (if (i32.gt_s (local.get $ky1) (i32.const 3)) (then (local.set $ky1 (i32.const 3))))
        (local.set $ox (i32.const 0))
        (loop $col
          (local.set $kx0 (i32.sub (local.get $left) (local.get $ox)))
          (if (i32.lt_s (local.get $kx0) (i32.const 0)) (then (local.set $kx0 (i32.const 0))))
          (local.set $kx1 (i32.sub (i32.add (local.get $w) (local.get $left)) (local.get $ox)))
          (if (i32.gt_s (local.get $kx1) (i32.const 3)) (then (local.set $kx1 (i32.const 3))))
          (local.set $c (i32.const 0))
          (loop $chunk
            (if (local.get $bias)
              (then
                (local.set $q (i32.add (local.get $bias) (i32.shl (local.get $c) (i32.const 2))))
                (local.set $a0 (v128.load (local.get $q)))
                (local.set $a1 (v128.load offset=16 (local.get $q)))
                (local.set $a2 (v128.load offset=32 (local.get $q)))
                (local.set $a3 (v128.load offset=48 (local.get $q)))
                (local.set $a4 (v128.load offset=64 (local.get $q)))
                (local.set $a5 (v128.load offset=80 (local.get $q)))
                (local.set $a6 (v128.load offset=96 (local.get $q)))
                (local.set $a7 (v128.load offset=112 (local.get $q))))
              (else
                (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (local.get $a0))
                (local.set $a2 (local.get $a0)) (local.set $a3 (local.get $a0)) (local.set $a4 (local.get $a0))
                (local.set $a5 (local.get $a0)) (local.set $a6 (local.get $a0)) (local.set $a7 (local.get $a0))))
            (local.set $ky (i32.sub (local.get $top) (local.get $oy)))
            (if (i32.lt_s (local.get $ky) (i32.const 0)) (then (local.set $ky (i32.const 0))))
            (block $kyDone (loop $kyLoop
              (br_if $kyDone (i32.ge_s (local.get $ky) (local.get $ky1)))
              (local.set $kx (local.get $kx0))
              ;; p: x at (oy - top + ky, ox - left + kx); q: f at (ky, kx, c).
              (local.set $p (i32.add (local.get $x) (i32.shl (i32.add
                (i32.mul (i32.add (i32.sub (local.get $oy) (local.get $top)) (local.get $ky)) (local.get $w))
                (i32.add (i32.sub (local.get $ox) (local.get $left)) (local.get $kx))) (i32.const 2))))
              (local.set $q (i32.add (i32.add (local.get $f) (i32.shl (local.get $c) (i32.const 2)))
                (i32.mul (i32.add (i32.mul (local.get $ky) (i32.const 3)) (local.get $kx)) (local.get $cb))))
              (block $kxDone (loop $kxLoop
                (br_if $kxDone (i32.ge_s (local.get $kx) (local.get $kx1)))
                (local.set $v (v128.load32_splat (local.get $p)))
                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (v128.load (local.get $q)))))
                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (v128.load offset=16 (local.get $q)))))
                (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v) (v128.load offset=32 (local.get $q)))))
                (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v) (v128.load offset=48 (local.get $q)))))
                (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $v) (v128.load offset=64 (local.get $q)))))
                (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $v) (v128.load offset=80 (local.get $q)))))
                (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $v) (v128.load offset=96 (local.get $q)))))
                (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $v) (v128.load offset=112 (local.get $q)))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (local.set $q (i32.add (local.get $q) (local.get $cb)))
                (local.set $kx (i32.add (local.get $kx) (i32.const 1)))
                (br $kxLoop)))
              (local.set $ky (i32.add (local.get $ky) (i32.const 1)))
              (br $kyLoop)))
            (if (local.get $act) (then
              (local.set $v (v128.const i32x4 0 0 0 0))
              (local.set $a0 (f32x4.max (local.get $a0) (local.get $v)))
              (local.set $a1 (f32x4.max (local.get $a1) (local.get $v)))
              (local.set $a2 (f32x4.max (local.get $a2) (local.get $v)))
              (local.set $a3 (f32x4.max (local.get $a3) (local.get $v)))
              (local.set $a4 (f32x4.max (local.get $a4) (local.get $v)))
              (local.set $a5 (f32x4.max (local.get $a5) (local.get $v)))
              (local.set $a6 (f32x4.max (local.get $a6) (local.get $v)))
              (local.set $a7 (f32x4.max (local.get $a7) (local.get $v)))
              (if (i32.eq (local.get $act) (i32.const 2)) (then
                (local.set $v (f32x4.splat (f32.const 6)))
                (local.set $a0 (f32x4.min (local.get $a0) (local.get $v)))
                (local.set $a1 (f32x4.min (local.get $a1) (local.get $v)))
                (local.set $a2 (f32x4.min (local.get $a2) (local.get $v)))
                (local.set $a3 (f32x4.min (local.get $a3) (local.get $v)))
                (local.set $a4 (f32x4.min (local.get $a4) (local.get $v)))
                (local.set $a5 (f32x4.min (local.get $a5) (local.get $v)))
                (local.set $a6 (f32x4.min (local.get $a6) (local.get $v)))
                (local.set $a7 (f32x4.min (local.get $a7) (local.get $v)))))))
            (v128.store (local.get $y) (local.get $a0))
            (v128.store offset=16 (local.get $y) (local.get $a1))
            (v128.store offset=32 (local.get $y) (local.get $a2))
            (v128.store offset=48 (local.get $y) (local.get $a3))
            (v128.store offset=64 (local.get $y) (local.get $a4))
            (v128.store offset=80 (local.get $y) (local.get $a5))
            (v128.store offset=96 (local.get $y) (local.get $a6))
            (v128.store offset=112 (local.get $y) (local.get $a7))
            (local.set $y (i32.add (local.get $y) (i32.const 128)))
            (br_if $chunk (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 32))) (local.get $co))))
          (br_if $col (i32.lt_u (local.tee $ox (i32.add (local.get $ox) (i32.const 1))) (local.get $ow))))
        (br_if $row (i32.lt_u (local.tee $oy (i32.add (local.get $oy) (i32.const 1))) (local.get $oh))))
      (local.set $x (i32.add (local.get $x) (i32.shl (i32.mul (local.get $h) (local.get $w)) (i32.const 2))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $image))))

;; A 1x1 stride-1 convolution's forward pass as a product: c[r, j] = act(bias[j] + sum over k in
  ;; order of a[r, k] * w[k, j]) for r < m (a multiple of 4), j < n (a multiple of 8), rows of a k
  ;; floats apart; bias 0: none (sums from 0); act 0 linear, 1 ReLU, 2 ReLU6. Blocks of 4 rows x 8
  ;; columns in registers, summed as XNNPACK's GEMM sums them (from the bias, k in order).
  (func (export "pointwise_forward")
    (param $a i32) (param $w i32) (param $c i32) (param $bias i32) (param $act i32) (param $m i32)
    (param $k i32) (param $n i32)
    (local $i i32) (local $j i32) (local $q i32) (local $ap i32) (local $bp i32) (local $ka i32) (local $nb i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128)
    (local $a6 v128) (local $a7 v128) (local $b0 v128) (local $b1 v128) (local $s v128) (local $lo v128)
    (local $hi v128)
    (local.set $ka (i32.shl (local.get $k) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $hi (f32x4.splat (f32.const 6)))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i) (local.get $m)))
      (local.set $j (i32.const 0))
      (loop $jLoop
        (if (local.get $bias)
          (then
            (local.set $a0 (v128.load (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $a1 (v128.load offset=16 (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))))
          (else (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (local.get $a0))))
        (local.set $a2 (local.get $a0)) (local.set $a4 (local.get $a0)) (local.set $a6 (local.get $a0))
        (local.set $a3 (local.get $a1)) (local.set $a5 (local.get $a1)) (local.set $a7 (local.get $a1))
        (local.set $ap (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ka))))
        (local.set $bp (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $q (local.get $k))
        (loop $kLoop
          (local.set $b0 (v128.load (local.get $bp)))
          (local.set $b1 (v128.load offset=16 (local.get $bp)))
          (local.set $s (v128.load32_splat (local.get $ap)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $ap) (local.get $ka))))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $ap) (i32.shl (local.get $ka) (i32.const 1)))))
          (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (v128.load32_splat (i32.add (local.get $ap) (i32.mul (local.get $ka) (i32.const 3)))))
          (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $ap (i32.add (local.get $ap) (i32.const 4)))
          (local.set $bp (i32.add (local.get $bp) (local.get $nb)))
          (br_if $kLoop (local.tee $q (i32.sub (local.get $q) (i32.const 1)))))
        (if (local.get $act) (then
          (local.set $lo (v128.const i32x4 0 0 0 0))
          (local.set $a0 (f32x4.max (local.get $a0) (local.get $lo)))
          (local.set $a1 (f32x4.max (local.get $a1) (local.get $lo)))
          (local.set $a2 (f32x4.max (local.get $a2) (local.get $lo)))
          (local.set $a3 (f32x4.max (local.get $a3) (local.get $lo)))
          (local.set $a4 (f32x4.max (local.get $a4) (local.get $lo)))
          (local.set $a5 (f32x4.max (local.get $a5) (local.get $lo)))
          (local.set $a6 (f32x4.max (local.get $a6) (local.get $lo)))
          (local.set $a7 (f32x4.max (local.get $a7) (local.get $lo)))
          (if (i32.eq (local.get $act) (i32.const 2)) (then
            (local.set $a0 (f32x4.min (local.get $a0) (local.get $hi)))
            (local.set $a1 (f32x4.min (local.get $a1) (local.get $hi)))
            (local.set $a2 (f32x4.min (local.get $a2) (local.get $hi)))
            (local.set $a3 (f32x4.min (local.get $a3) (local.get $hi)))
            (local.set $a4 (f32x4.min (local.get $a4) (local.get $hi)))
            (local.set $a5 (f32x4.min (local.get $a5) (local.get $hi)))
            (local.set $a6 (f32x4.min (local.get $a6) (local.get $hi)))
            (local.set $a7 (f32x4.min (local.get $a7) (local.get $hi)))))))
        (local.set $bp (i32.add (local.get $c)
          (i32.add (i32.mul (local.get $i) (local.get $nb)) (i32.shl (local.get $j) (i32.const 2)))))
        (v128.store (local.get $bp) (local.get $a0))
        (v128.store offset=16 (local.get $bp) (local.get $a1))
        (v128.store (local.tee $bp (i32.add (local.get $bp) (local.get $nb))) (local.get $a2))
        (v128.store offset=16 (local.get $bp) (local.get $a3))
        (v128.store (local.tee $bp (i32.add (local.get $bp) (local.get $nb))) (local.get $a4))
        (v128.store offset=16 (local.get $bp) (local.get $a5))
        (v128.store (local.tee $bp (i32.add (local.get $bp) (local.get $nb))) (local.get $a6))
        (v128.store offset=16 (local.get $bp) (local.get $a7))
        (br_if $jLoop (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $iLoop))))

  ;; dst[r, j] = (src[r, j] - a[j]) / b[j] for r < rows, j < c (Normalize in one pass; Rescale's
  ;; x * a + b is affine_channels in heap-simd.wat).
  (func (export "sub_div_channels")
    (param $src i32) (param $dst i32) (param $a i32) (param $b i32) (param $rows i32) (param $c i32)
    (local $j i32) (local $cv i32) (local $o i32)
    (local.set $cv (i32.and (local.get $c) (i32.const -4)))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $j (i32.const 0))
        (block $vdone
          (loop $v
            (br_if $vdone (i32.ge_u (local.get $j) (local.get $cv)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (v128.store
              (i32.add (local.get $dst) (local.get $o))
              (f32x4.div
                (f32x4.sub
                  (v128.load (i32.add (local.get $src) (local.get $o)))
                  (v128.load (i32.add (local.get $a) (local.get $o))))
                (v128.load (i32.add (local.get $b) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $v)))
        (block $sdone
          (loop $s
            (br_if $sdone (i32.ge_u (local.get $j) (local.get $c)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (f32.store
              (i32.add (local.get $dst) (local.get $o))
              (f32.div
                (f32.sub
                  (f32.load (i32.add (local.get $src) (local.get $o)))
                  (f32.load (i32.add (local.get $a) (local.get $o))))
                (f32.load (i32.add (local.get $b) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $s)))
        (local.set $o (i32.shl (local.get $c) (i32.const 2)))
        (local.set $src (i32.add (local.get $src) (local.get $o)))
        (local.set $dst (i32.add (local.get $dst) (local.get $o)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))

    ;; Nearest-neighbour rotation of n images h x w x c about their centre (torchvision's grid):
  ;; output pixel (y, x) copies source pixel (row, col) of each image, with
  ;; col = nearest-even((cos * px - sin * py + w / 2) - 0.5), row = nearest-even((sin * px + cos * py
  ;; + h / 2) - 0.5), px = (x + 0.5) - w / 2, py = (y + 0.5) - h / 2, in float64 as JavaScript
  ;; computes them; `fill` where (row, col) falls outside.
  (func (export "rotate_nearest")
    (param $x i32) (param $dst i32) (param $n i32) (param $h i32) (param $w i32) (param $c i32)
    (param $cos f64) (param $sin f64) (param $fill f32)
    (local $y i32) (local $xx i32) (local $px f64) (local $sp f64) (local $cp f64) (local $fc f64)
    (local $fr f64) (local $hw f64) (local $hh f64) (local $fw f64) (local $fh f64)
    (local $from i32) (local $o i32) (local $b i32) (local $k i32) (local $image i32)
    (local.set $image (i32.shl (i32.mul (i32.mul (local.get $h) (local.get $w)) (local.get $c)) (i32.const 2)))
    (local.set $fw (f64.convert_i32_u (local.get $w)))
    (local.set $fh (f64.convert_i32_u (local.get $h)))
    (local.set $hw (f64.div (local.get $fw) (f64.const 2)))
    (local.set $hh (f64.div (local.get $fh) (f64.const 2)))
    (block $yDone (loop $yLoop
      (br_if $yDone (i32.ge_u (local.get $y) (local.get $h)))
      ;; sin * py and cos * py, py = (y + 0.5) - h / 2: the row's share of sx and sy.
      (local.set $sp (f64.sub (f64.add (f64.convert_i32_u (local.get $y)) (f64.const 0.5)) (local.get $hh)))
      (local.set $cp (f64.mul (local.get $cos) (local.get $sp)))
      (local.set $sp (f64.mul (local.get $sin) (local.get $sp)))
      (local.set $xx (i32.const 0))
      (block $xDone (loop $xLoop
        (br_if $xDone (i32.ge_u (local.get $xx) (local.get $w)))
        (local.set $px (f64.sub (f64.add (f64.convert_i32_u (local.get $xx)) (f64.const 0.5)) (local.get $hw)))
        (local.set $fc (f64.nearest (f64.sub (f64.add
          (f64.sub (f64.mul (local.get $cos) (local.get $px)) (local.get $sp)) (local.get $hw)) (f64.const 0.5))))
        (local.set $fr (f64.nearest (f64.sub (f64.add
          (f64.add (f64.mul (local.get $sin) (local.get $px)) (local.get $cp)) (local.get $hh)) (f64.const 0.5))))
        ;; -1 outside, else the source pixel's byte offset in an image.
        (local.set $from (i32.const -1))
        (if (i32.and
              (i32.and (f64.ge (local.get $fc) (f64.const 0)) (f64.lt (local.get $fc) (local.get $fw)))
              (i32.and (f64.ge (local.get $fr) (f64.const 0)) (f64.lt (local.get $fr) (local.get $fh))))
          (then (local.set $from (i32.shl (i32.mul (i32.add (i32.mul (i32.trunc_f64_s (local.get $fr)) (local.get $w))
            (i32.trunc_f64_s (local.get $fc))) (local.get $c)) (i32.const 2)))))
        (local.set $o (i32.shl (i32.mul (i32.add (i32.mul (local.get $y) (local.get $w)) (local.get $xx)) (local.get $c)) (i32.const 2)))
        (local.set $b (i32.const 0))
        (block $bDone (loop $bLoop
          (br_if $bDone (i32.ge_u (local.get $b) (local.get $n)))
          (local.set $k (i32.const 0))
          (block $kDone (loop $kLoop
            (br_if $kDone (i32.ge_u (local.get $k) (local.get $c)))
            (f32.store (i32.add (i32.add (local.get $dst) (local.get $o)) (i32.shl (local.get $k) (i32.const 2)))
              (if (result f32) (i32.lt_s (local.get $from) (i32.const 0))
                (then (local.get $fill))
                (else (f32.load (i32.add (i32.add (local.get $x) (local.get $from)) (i32.shl (local.get $k) (i32.const 2)))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $kLoop)))
          (local.set $o (i32.add (local.get $o) (local.get $image)))
          (local.set $from (select (local.get $from) (i32.add (local.get $from) (local.get $image)) (i32.lt_s (local.get $from) (i32.const 0))))
          (local.set $b (i32.add (local.get $b) (i32.const 1)))
          (br $bLoop)))
        (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
        (br $xLoop)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $yLoop))))
)
