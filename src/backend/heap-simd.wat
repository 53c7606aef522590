;; Elementwise loops over the tfjs wasm backend's own heap, in SIMD128 (4 float32 lanes).
;; The module imports the backend's memory, so tensors are read and written where they lie;
;; pointers are byte offsets from `getMemoryOffset`. JavaScript loops over the same typed
;; arrays ran at ~4 ns per element here; these run at memory speed.
;;
;; Source of src/backend/heap-simd.generated.ts: `node scripts/build-heap-simd.mjs` after an
;; edit (a test checks the two agree). The generator writes two variants, for the threaded
;; build's shared memory and for the single-threaded builds' unshared one.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; dst[r, j] = src[r, j] * a[j] + b[j] for r < rows, j < c: inference BatchNorm with the
  ;; per-channel factors folded into a and b.
  (func (export "affine_channels")
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
              (f32x4.add
                (f32x4.mul
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
              (f32.add
                (f32.mul
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

  ;; One AdaBelief step over n values, in the order of AdaBeliefOptimizer's tfjs ops, so the
  ;; results are the same float32 numbers:
  ;;   p1 = p * decay
  ;;   m' = m * beta1 + g * omb1
  ;;   s' = (s * beta2 + (g - m')^2 * omb2) + eps
  ;;   p' = p1 - (m' / (sqrt(s') / root + eps)) * alpha     (sgd = 0)
  ;;   p' = p1 - m' * alpha                                 (sgd = 1)
  (func (export "adabelief")
    (param $p i32) (param $g i32) (param $m i32) (param $s i32)
    (param $po i32) (param $mo i32) (param $so i32) (param $n i32)
    (param $decay f32) (param $beta1 f32) (param $omb1 f32) (param $beta2 f32) (param $omb2 f32)
    (param $eps f32) (param $root f32) (param $alpha f32) (param $sgd i32)
    (local $i i32) (local $nv i32) (local $o i32)
    (local $vdecay v128) (local $vbeta1 v128) (local $vomb1 v128) (local $vbeta2 v128)
    (local $vomb2 v128) (local $veps v128) (local $vroot v128) (local $valpha v128)
    (local $vg v128) (local $vm v128) (local $vs v128) (local $vr v128) (local $vstep v128)
    (local $fg f32) (local $fm f32) (local $fs f32) (local $fr f32) (local $fstep f32)
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (local.set $vdecay (f32x4.splat (local.get $decay)))
    (local.set $vbeta1 (f32x4.splat (local.get $beta1)))
    (local.set $vomb1 (f32x4.splat (local.get $omb1)))
    (local.set $vbeta2 (f32x4.splat (local.get $beta2)))
    (local.set $vomb2 (f32x4.splat (local.get $omb2)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $vroot (f32x4.splat (local.get $root)))
    (local.set $valpha (f32x4.splat (local.get $alpha)))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $i) (local.get $nv)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $vg (v128.load (i32.add (local.get $g) (local.get $o))))
        (local.set $vm
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $o))) (local.get $vbeta1))
            (f32x4.mul (local.get $vg) (local.get $vomb1))))
        (local.set $vr (f32x4.sub (local.get $vg) (local.get $vm)))
        (local.set $vs
          (f32x4.add
            (f32x4.add
              (f32x4.mul (v128.load (i32.add (local.get $s) (local.get $o))) (local.get $vbeta2))
              (f32x4.mul (f32x4.mul (local.get $vr) (local.get $vr)) (local.get $vomb2)))
            (local.get $veps)))
        (local.set $vstep
          (if (result v128) (local.get $sgd)
            (then (local.get $vm))
            (else
              (f32x4.div
                (local.get $vm)
                (f32x4.add (f32x4.div (f32x4.sqrt (local.get $vs)) (local.get $vroot)) (local.get $veps))))))
        (v128.store (i32.add (local.get $mo) (local.get $o)) (local.get $vm))
        (v128.store (i32.add (local.get $so) (local.get $o)) (local.get $vs))
        (v128.store
          (i32.add (local.get $po) (local.get $o))
          (f32x4.sub
            (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $o))) (local.get $vdecay))
            (f32x4.mul (local.get $vstep) (local.get $valpha))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $v)))
    (block $sdone
      (loop $t
        (br_if $sdone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $fg (f32.load (i32.add (local.get $g) (local.get $o))))
        (local.set $fm
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $m) (local.get $o))) (local.get $beta1))
            (f32.mul (local.get $fg) (local.get $omb1))))
        (local.set $fr (f32.sub (local.get $fg) (local.get $fm)))
        (local.set $fs
          (f32.add
            (f32.add
              (f32.mul (f32.load (i32.add (local.get $s) (local.get $o))) (local.get $beta2))
              (f32.mul (f32.mul (local.get $fr) (local.get $fr)) (local.get $omb2)))
            (local.get $eps)))
        (local.set $fstep
          (if (result f32) (local.get $sgd)
            (then (local.get $fm))
            (else
              (f32.div
                (local.get $fm)
                (f32.add (f32.div (f32.sqrt (local.get $fs)) (local.get $root)) (local.get $eps))))))
        (f32.store (i32.add (local.get $mo) (local.get $o)) (local.get $fm))
        (f32.store (i32.add (local.get $so) (local.get $o)) (local.get $fs))
        (f32.store
          (i32.add (local.get $po) (local.get $o))
          (f32.sub
            (f32.mul (f32.load (i32.add (local.get $p) (local.get $o))) (local.get $decay))
            (f32.mul (local.get $fstep) (local.get $alpha))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $t))))
)
