;; Elementwise loops over the tfjs wasm backend's own heap, in SIMD128 (4 float32 lanes).
;; The module imports the backend's memory, so tensors are read and written where they lie;
;; pointers are byte offsets from `getMemoryOffset`. JavaScript loops over the same typed
;; arrays ran at ~4 ns per element here; these run at memory speed.
;;
;; Source of src/backend/wasm/heap-simd.generated.ts: `node scripts/build-heap-simd.mjs` after an
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

  ;; The gradient of clipByValue(x, lo, hi): out[i] = lo <= x[i] <= hi ? dy[i] : 0 (NaN x gives 0),
  ;; as tfjs's where(logicalAnd(x >= lo, x <= hi), dy, 0).
  (func (export "clip_grad")
    (param $x i32) (param $dy i32) (param $out i32) (param $n i32) (param $loBits i32) (param $hiBits i32)
    (local $i i32) (local $nv i32) (local $o i32) (local $vlo v128) (local $vhi v128) (local $vx v128)
    (local $fx f32) (local $lo f32) (local $hi f32)
    ;; lo and hi come as their bits: the heap pool passes integers only.
    (local.set $lo (f32.reinterpret_i32 (local.get $loBits)))
    (local.set $hi (f32.reinterpret_i32 (local.get $hiBits)))
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (local.set $vlo (f32x4.splat (local.get $lo)))
    (local.set $vhi (f32x4.splat (local.get $hi)))
    (block $vDone (loop $vLoop
      (br_if $vDone (i32.ge_u (local.get $i) (local.get $nv)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $vx (v128.load (i32.add (local.get $x) (local.get $o))))
      (v128.store
        (i32.add (local.get $out) (local.get $o))
        (v128.and
          (v128.load (i32.add (local.get $dy) (local.get $o)))
          (v128.and
            (f32x4.ge (local.get $vx) (local.get $vlo))
            (f32x4.le (local.get $vx) (local.get $vhi)))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $vLoop)))
    (block $sDone (loop $sLoop
      (br_if $sDone (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $o (i32.shl (local.get $i) (i32.const 2)))
      (local.set $fx (f32.load (i32.add (local.get $x) (local.get $o))))
      (f32.store
        (i32.add (local.get $out) (local.get $o))
        (select
          (f32.load (i32.add (local.get $dy) (local.get $o)))
          (f32.const 0)
          (i32.and (f32.ge (local.get $fx) (local.get $lo)) (f32.le (local.get $fx) (local.get $hi)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sLoop))))

  ;; Column sums of a row-major float32 [rows, cols] matrix into a float64 [cols] buffer (zeroed
  ;; by the caller): acc[j] += src[r, j]. Per-channel statistics of NHWC tensors.
  (func (export "column_sums")
    (param $src i32) (param $rows i32) (param $cols i32) (param $acc i32)
    (local $j i32) (local $cv i32) (local $v v128) (local $a i32) (local $s i32)
    (local.set $cv (i32.and (local.get $cols) (i32.const -4)))
    (block $done
      (br_if $done (i32.eqz (local.get $rows)))
      (loop $row
        (local.set $j (i32.const 0))
        (block $vDone (loop $vLoop
          (br_if $vDone (i32.ge_u (local.get $j) (local.get $cv)))
          (local.set $v (v128.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))
          (local.set $a (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (v128.store (local.get $a)
            (f64x2.add (v128.load (local.get $a)) (f64x2.promote_low_f32x4 (local.get $v))))
          (v128.store offset=16 (local.get $a)
            (f64x2.add
              (v128.load offset=16 (local.get $a))
              (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $a (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
          (f64.store (local.get $a)
            (f64.add
              (f64.load (local.get $a))
              (f64.promote_f32 (f32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2)))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $sLoop)))
        (local.set $src (i32.add (local.get $src) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br_if $row (local.get $rows)))))

  ;; dst[b, j, i] = src[b, i, j] for a batch of row-major [rows, cols] matrices of 4-byte values.
  (func (export "transpose_2d")
    (param $src i32) (param $dst i32) (param $batch i32) (param $rows i32) (param $cols i32)
    (local $bytes i32)
    (local.set $bytes (i32.shl (i32.mul (local.get $rows) (local.get $cols)) (i32.const 2)))
    (block $done (loop $loop
      (br_if $done (i32.eqz (local.get $batch)))
      (call $transpose (local.get $src) (local.get $dst) (local.get $rows) (local.get $cols)
        (local.get $cols) (local.get $rows))
      (local.set $src (i32.add (local.get $src) (local.get $bytes)))
      (local.set $dst (i32.add (local.get $dst) (local.get $bytes)))
      (local.set $batch (i32.sub (local.get $batch) (i32.const 1)))
      (br $loop))))

  ;; dst[c, m, a] = src[a, m, c] (4-byte values): the outer and inner axes swapped around a
  ;; middle one, as [N, H, W, C] -> [C, H, W, N]. One strided 2D transpose per middle index.
  (func (export "transpose_210")
    (param $src i32) (param $dst i32) (param $a i32) (param $m i32) (param $c i32)
    (local $i i32)
    (block $done (loop $loop
      (br_if $done (i32.ge_u (local.get $i) (local.get $m)))
      (call $transpose
        (i32.add (local.get $src) (i32.shl (i32.mul (local.get $i) (local.get $c)) (i32.const 2)))
        (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $i) (local.get $a)) (i32.const 2)))
        (local.get $a) (local.get $c)
        (i32.mul (local.get $m) (local.get $c)) (i32.mul (local.get $m) (local.get $a)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $loop))))

  ;; dst[m, a, :] = src[a, m, :] for rows of c 4-byte values, as [N, H, W, C] -> [H, W, N, C]:
  ;; each row copied 16 bytes at a time (memory.copy costs ~200 ns a call for rows this short).
  (func (export "swap_rows_102")
    (param $src i32) (param $dst i32) (param $a i32) (param $m i32) (param $c i32)
    (local $i i32) (local $j i32) (local $k i32) (local $rowBytes i32) (local $vBytes i32)
    (local $s i32) (local $d i32)
    (local.set $rowBytes (i32.shl (local.get $c) (i32.const 2)))
    (local.set $vBytes (i32.and (local.get $rowBytes) (i32.const -16)))
    ;; Rows of dst in order (writes sequential), reading src with a stride.
    (block $jDone (loop $jLoop
      (br_if $jDone (i32.ge_u (local.get $j) (local.get $m)))
      (local.set $i (i32.const 0))
      (block $iDone (loop $iLoop
        (br_if $iDone (i32.ge_u (local.get $i) (local.get $a)))
        (local.set $d
          (i32.add (local.get $dst)
            (i32.mul (i32.add (i32.mul (local.get $j) (local.get $a)) (local.get $i)) (local.get $rowBytes))))
        (local.set $s
          (i32.add (local.get $src)
            (i32.mul (i32.add (i32.mul (local.get $i) (local.get $m)) (local.get $j)) (local.get $rowBytes))))
        (local.set $k (i32.const 0))
        (block $vDone (loop $vLoop
          (br_if $vDone (i32.ge_u (local.get $k) (local.get $vBytes)))
          (v128.store (i32.add (local.get $d) (local.get $k)) (v128.load (i32.add (local.get $s) (local.get $k))))
          (local.set $k (i32.add (local.get $k) (i32.const 16)))
          (br $vLoop)))
        (block $sDone (loop $sLoop
          (br_if $sDone (i32.ge_u (local.get $k) (local.get $rowBytes)))
          (i32.store (i32.add (local.get $d) (local.get $k)) (i32.load (i32.add (local.get $s) (local.get $k))))
          (local.set $k (i32.add (local.get $k) (i32.const 4)))
          (br $sLoop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $iLoop)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $jLoop))))

  ;; dst[j * dstStride + i] = src[i * srcStride + j] for i < rows, j < cols (strides in values):
  ;; 4x4 blocks transposed in registers, the edges one value at a time.
  (func $transpose
    (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (param $srcStride i32) (param $dstStride i32)
    (local $i i32) (local $j i32) (local $rv i32) (local $cvv i32) (local $sb i32) (local $db i32)
    (local $s i32) (local $d i32) (local $k i32) (local $r16 i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rv (i32.and (local.get $rows) (i32.const -4)))
    (local.set $r16 (i32.and (local.get $rows) (i32.const -16)))
    (local.set $cvv (i32.and (local.get $cols) (i32.const -4)))
    (local.set $sb (i32.shl (local.get $srcStride) (i32.const 2)))
    (local.set $db (i32.shl (local.get $dstStride) (i32.const 2)))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i) (local.get $rv)))
      (local.set $j (i32.const 0))
      (block $jDone (loop $jLoop
        (br_if $jDone (i32.ge_u (local.get $j) (local.get $cvv)))
        ;; Blocks of 16 rows take their 4x4 tiles down the rows before the next 4 columns: each of
        ;; the 4 output rows gets a whole 64-byte line in consecutive stores (output rows a power
        ;; of two apart share L1 sets, and lines written 16 bytes at a time were evicted between).
        (local.set $k (i32.const 0))
        (loop $kLoop
        ;; s = &src[i + k, j]
        (local.set $s
          (i32.add (local.get $src)
            (i32.shl (i32.add (i32.mul (i32.add (local.get $i) (local.get $k)) (local.get $srcStride)) (local.get $j)) (i32.const 2))))
        (local.set $r0 (v128.load (local.get $s)))
        (local.set $r1 (v128.load (i32.add (local.get $s) (local.get $sb))))
        (local.set $r2 (v128.load (i32.add (local.get $s) (i32.shl (local.get $sb) (i32.const 1)))))
        (local.set $r3 (v128.load (i32.add (local.get $s) (i32.mul (local.get $sb) (i32.const 3)))))
        (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
        (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
        (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
        (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
        ;; d = &dst[j, i + k]
        (local.set $d
          (i32.add (local.get $dst)
            (i32.shl (i32.add (i32.mul (local.get $j) (local.get $dstStride)) (i32.add (local.get $i) (local.get $k))) (i32.const 2))))
        (v128.store (local.get $d)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $d) (local.get $db))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $d) (i32.shl (local.get $db) (i32.const 1)))
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
        (v128.store (i32.add (local.get $d) (i32.mul (local.get $db) (i32.const 3)))
          (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
        (br_if $kLoop (i32.and
          (i32.lt_u (local.get $i) (local.get $r16))
          (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 4))) (i32.const 16)))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $jLoop)))
      ;; Rows in this block: 16 while 16 remain, then 4.
      (local.set $k (select (i32.const 16) (i32.const 4) (i32.lt_u (local.get $i) (local.get $r16))))
      ;; The last cols % 4 columns of these rows.
      (block $tDone (loop $tLoop
        (br_if $tDone (i32.ge_u (local.get $j) (local.get $cols)))
        (call $copyColumn (local.get $src) (local.get $dst) (local.get $i) (i32.add (local.get $i) (local.get $k))
          (local.get $j) (local.get $srcStride) (local.get $dstStride))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tLoop)))
      (local.set $i (i32.add (local.get $i) (local.get $k)))
      (br $iLoop)))
    ;; The last rows % 4 rows, every column.
    (local.set $j (i32.const 0))
    (block $eDone (loop $eLoop
      (br_if $eDone (i32.ge_u (local.get $j) (local.get $cols)))
      (call $copyColumn (local.get $src) (local.get $dst) (local.get $rv) (local.get $rows)
        (local.get $j) (local.get $srcStride) (local.get $dstStride))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $eLoop))))

  ;; dst[j * dstStride + i] = src[i * srcStride + j] for i in [from, to).
  (func $copyColumn
    (param $src i32) (param $dst i32) (param $from i32) (param $to i32) (param $j i32)
    (param $srcStride i32) (param $dstStride i32)
    (block $done (loop $loop
      (br_if $done (i32.ge_u (local.get $from) (local.get $to)))
      (i32.store
        (i32.add (local.get $dst)
          (i32.shl (i32.add (i32.mul (local.get $j) (local.get $dstStride)) (local.get $from)) (i32.const 2)))
        (i32.load
          (i32.add (local.get $src)
            (i32.shl (i32.add (i32.mul (local.get $from) (local.get $srcStride)) (local.get $j)) (i32.const 2)))))
      (local.set $from (i32.add (local.get $from) (i32.const 1)))
      (br $loop))))

  ;; MaxPool 2x2/2 gradient (unpadded; c a multiple of 4): each dy value goes to the first maximum
  ;; of its window in row-major order (strictly greater wins, from -inf: a window of NaN or -inf
  ;; passes nothing), the other three positions get 0. Positions outside every window are left
  ;; as they are (the caller zeroes dx).
  (func (export "maxpool_grad_2x2")
    (param $x i32) (param $g i32) (param $dx i32)
    (param $n i32) (param $h i32) (param $w i32) (param $c i32) (param $oh i32) (param $ow i32)
    (local $b i32) (local $r i32) (local $q i32) (local $j i32)
    (local $rowBytes i32) (local $pixBytes i32) (local $p0 i32) (local $gp i32) (local $o i32)
    (local $v v128) (local $best v128) (local $idx v128) (local $m v128) (local $gv v128)
    (local.set $pixBytes (i32.shl (local.get $c) (i32.const 2)))
    (local.set $rowBytes (i32.mul (local.get $w) (local.get $pixBytes)))
    (local.set $gp (local.get $g))
    (block $bDone (loop $bLoop
      (br_if $bDone (i32.ge_u (local.get $b) (local.get $n)))
      (local.set $r (i32.const 0))
      (block $rDone (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $r) (local.get $oh)))
        (local.set $q (i32.const 0))
        (block $qDone (loop $qLoop
          (br_if $qDone (i32.ge_u (local.get $q) (local.get $ow)))
          ;; Byte offset of the window's top-left pixel.
          (local.set $p0
            (i32.add
              (i32.mul
                (i32.add (i32.mul (local.get $b) (local.get $h)) (i32.shl (local.get $r) (i32.const 1)))
                (local.get $rowBytes))
              (i32.mul (i32.shl (local.get $q) (i32.const 1)) (local.get $pixBytes))))
          (local.set $j (i32.const 0))
          (block $jDone (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $c)))
            (local.set $o (i32.add (local.get $p0) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $best (f32x4.splat (f32.const -inf)))
            (local.set $idx (v128.const i32x4 0 0 0 0))
            ;; Candidates 1..4: top-left, top-right, bottom-left, bottom-right.
            (local.set $v (v128.load (i32.add (local.get $x) (local.get $o))))
            (local.set $m (f32x4.gt (local.get $v) (local.get $best)))
            (local.set $best (v128.bitselect (local.get $v) (local.get $best) (local.get $m)))
            (local.set $idx (v128.bitselect (v128.const i32x4 1 1 1 1) (local.get $idx) (local.get $m)))
            (local.set $v (v128.load (i32.add (local.get $x) (i32.add (local.get $o) (local.get $pixBytes)))))
            (local.set $m (f32x4.gt (local.get $v) (local.get $best)))
            (local.set $best (v128.bitselect (local.get $v) (local.get $best) (local.get $m)))
            (local.set $idx (v128.bitselect (v128.const i32x4 2 2 2 2) (local.get $idx) (local.get $m)))
            (local.set $v (v128.load (i32.add (local.get $x) (i32.add (local.get $o) (local.get $rowBytes)))))
            (local.set $m (f32x4.gt (local.get $v) (local.get $best)))
            (local.set $best (v128.bitselect (local.get $v) (local.get $best) (local.get $m)))
            (local.set $idx (v128.bitselect (v128.const i32x4 3 3 3 3) (local.get $idx) (local.get $m)))
            (local.set $v
              (v128.load
                (i32.add (local.get $x)
                  (i32.add (local.get $o) (i32.add (local.get $rowBytes) (local.get $pixBytes))))))
            (local.set $m (f32x4.gt (local.get $v) (local.get $best)))
            (local.set $idx (v128.bitselect (v128.const i32x4 4 4 4 4) (local.get $idx) (local.get $m)))
            (local.set $gv (v128.load (local.get $gp)))
            (v128.store (i32.add (local.get $dx) (local.get $o))
              (v128.and (local.get $gv) (i32x4.eq (local.get $idx) (v128.const i32x4 1 1 1 1))))
            (v128.store (i32.add (local.get $dx) (i32.add (local.get $o) (local.get $pixBytes)))
              (v128.and (local.get $gv) (i32x4.eq (local.get $idx) (v128.const i32x4 2 2 2 2))))
            (v128.store (i32.add (local.get $dx) (i32.add (local.get $o) (local.get $rowBytes)))
              (v128.and (local.get $gv) (i32x4.eq (local.get $idx) (v128.const i32x4 3 3 3 3))))
            (v128.store
              (i32.add (local.get $dx) (i32.add (local.get $o) (i32.add (local.get $rowBytes) (local.get $pixBytes))))
              (v128.and (local.get $gv) (i32x4.eq (local.get $idx) (v128.const i32x4 4 4 4 4))))
            (local.set $gp (i32.add (local.get $gp) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $jLoop)))
          (local.set $q (i32.add (local.get $q) (i32.const 1)))
          (br $qLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bLoop))))

  ;; One tap of a convolution's filter gradient, accumulated into `out` (the tap's [ci, co] block):
  ;;   out[i, j] += x[b, r*sh + h0, first + q*step, i] * dy[b, r, first + q, j]
  ;; for every batch item b, output row r whose input row is inside the image, and the `count`
  ;; output columns q whose input column is (the caller offsets x and dy to the first one).
  ;; Outer products in registers: 4 input channels x 8 output channels per pass over a row.
  ;; ci a multiple of 4, co of 8. xRow, xStep, dyRow in bytes.
  (func (export "conv_filter_grad")
    (param $x i32) (param $dy i32) (param $out i32) (param $n i32) (param $ih i32) (param $oh i32)
    (param $h0 i32) (param $sh i32) (param $xRow i32) (param $xStep i32) (param $dyRow i32)
    (param $count i32) (param $ci i32) (param $co i32)
    (local $b i32) (local $r i32) (local $h i32) (local $xp i32) (local $dp i32) (local $i i32)
    (local $j i32) (local $q i32) (local $xa i32) (local $da i32) (local $o i32) (local $cb i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128)
    (local $a5 v128) (local $a6 v128) (local $a7 v128) (local $v v128) (local $s v128)
    (local $d0 v128) (local $d1 v128)
    (local.set $cb (i32.shl (local.get $co) (i32.const 2)))
    (block $done
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $b (i32.const 0))
      (block $bDone (loop $bLoop
        (br_if $bDone (i32.ge_u (local.get $b) (local.get $n)))
        (local.set $r (i32.const 0))
        (block $rDone (loop $rLoop
          (br_if $rDone (i32.ge_u (local.get $r) (local.get $oh)))
          (local.set $h (i32.add (i32.mul (local.get $r) (local.get $sh)) (local.get $h0)))
          ;; Unsigned: a row above the image is out of range too.
          (if (i32.lt_u (local.get $h) (local.get $ih)) (then
            (local.set $xp (i32.add (local.get $x)
              (i32.mul (i32.add (i32.mul (local.get $b) (local.get $ih)) (local.get $h)) (local.get $xRow))))
            (local.set $dp (i32.add (local.get $dy)
              (i32.mul (i32.add (i32.mul (local.get $b) (local.get $oh)) (local.get $r)) (local.get $dyRow))))
            (local.set $i (i32.const 0))
            (block $iDone (loop $iLoop
              (br_if $iDone (i32.ge_u (local.get $i) (local.get $ci)))
              (local.set $j (i32.const 0))
              (block $jDone (loop $jLoop
                (br_if $jDone (i32.ge_u (local.get $j) (local.get $co)))
                (local.set $o (i32.add (local.get $out)
                  (i32.shl (i32.add (i32.mul (local.get $i) (local.get $co)) (local.get $j)) (i32.const 2))))
                (local.set $a0 (v128.load (i32.add (local.get $o) (i32.const 0))))
                (local.set $a1 (v128.load (i32.add (local.get $o) (i32.add (i32.const 0) (i32.const 16)))))
                (local.set $a2 (v128.load (i32.add (local.get $o) (local.get $cb))))
                (local.set $a3 (v128.load (i32.add (local.get $o) (i32.add (local.get $cb) (i32.const 16)))))
                (local.set $a4 (v128.load (i32.add (local.get $o) (i32.mul (local.get $cb) (i32.const 2)))))
                (local.set $a5 (v128.load (i32.add (local.get $o) (i32.add (i32.mul (local.get $cb) (i32.const 2)) (i32.const 16)))))
                (local.set $a6 (v128.load (i32.add (local.get $o) (i32.mul (local.get $cb) (i32.const 3)))))
                (local.set $a7 (v128.load (i32.add (local.get $o) (i32.add (i32.mul (local.get $cb) (i32.const 3)) (i32.const 16)))))
                (local.set $xa (i32.add (local.get $xp) (i32.shl (local.get $i) (i32.const 2))))
                (local.set $da (i32.add (local.get $dp) (i32.shl (local.get $j) (i32.const 2))))
                (local.set $q (local.get $count))
                (loop $qLoop
                  (local.set $v (v128.load (local.get $xa)))
                  (local.set $d0 (v128.load (local.get $da)))
                  (local.set $d1 (v128.load offset=16 (local.get $da)))
                (local.set $s (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $v) (local.get $v)))
                    (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $s) (local.get $d0))))
                    (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $s) (local.get $d1))))
                (local.set $s (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $v) (local.get $v)))
                    (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $s) (local.get $d0))))
                    (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $s) (local.get $d1))))
                (local.set $s (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $v) (local.get $v)))
                    (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $s) (local.get $d0))))
                    (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $s) (local.get $d1))))
                (local.set $s (i8x16.shuffle 12 13 14 15 12 13 14 15 12 13 14 15 12 13 14 15 (local.get $v) (local.get $v)))
                    (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $s) (local.get $d0))))
                    (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $s) (local.get $d1))))
                  (local.set $xa (i32.add (local.get $xa) (local.get $xStep)))
                  (local.set $da (i32.add (local.get $da) (local.get $cb)))
                  (local.set $q (i32.sub (local.get $q) (i32.const 1)))
                  (br_if $qLoop (local.get $q)))
                (v128.store (i32.add (local.get $o) (i32.const 0)) (local.get $a0))
                (v128.store (i32.add (local.get $o) (i32.add (i32.const 0) (i32.const 16))) (local.get $a1))
                (v128.store (i32.add (local.get $o) (local.get $cb)) (local.get $a2))
                (v128.store (i32.add (local.get $o) (i32.add (local.get $cb) (i32.const 16))) (local.get $a3))
                (v128.store (i32.add (local.get $o) (i32.mul (local.get $cb) (i32.const 2))) (local.get $a4))
                (v128.store (i32.add (local.get $o) (i32.add (i32.mul (local.get $cb) (i32.const 2)) (i32.const 16))) (local.get $a5))
                (v128.store (i32.add (local.get $o) (i32.mul (local.get $cb) (i32.const 3))) (local.get $a6))
                (v128.store (i32.add (local.get $o) (i32.add (i32.mul (local.get $cb) (i32.const 3)) (i32.const 16))) (local.get $a7))
                (local.set $j (i32.add (local.get $j) (i32.const 8)))
                (br $jLoop)))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))
              (br $iLoop)))))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br $rLoop)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bLoop)))))
)
