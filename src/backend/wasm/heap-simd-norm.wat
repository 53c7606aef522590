;; SIMD loops for training-mode batch normalisation over the wasm backend's heap, a second module
;; beside heap-simd.wat (each stays under the 4 KB a browser compiles synchronously). Tensors are
;; row-major [rows, c] float32 with per-channel vectors of c values; pointers are byte offsets.
;; Assembled into heap-simd.generated.ts by scripts/build-heap-simd.mjs.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; acc[j] += e * (b[r, j] - mean[j]) over every row r, into a float64 [c] buffer, where
  ;; e = b[r, j] - mean[j] (sq = 1: the sum of squared deviations) or e = a[r, j] (sq = 0: the
  ;; sum of a times the deviations). Products in float32, as tfjs's square and mul; sums in float64.
  (func (export "column_dev_sums")
    (param $a i32) (param $b i32) (param $mean i32) (param $rows i32) (param $c i32) (param $acc i32)
    (param $sq i32)
    (local $j i32) (local $cv i32) (local $o i32) (local $p i32) (local $d v128) (local $v v128)
    (local $ds f32)
    (local.set $cv (i32.and (local.get $c) (i32.const -4)))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $j (i32.const 0))
        (block $vDone (loop $vLoop
          (br_if $vDone (i32.ge_u (local.get $j) (local.get $cv)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $d
            (f32x4.sub
              (v128.load (i32.add (local.get $b) (local.get $o)))
              (v128.load (i32.add (local.get $mean) (local.get $o)))))
          (local.set $v
            (f32x4.mul
              (local.get $d)
              (select (result v128) (local.get $d) (v128.load (i32.add (local.get $a) (local.get $o))) (local.get $sq))))
          (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (v128.store (local.get $p)
            (f64x2.add (v128.load (local.get $p)) (f64x2.promote_low_f32x4 (local.get $v))))
          (v128.store offset=16 (local.get $p)
            (f64x2.add
              (v128.load offset=16 (local.get $p))
              (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $j) (local.get $c)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $ds
            (f32.sub
              (f32.load (i32.add (local.get $b) (local.get $o)))
              (f32.load (i32.add (local.get $mean) (local.get $o)))))
          (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (f64.store (local.get $p)
            (f64.add
              (f64.load (local.get $p))
              (f64.promote_f32
                (f32.mul
                  (local.get $ds)
                  (select (local.get $ds) (f32.load (i32.add (local.get $a) (local.get $o))) (local.get $sq))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $sLoop)))
        (local.set $o (i32.shl (local.get $c) (i32.const 2)))
        (local.set $a (i32.add (local.get $a) (local.get $o)))
        (local.set $b (i32.add (local.get $b) (local.get $o)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))

  ;; dst[r, j] = g[r, j] * p[j] + ((x[r, j] - mean[j]) * q[j] + s[j]) over `rows` rows of c values:
  ;; the normalisation (p = 0) and its input gradient in one pass. f is the per-channel vectors'
  ;; base: mean, p, q, s at f, f + 4c, f + 8c, f + 12c.
  (func (export "centered_affine")
    (param $x i32) (param $g i32) (param $dst i32) (param $f i32) (param $rows i32) (param $c i32)
    (local $j i32) (local $cv i32) (local $o i32) (local $cb i32) (local $m i32)
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
          (v128.store (i32.add (local.get $dst) (local.get $o))
            (f32x4.add
              (f32x4.mul
                (v128.load (i32.add (local.get $g) (local.get $o)))
                (v128.load (i32.add (local.get $m) (local.get $cb))))
              (f32x4.add
                (f32x4.mul
                  (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $o))) (v128.load (local.get $m)))
                  (v128.load (i32.add (local.get $m) (i32.shl (local.get $cb) (i32.const 1)))))
                (v128.load (i32.add (local.get $m) (i32.mul (local.get $cb) (i32.const 3)))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $j) (local.get $c)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $m (i32.add (local.get $f) (local.get $o)))
          (f32.store (i32.add (local.get $dst) (local.get $o))
            (f32.add
              (f32.mul
                (f32.load (i32.add (local.get $g) (local.get $o)))
                (f32.load (i32.add (local.get $m) (local.get $cb))))
              (f32.add
                (f32.mul
                  (f32.sub (f32.load (i32.add (local.get $x) (local.get $o))) (f32.load (local.get $m)))
                  (f32.load (i32.add (local.get $m) (i32.shl (local.get $cb) (i32.const 1)))))
                (f32.load (i32.add (local.get $m) (i32.mul (local.get $cb) (i32.const 3)))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $sLoop)))
        (local.set $x (i32.add (local.get $x) (local.get $cb)))
        (local.set $g (i32.add (local.get $g) (local.get $cb)))
        (local.set $dst (i32.add (local.get $dst) (local.get $cb)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))
)
