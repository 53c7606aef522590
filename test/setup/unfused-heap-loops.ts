/**
 * Loaded before every test file (vitest.config.ts `setupFiles`): the heap loops without fused
 * multiply-adds, on every engine. Many tests compare the library's heap loops with XNNPACK's
 * kernels bit for bit, which holds only unfused; Node 20 runs them unfused anyway, Node 22 and later
 * would fuse them by default (relaxed SIMD). The fused loops are tested in child processes
 * (`wasm-threads.test.ts`).
 */
import { setRelaxedSimd } from '../../src/backend/wasm/heap-simd.js';

setRelaxedSimd(false);
