;; Winograd F(4x4, 3x3) tile transforms over the wasm backend's heap, a third module beside
;; heap-simd.wat and heap-simd-train.wat (each under the 4 KB a browser compiles synchronously).
;; A 3x3 stride-1 convolution becomes, per 6x6 input tile, V = B^T d B (36 positions), 36 matrix
;; products M_p = V_p . U_p with U = G g G^T, and Y = A^T M A (a 4x4 output tile): 36 multiplies
;; per 16 outputs instead of 144. See winograd.ts. Tensors are NHWC float32 with c a multiple of
;; 4 (one v128 holds 4 channels); a tile's 36 positions are `stride` bytes apart, each a [tiles, c]
;; matrix. Every loop runs tiles [t0, t1), so calls on disjoint ranges write disjoint outputs.
;; The exported loops, wino_forward and wino_filter_grad, take 32 tiles at a time through every
;; step in their scratch `scr` (see wino_forward), so that V and M stay in cache. Pointers are
;; byte offsets.
;; Assembled into heap-simd.generated.ts by scripts/build-heap-simd.mjs.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; The input transform's rows, B^T (6x6), on 6 vectors at s, s + ss, ...; 6 results at d, d + ds, ...
  (func $bt (param $s i32) (param $ss i32) (param $d i32) (param $ds i32)
    (local $d0 v128) (local $d1 v128) (local $d2 v128) (local $d3 v128) (local $d4 v128)
    (local $d5 v128) (local $a v128) (local $b v128) (local $k4 v128) (local $k5 v128)
    (local.set $k4 (f32x4.splat (f32.const 4)))
    (local.set $k5 (f32x4.splat (f32.const 5)))
    (local.set $d0 (v128.load (local.get $s)))
    (local.set $d1 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d2 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d3 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d4 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d5 (v128.load (i32.add (local.get $s) (local.get $ss))))
    ;; 4 d0 - 5 d2 + d4
    (v128.store (local.get $d)
      (f32x4.add (f32x4.sub (f32x4.mul (local.get $k4) (local.get $d0)) (f32x4.mul (local.get $k5) (local.get $d2)))
        (local.get $d4)))
    ;; (d4 - 4 d2) +- (d3 - 4 d1)
    (local.set $a (f32x4.sub (local.get $d4) (f32x4.mul (local.get $k4) (local.get $d2))))
    (local.set $b (f32x4.sub (local.get $d3) (f32x4.mul (local.get $k4) (local.get $d1))))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.add (local.get $a) (local.get $b)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.sub (local.get $a) (local.get $b)))
    ;; (d4 - d2) +- 2 (d3 - d1)
    (local.set $a (f32x4.sub (local.get $d4) (local.get $d2)))
    (local.set $b (f32x4.sub (local.get $d3) (local.get $d1)))
    (local.set $b (f32x4.add (local.get $b) (local.get $b)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.add (local.get $a) (local.get $b)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.sub (local.get $a) (local.get $b)))
    ;; 4 d1 - 5 d3 + d5
    (v128.store (i32.add (local.get $d) (local.get $ds))
      (f32x4.add (f32x4.sub (f32x4.mul (local.get $k4) (local.get $d1)) (f32x4.mul (local.get $k5) (local.get $d3)))
        (local.get $d5))))

  ;; The output transform's rows, A^T (4x6), plus `add` and clamped to [lo, hi]; stores the first
  ;; `n` of the 4 results.
  (func $at (param $s i32) (param $ss i32) (param $d i32) (param $ds i32) (param $n i32) (param $add v128)
    (param $lo v128) (param $hi v128)
    (local $m0 v128) (local $m5 v128) (local $s12 v128) (local $d12 v128) (local $s34 v128)
    (local $d34 v128) (local $v v128)
    (local.set $m0 (v128.load (local.get $s)))
    (local.set $s12 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $v (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d12 (f32x4.sub (local.get $s12) (local.get $v)))
    (local.set $s12 (f32x4.add (local.get $s12) (local.get $v)))
    (local.set $s34 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $v (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $d34 (f32x4.sub (local.get $s34) (local.get $v)))
    (local.set $s34 (f32x4.add (local.get $s34) (local.get $v)))
    (local.set $m5 (v128.load (i32.add (local.get $s) (local.get $ss))))
    ;; m0 + (m1 + m2) + (m3 + m4)
    (v128.store (local.get $d)
      (call $clamp (f32x4.add (f32x4.add (local.get $m0) (local.get $s12)) (local.get $s34)) (local.get $add) (local.get $lo) (local.get $hi)))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 2)))
    ;; (m1 - m2) + 2 (m3 - m4)
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds)))
      (call $clamp (f32x4.add (local.get $d12) (f32x4.add (local.get $d34) (local.get $d34))) (local.get $add) (local.get $lo) (local.get $hi)))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 3)))
    ;; (m1 + m2) + 4 (m3 + m4)
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds)))
      (call $clamp (f32x4.add (local.get $s12) (f32x4.mul (f32x4.splat (f32.const 4)) (local.get $s34))) (local.get $add) (local.get $lo) (local.get $hi)))
    (br_if 0 (i32.lt_u (local.get $n) (i32.const 4)))
    ;; (m1 - m2) + 8 (m3 - m4) + m5
    (v128.store (i32.add (local.get $d) (local.get $ds))
      (call $clamp
        (f32x4.add (f32x4.add (local.get $d12) (f32x4.mul (f32x4.splat (f32.const 8)) (local.get $d34))) (local.get $m5))
        (local.get $add) (local.get $lo) (local.get $hi))))

  ;; min(max(v + add, lo), hi)
  (func $clamp (param $v v128) (param $add v128) (param $lo v128) (param $hi v128) (result v128)
    (f32x4.min (f32x4.max (f32x4.add (local.get $v) (local.get $add)) (local.get $lo)) (local.get $hi)))

  ;; The output transform's adjoint rows, A (6x4): 4 vectors at s, s + ss, ... to 6 at d, d + ds, ...
  (func $a (param $s i32) (param $ss i32) (param $d i32) (param $ds i32)
    (local $y0 v128) (local $y1 v128) (local $y2 v128) (local $y3 v128) (local $p v128) (local $q v128)
    (local.set $y0 (v128.load (local.get $s)))
    (local.set $y1 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $y2 (v128.load (local.tee $s (i32.add (local.get $s) (local.get $ss)))))
    (local.set $y3 (v128.load (i32.add (local.get $s) (local.get $ss))))
    (v128.store (local.get $d) (local.get $y0))
    ;; (y0 + y2) +- (y1 + y3)
    (local.set $p (f32x4.add (local.get $y0) (local.get $y2)))
    (local.set $q (f32x4.add (local.get $y1) (local.get $y3)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.add (local.get $p) (local.get $q)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.sub (local.get $p) (local.get $q)))
    ;; (y0 + 4 y2) +- (2 y1 + 8 y3)
    (local.set $p (f32x4.add (local.get $y0) (f32x4.mul (f32x4.splat (f32.const 4)) (local.get $y2))))
    (local.set $q (f32x4.add (f32x4.add (local.get $y1) (local.get $y1)) (f32x4.mul (f32x4.splat (f32.const 8)) (local.get $y3))))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.add (local.get $p) (local.get $q)))
    (v128.store (local.tee $d (i32.add (local.get $d) (local.get $ds))) (f32x4.sub (local.get $p) (local.get $q)))
    (v128.store (i32.add (local.get $d) (local.get $ds)) (local.get $y3)))

  ;; The byte offset of tile t's top-left corner in an image laid out as tiles of 4 rows and 4
  ;; columns (rows `row` bytes apart, images `img` bytes apart, c channels): t runs over images,
  ;; then tile rows (th per image), then tile columns (tw per row).
  (func $corner (param $t i32) (param $th i32) (param $tw i32) (param $row i32) (param $img i32) (param $c i32)
    (result i32)
    (local $per i32) (local $r i32)
    (local.set $per (i32.mul (local.get $th) (local.get $tw)))
    (local.set $r (i32.rem_u (local.get $t) (local.get $per)))
    (i32.add
      (i32.add
        (i32.mul (i32.div_u (local.get $t) (local.get $per)) (local.get $img))
        (i32.mul (i32.shl (i32.div_u (local.get $r) (local.get $tw)) (i32.const 2)) (local.get $row)))
      (i32.shl (i32.mul (i32.rem_u (local.get $r) (local.get $tw)) (local.get $c)) (i32.const 4))))

  ;; n bytes (a multiple of 16, at least 16) from s to d; zeros where s = 0 (no tensor starts at 0).
  (func $move (param $s i32) (param $d i32) (param $n i32)
    (local $e i32)
    (local.set $e (i32.add (local.get $d) (local.get $n)))
    (if (local.get $s)
      (then (loop $copy
        (v128.store (local.get $d) (v128.load (local.get $s)))
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (br_if $copy (i32.lt_u (local.tee $d (i32.add (local.get $d) (i32.const 16))) (local.get $e)))))
      (else (loop $zero
        (v128.store (local.get $d) (v128.const i32x4 0 0 0 0))
        (br_if $zero (i32.lt_u (local.tee $d (i32.add (local.get $d) (i32.const 16))) (local.get $e)))))))

  ;; V = B^T d B for tiles [t0, t1) of x [n, h, w, c] zero-padded by `top` rows and `left` columns
  ;; (and as many as the tiles need after): position p of tile t at v + p * stride + t * 4c. A
  ;; tile's 6x6 window is read in place where it lies inside x, else gathered with its zeros into
  ;; `stg` (36 c floats), so that x is never copied whole.
  (func $wino_input
    (param $x i32) (param $v i32) (param $stride i32) (param $th i32) (param $tw i32) (param $h i32)
    (param $w i32) (param $top i32) (param $left i32) (param $c i32) (param $scr i32) (param $stg i32)
    (param $t0 i32) (param $t1 i32)
    (local $base i32) (local $o i32) (local $k i32) (local $cb i32) (local $row i32) (local $r i32)
    (local $r0 i32) (local $c0 i32) (local $img i32) (local $j i32) (local $rr i32) (local $cc i32)
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (block $done (loop $tile
      (br_if $done (i32.ge_u (local.get $t0) (local.get $t1)))
      ;; The window's corner in x: rows r0.., columns c0.. of image img (negative in the padding).
      (local.set $r (i32.rem_u (local.get $t0) (i32.mul (local.get $th) (local.get $tw))))
      (local.set $img (i32.mul (i32.div_u (local.get $t0) (i32.mul (local.get $th) (local.get $tw)))
        (i32.mul (local.get $h) (i32.mul (local.get $w) (local.get $cb)))))
      (local.set $r0 (i32.sub (i32.shl (i32.div_u (local.get $r) (local.get $tw)) (i32.const 2)) (local.get $top)))
      (local.set $c0 (i32.sub (i32.shl (i32.rem_u (local.get $r) (local.get $tw)) (i32.const 2)) (local.get $left)))
      (if (i32.and
            (i32.and (i32.ge_s (local.get $r0) (i32.const 0)) (i32.ge_s (local.get $c0) (i32.const 0)))
            (i32.and (i32.le_s (i32.add (local.get $r0) (i32.const 6)) (local.get $h))
              (i32.le_s (i32.add (local.get $c0) (i32.const 6)) (local.get $w))))
        (then
          (local.set $row (i32.mul (local.get $w) (local.get $cb)))
          (local.set $base (i32.add (i32.add (local.get $x) (local.get $img))
            (i32.mul (i32.add (i32.mul (local.get $r0) (local.get $w)) (local.get $c0)) (local.get $cb)))))
        (else
          ;; Pixel (k, j) of the window to stg + (6 k + j) c floats; zeros outside x.
          (local.set $row (i32.mul (i32.const 6) (local.get $cb)))
          (local.set $base (local.get $stg))
          (local.set $k (i32.const 0))
          (loop $gr
            (local.set $j (i32.const 0))
            (loop $gc
              (local.set $rr (i32.add (local.get $r0) (local.get $k)))
              (local.set $cc (i32.add (local.get $c0) (local.get $j)))
              (call $move
                (select
                  (i32.add (i32.add (local.get $x) (local.get $img))
                    (i32.mul (i32.add (i32.mul (local.get $rr) (local.get $w)) (local.get $cc)) (local.get $cb)))
                  (i32.const 0)
                  (i32.and (i32.lt_u (local.get $rr) (local.get $h)) (i32.lt_u (local.get $cc) (local.get $w))))
                (i32.add (local.get $stg) (i32.mul (i32.add (i32.mul (local.get $k) (i32.const 6)) (local.get $j)) (local.get $cb)))
                (local.get $cb))
              (br_if $gc (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 6))))
            (br_if $gr (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 6))))))
      (local.set $o (i32.const 0))
      (loop $group
        (local.set $k (i32.const 0))
        (loop $col
          (call $bt (i32.add (i32.add (local.get $base) (local.get $o)) (i32.mul (local.get $k) (local.get $cb)))
            (local.get $row) (i32.add (local.get $scr) (i32.shl (local.get $k) (i32.const 4))) (i32.const 96))
          (br_if $col (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 6))))
        (local.set $k (i32.const 0))
        (loop $rowk
          (call $bt (i32.add (local.get $scr) (i32.mul (local.get $k) (i32.const 96))) (i32.const 16)
            (i32.add (i32.add (local.get $v) (i32.mul (i32.mul (local.get $k) (i32.const 6)) (local.get $stride)))
              (i32.add (i32.mul (local.get $t0) (local.get $cb)) (local.get $o)))
            (local.get $stride))
          (br_if $rowk (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 6))))
        (br_if $group (i32.lt_u (local.tee $o (i32.add (local.get $o) (i32.const 16))) (local.get $cb))))
      (local.set $t0 (i32.add (local.get $t0) (i32.const 1)))
      (br $tile))))

  ;; A dy A^T for tiles [t0, t1) of a zero-padded dy ([n, 4 th, 4 tw, c]): the adjoint of
  ;; wino_output, written like wino_input's V.
  (func $wino_output_grad
    (param $dy i32) (param $m i32) (param $stride i32) (param $th i32) (param $tw i32) (param $row i32)
    (param $img i32) (param $c i32) (param $scr i32) (param $t0 i32) (param $t1 i32)
    (local $base i32) (local $o i32) (local $k i32) (local $cb i32)
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (block $done (loop $tile
      (br_if $done (i32.ge_u (local.get $t0) (local.get $t1)))
      (local.set $base (i32.add (local.get $dy)
        (call $corner (local.get $t0) (local.get $th) (local.get $tw) (local.get $row) (local.get $img) (local.get $c))))
      (local.set $o (i32.const 0))
      (loop $group
        (local.set $k (i32.const 0))
        (loop $col
          (call $a (i32.add (i32.add (local.get $base) (local.get $o)) (i32.mul (local.get $k) (local.get $cb)))
            (local.get $row) (i32.add (local.get $scr) (i32.shl (local.get $k) (i32.const 4))) (i32.const 96))
          (br_if $col (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 4))))
        (local.set $k (i32.const 0))
        (loop $rowk
          (call $a (i32.add (local.get $scr) (i32.mul (local.get $k) (i32.const 96))) (i32.const 16)
            (i32.add (i32.add (local.get $m) (i32.mul (i32.mul (local.get $k) (i32.const 6)) (local.get $stride)))
              (i32.add (i32.mul (local.get $t0) (local.get $cb)) (local.get $o)))
            (local.get $stride))
          (br_if $rowk (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 6))))
        (br_if $group (i32.lt_u (local.tee $o (i32.add (local.get $o) (i32.const 16))) (local.get $cb))))
      (local.set $t0 (i32.add (local.get $t0) (i32.const 1)))
      (br $tile))))

  ;; y = A^T M A (+ bias[c] where bias != 0; then ReLU where act = 1, ReLU6 where act = 2) for
  ;; tiles [t0, t1) into y [n, oh, ow, c], dropping what falls outside it; position p of the
  ;; products is the [tiles, c] matrix at table[p].
  (func $wino_output
    (param $table i32) (param $y i32) (param $bias i32) (param $act i32) (param $th i32) (param $tw i32)
    (param $oh i32) (param $ow i32) (param $c i32) (param $scr i32) (param $t0 i32) (param $t1 i32)
    (local $base i32) (local $o i32) (local $k i32) (local $cb i32) (local $row i32) (local $r i32)
    (local $h i32) (local $n i32) (local $add v128) (local $lo v128) (local $hi v128)
    (local.set $lo (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $hi (v128.const f32x4 inf inf inf inf))
    (if (local.get $act) (then (local.set $lo (v128.const i32x4 0 0 0 0))))
    (if (i32.eq (local.get $act) (i32.const 2)) (then (local.set $hi (f32x4.splat (f32.const 6)))))
    (local.set $cb (i32.shl (local.get $c) (i32.const 2)))
    (local.set $row (i32.mul (local.get $ow) (local.get $cb)))
    (block $done (loop $tile
      (br_if $done (i32.ge_u (local.get $t0) (local.get $t1)))
      ;; The tile's corner in y: images oh rows apart, tile rows 4 rows apart, tile columns 4 columns.
      (local.set $base (i32.add (local.get $y)
        (call $corner (local.get $t0) (local.get $th) (local.get $tw) (local.get $row)
          (i32.mul (local.get $oh) (local.get $row)) (local.get $c))))
      ;; Rows and columns left in y from the tile's corner.
      (local.set $r (i32.rem_u (local.get $t0) (i32.mul (local.get $th) (local.get $tw))))
      (local.set $h (i32.sub (local.get $oh) (i32.shl (i32.div_u (local.get $r) (local.get $tw)) (i32.const 2))))
      (local.set $n (i32.sub (local.get $ow) (i32.shl (i32.rem_u (local.get $r) (local.get $tw)) (i32.const 2))))
      (local.set $o (i32.const 0))
      (loop $group
        (local.set $k (i32.const 0))
        (loop $gather
          (v128.store (i32.add (local.get $scr) (i32.shl (local.get $k) (i32.const 4)))
            (v128.load (i32.add (i32.load (i32.add (local.get $table) (i32.shl (local.get $k) (i32.const 2))))
              (i32.add (i32.mul (local.get $t0) (local.get $cb)) (local.get $o)))))
          (br_if $gather (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 36))))
        (local.set $k (i32.const 0))
        (loop $col
          (call $at (i32.add (local.get $scr) (i32.shl (local.get $k) (i32.const 4))) (i32.const 96)
            (i32.add (i32.add (local.get $scr) (i32.const 576)) (i32.shl (local.get $k) (i32.const 4))) (i32.const 96)
            (i32.const 4) (v128.const i32x4 0 0 0 0) (v128.const f32x4 -inf -inf -inf -inf)
            (v128.const f32x4 inf inf inf inf))
          (br_if $col (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 6))))
        (local.set $add (v128.const i32x4 0 0 0 0))
        (if (local.get $bias) (then (local.set $add (v128.load (i32.add (local.get $bias) (local.get $o))))))
        (local.set $k (i32.const 0))
        (loop $rowk
          (call $at (i32.add (i32.add (local.get $scr) (i32.const 576)) (i32.mul (local.get $k) (i32.const 96))) (i32.const 16)
            (i32.add (i32.add (local.get $base) (local.get $o)) (i32.mul (local.get $k) (local.get $row)))
            (local.get $cb) (local.get $n) (local.get $add) (local.get $lo) (local.get $hi))
          (br_if $rowk (i32.and
            (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1))) (i32.const 4))
            (i32.lt_u (local.get $k) (local.get $h)))))
        (br_if $group (i32.lt_u (local.tee $o (i32.add (local.get $o) (i32.const 16))) (local.get $cb))))
      (local.set $t0 (i32.add (local.get $t0) (i32.const 1)))
      (br $tile))))
  ;; c[m, n] = a[m, k] . b[k, n] (init = 1) or c += a . b (init = 0): row-major, rows of a `lda`
  ;; floats apart, n a multiple of 8; blocks of 4 rows x 8 columns summed over k in order. The last
  ;; block reads up to 3 rows of a past m (which must be readable) and touches only c's rows < m.
  (func $gemm (export "gemm")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $k i32) (param $n i32) (param $lda i32)
    (param $init i32)
    (local $i i32) (local $j i32) (local $q i32) (local $ap i32) (local $bp i32) (local $ka i32) (local $nb i32)
    (local $cp i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128)
    (local $a6 v128) (local $a7 v128) (local $b0 v128) (local $b1 v128) (local $s v128)
    (local.set $ka (i32.shl (local.get $lda) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i) (local.get $m)))
      (local.set $j (i32.const 0))
      (loop $jLoop
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (local.get $a0)) (local.set $a2 (local.get $a0))
        (local.set $a3 (local.get $a0)) (local.set $a4 (local.get $a0)) (local.set $a5 (local.get $a0))
        (local.set $a6 (local.get $a0)) (local.set $a7 (local.get $a0))
        (local.set $cp (i32.add (local.get $c)
          (i32.add (i32.mul (local.get $i) (local.get $nb)) (i32.shl (local.get $j) (i32.const 2)))))
        (if (i32.eqz (local.get $init)) (then (block $loaded
          (local.set $a0 (v128.load (local.get $cp)))
          (local.set $a1 (v128.load offset=16 (local.get $cp)))
          (br_if $loaded (i32.ge_u (i32.add (local.get $i) (i32.const 1)) (local.get $m)))
          (local.set $a2 (v128.load (i32.add (local.get $cp) (local.get $nb))))
          (local.set $a3 (v128.load offset=16 (i32.add (local.get $cp) (local.get $nb))))
          (br_if $loaded (i32.ge_u (i32.add (local.get $i) (i32.const 2)) (local.get $m)))
          (local.set $a4 (v128.load (i32.add (local.get $cp) (i32.shl (local.get $nb) (i32.const 1)))))
          (local.set $a5 (v128.load offset=16 (i32.add (local.get $cp) (i32.shl (local.get $nb) (i32.const 1)))))
          (br_if $loaded (i32.ge_u (i32.add (local.get $i) (i32.const 3)) (local.get $m)))
          (local.set $a6 (v128.load (i32.add (local.get $cp) (i32.mul (local.get $nb) (i32.const 3)))))
          (local.set $a7 (v128.load offset=16 (i32.add (local.get $cp) (i32.mul (local.get $nb) (i32.const 3))))))))
        (local.set $ap (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $ka))))
        (local.set $bp (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
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
        (block $stored
          (v128.store (local.get $cp) (local.get $a0))
          (v128.store offset=16 (local.get $cp) (local.get $a1))
          (br_if $stored (i32.ge_u (i32.add (local.get $i) (i32.const 1)) (local.get $m)))
          (v128.store (local.tee $cp (i32.add (local.get $cp) (local.get $nb))) (local.get $a2))
          (v128.store offset=16 (local.get $cp) (local.get $a3))
          (br_if $stored (i32.ge_u (i32.add (local.get $i) (i32.const 2)) (local.get $m)))
          (v128.store (local.tee $cp (i32.add (local.get $cp) (local.get $nb))) (local.get $a4))
          (v128.store offset=16 (local.get $cp) (local.get $a5))
          (br_if $stored (i32.ge_u (i32.add (local.get $i) (i32.const 3)) (local.get $m)))
          (v128.store (i32.add (local.get $cp) (local.get $nb)) (local.get $a6))
          (v128.store offset=16 (i32.add (local.get $cp) (local.get $nb)) (local.get $a7)))
        (br_if $jLoop (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $iLoop))))

  ;; c[k, n] += a[m, k]^T . b[m, n] (init = 0) or c = a^T . b (init = 1): row-major, rows of a `lda`
  ;; floats apart, k a multiple of 4, n of 8; blocks of 4 x 8 held in registers, summed over the
  ;; m rows in order.
  (func $gemm_tn (export "gemm_tn")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $k i32) (param $n i32) (param $lda i32)
    (param $init i32)
    (local $i i32) (local $j i32) (local $q i32) (local $ap i32) (local $bp i32) (local $ka i32) (local $nb i32)
    (local $cp i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128)
    (local $a6 v128) (local $a7 v128) (local $b0 v128) (local $b1 v128) (local $s v128) (local $v v128)
    (local.set $ka (i32.shl (local.get $lda) (i32.const 2)))
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (block $iDone (loop $iLoop
      (br_if $iDone (i32.ge_u (local.get $i) (local.get $k)))
      (local.set $j (i32.const 0))
      (loop $jLoop
        (local.set $cp (i32.add (local.get $c)
          (i32.add (i32.mul (local.get $i) (local.get $nb)) (i32.shl (local.get $j) (i32.const 2)))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (local.get $a0)) (local.set $a2 (local.get $a0))
        (local.set $a3 (local.get $a0)) (local.set $a4 (local.get $a0)) (local.set $a5 (local.get $a0))
        (local.set $a6 (local.get $a0)) (local.set $a7 (local.get $a0))
        (if (i32.eqz (local.get $init)) (then
          (local.set $a0 (v128.load (local.get $cp)))
          (local.set $a1 (v128.load offset=16 (local.get $cp)))
          (local.set $a2 (v128.load (i32.add (local.get $cp) (local.get $nb))))
          (local.set $a3 (v128.load offset=16 (i32.add (local.get $cp) (local.get $nb))))
          (local.set $a4 (v128.load (i32.add (local.get $cp) (i32.shl (local.get $nb) (i32.const 1)))))
          (local.set $a5 (v128.load offset=16 (i32.add (local.get $cp) (i32.shl (local.get $nb) (i32.const 1)))))
          (local.set $a6 (v128.load (i32.add (local.get $cp) (i32.mul (local.get $nb) (i32.const 3)))))
          (local.set $a7 (v128.load offset=16 (i32.add (local.get $cp) (i32.mul (local.get $nb) (i32.const 3)))))))
        (local.set $ap (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $bp (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $q (local.get $m))
        (loop $mLoop
          (local.set $v (v128.load (local.get $ap)))
          (local.set $b0 (v128.load (local.get $bp)))
          (local.set $b1 (v128.load offset=16 (local.get $bp)))
          (local.set $s (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $v) (local.get $v)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $v) (local.get $v)))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $v) (local.get $v)))
          (local.set $a4 (f32x4.add (local.get $a4) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a5 (f32x4.add (local.get $a5) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $s (i8x16.shuffle 12 13 14 15 12 13 14 15 12 13 14 15 12 13 14 15 (local.get $v) (local.get $v)))
          (local.set $a6 (f32x4.add (local.get $a6) (f32x4.mul (local.get $s) (local.get $b0))))
          (local.set $a7 (f32x4.add (local.get $a7) (f32x4.mul (local.get $s) (local.get $b1))))
          (local.set $ap (i32.add (local.get $ap) (local.get $ka)))
          (local.set $bp (i32.add (local.get $bp) (local.get $nb)))
          (br_if $mLoop (local.tee $q (i32.sub (local.get $q) (i32.const 1)))))
        (v128.store (local.get $cp) (local.get $a0))
        (v128.store offset=16 (local.get $cp) (local.get $a1))
        (v128.store (local.tee $cp (i32.add (local.get $cp) (local.get $nb))) (local.get $a2))
        (v128.store offset=16 (local.get $cp) (local.get $a3))
        (v128.store (local.tee $cp (i32.add (local.get $cp) (local.get $nb))) (local.get $a4))
        (v128.store offset=16 (local.get $cp) (local.get $a5))
        (v128.store (local.tee $cp (i32.add (local.get $cp) (local.get $nb))) (local.get $a6))
        (v128.store offset=16 (local.get $cp) (local.get $a7))
        (br_if $jLoop (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $iLoop))))

  ;; The forward pass over tiles [t0, t1) of 4x4 outputs (th = ceil(oh / 4) rows of tw = ceil(ow / 4)
  ;; per image), TB = 32 tiles at a time, everything of a block in `scr`: [0, 1152) the transforms'
  ;; scratch, then 36 pointers, V [36, TB, ci], M [36, TB, co], and the window of a tile at x's
  ;; border (36 ci floats). x is [n, h, w, ci], zero-padded by `top` and `left` as wino_input reads
  ;; it; u is U [36, ci, co]; y, bias and act as in wino_output.
  (func (export "wino_forward")
    (param $x i32) (param $u i32) (param $y i32) (param $bias i32) (param $act i32) (param $h i32)
    (param $w i32) (param $ci i32) (param $co i32) (param $oh i32) (param $ow i32) (param $top i32)
    (param $left i32) (param $scr i32) (param $t0 i32) (param $t1 i32)
    (local $e i32) (local $p i32) (local $v i32) (local $mb i32) (local $vs i32) (local $ms i32)
    (local $th i32) (local $tw i32)
    (local.set $th (i32.shr_u (i32.add (local.get $oh) (i32.const 3)) (i32.const 2)))
    (local.set $tw (i32.shr_u (i32.add (local.get $ow) (i32.const 3)) (i32.const 2)))
    ;; Positions 64 bytes more than 32 rows apart: at a power-of-two stride, the 36 would share
    ;; one set of the L1 cache.
    (local.set $vs (i32.add (i32.shl (local.get $ci) (i32.const 7)) (i32.const 64)))
    (local.set $ms (i32.add (i32.shl (local.get $co) (i32.const 7)) (i32.const 64)))
    (local.set $v (i32.add (local.get $scr) (i32.const 1296)))
    (local.set $mb (i32.add (local.get $v) (i32.mul (local.get $vs) (i32.const 36))))
    (block $done (loop $block
      (br_if $done (i32.ge_u (local.get $t0) (local.get $t1)))
      (local.set $e (select (local.get $t1) (i32.add (local.get $t0) (i32.const 32))
        (i32.lt_u (i32.sub (local.get $t1) (local.get $t0)) (i32.const 32))))
      (call $wino_input (local.get $x)
        (i32.sub (local.get $v) (i32.mul (local.get $t0) (i32.shl (local.get $ci) (i32.const 2))))
        (local.get $vs) (local.get $th) (local.get $tw) (local.get $h) (local.get $w) (local.get $top)
        (local.get $left) (local.get $ci) (local.get $scr)
        (i32.add (local.get $mb) (i32.mul (local.get $ms) (i32.const 36))) (local.get $t0) (local.get $e))
      (local.set $p (i32.const 0))
      (loop $pos
        (call $gemm (i32.add (local.get $v) (i32.mul (local.get $p) (local.get $vs)))
          (i32.add (local.get $u) (i32.shl (i32.mul (i32.mul (local.get $p) (local.get $ci)) (local.get $co)) (i32.const 2)))
          (i32.add (local.get $mb) (i32.mul (local.get $p) (local.get $ms)))
          (i32.sub (local.get $e) (local.get $t0)) (local.get $ci) (local.get $co) (local.get $ci) (i32.const 1))
        (i32.store (i32.add (i32.add (local.get $scr) (i32.const 1152)) (i32.shl (local.get $p) (i32.const 2)))
          (i32.sub (i32.add (local.get $mb) (i32.mul (local.get $p) (local.get $ms)))
            (i32.mul (local.get $t0) (i32.shl (local.get $co) (i32.const 2)))))
        (br_if $pos (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 1))) (i32.const 36))))
      (call $wino_output (i32.add (local.get $scr) (i32.const 1152)) (local.get $y) (local.get $bias)
        (local.get $act) (local.get $th) (local.get $tw) (local.get $oh) (local.get $ow) (local.get $co)
        (local.get $scr) (local.get $t0) (local.get $e))
      (local.set $t0 (local.get $e))
      (br $block))))

  ;; dU [36, ci, co] += V_p^T . (A dy A^T)_p over tiles [t0, t1), TB = 32 tiles at a time: x as in
  ;; wino_forward, dy zero-padded to whole tiles ([n, 4 th, 4 tw, co]); `scr` as in wino_forward.
  (func (export "wino_filter_grad")
    (param $x i32) (param $dy i32) (param $du i32) (param $h i32) (param $w i32) (param $top i32)
    (param $left i32) (param $ci i32) (param $co i32) (param $oh i32) (param $ow i32) (param $scr i32)
    (param $t0 i32) (param $t1 i32)
    (local $e i32) (local $p i32) (local $v i32) (local $mb i32) (local $vs i32) (local $ms i32)
    (local $th i32) (local $tw i32) (local $rowd i32)
    (local.set $th (i32.shr_u (i32.add (local.get $oh) (i32.const 3)) (i32.const 2)))
    (local.set $tw (i32.shr_u (i32.add (local.get $ow) (i32.const 3)) (i32.const 2)))
    (local.set $rowd (i32.shl (i32.mul (local.get $tw) (local.get $co)) (i32.const 4)))
    ;; Positions 64 bytes more than 32 rows apart: at a power-of-two stride, the 36 would share
    ;; one set of the L1 cache.
    (local.set $vs (i32.add (i32.shl (local.get $ci) (i32.const 7)) (i32.const 64)))
    (local.set $ms (i32.add (i32.shl (local.get $co) (i32.const 7)) (i32.const 64)))
    (local.set $v (i32.add (local.get $scr) (i32.const 1296)))
    (local.set $mb (i32.add (local.get $v) (i32.mul (local.get $vs) (i32.const 36))))
    (block $done (loop $block
      (br_if $done (i32.ge_u (local.get $t0) (local.get $t1)))
      (local.set $e (select (local.get $t1) (i32.add (local.get $t0) (i32.const 32))
        (i32.lt_u (i32.sub (local.get $t1) (local.get $t0)) (i32.const 32))))
      (call $wino_input (local.get $x)
        (i32.sub (local.get $v) (i32.mul (local.get $t0) (i32.shl (local.get $ci) (i32.const 2))))
        (local.get $vs) (local.get $th) (local.get $tw) (local.get $h) (local.get $w) (local.get $top)
        (local.get $left) (local.get $ci) (local.get $scr)
        (i32.add (local.get $mb) (i32.mul (local.get $ms) (i32.const 36))) (local.get $t0) (local.get $e))
      (call $wino_output_grad (local.get $dy)
        (i32.sub (local.get $mb) (i32.mul (local.get $t0) (i32.shl (local.get $co) (i32.const 2))))
        (local.get $ms) (local.get $th) (local.get $tw) (local.get $rowd)
        (i32.mul (i32.shl (local.get $th) (i32.const 2)) (local.get $rowd)) (local.get $co)
        (local.get $scr) (local.get $t0) (local.get $e))
      (local.set $p (i32.const 0))
      (loop $pos
        (call $gemm_tn (i32.add (local.get $v) (i32.mul (local.get $p) (local.get $vs)))
          (i32.add (local.get $mb) (i32.mul (local.get $p) (local.get $ms)))
          (i32.add (local.get $du) (i32.shl (i32.mul (i32.mul (local.get $p) (local.get $ci)) (local.get $co)) (i32.const 2)))
          (i32.sub (local.get $e) (local.get $t0)) (local.get $ci) (local.get $co) (local.get $ci) (i32.const 0))
        (br_if $pos (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 1))) (i32.const 36))))
      (local.set $t0 (local.get $e))
      (br $block))))
)
