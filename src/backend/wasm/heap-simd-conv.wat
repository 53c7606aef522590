;; Direct convolutions in SIMD128 over the tfjs wasm backend's heap (see heap-simd.wat for how the
;; modules are built and bound): a grayscale network's first layer, where XNNPACK's general
;; convolution spent ~14 ms of a 128x128 batch of 32 on one input channel.
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
)
