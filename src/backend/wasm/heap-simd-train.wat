;; SIMD training loops over the wasm backend's heap, a second module beside heap-simd.wat (each
;; stays under the 4 KB a browser compiles synchronously): training-mode batch normalisation, on
;; row-major [rows, c] float32 tensors with per-channel vectors of c values, and tfjs's Adam
;; update. Pointers are byte offsets.
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
)
