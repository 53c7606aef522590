import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
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
} from '../../src/backend/wasm/heap-simd.generated.js';
import { heapSimd, setHeapSimdEnabled, setRelaxedSimd } from '../../src/backend/wasm/heap-simd.js';

describe('heap SIMD module', () => {
  it('the generated module is assembled from the current heap-simd.wat', () => {
    const generated = execFileSync(process.execPath, ['scripts/build-heap-simd.mjs', '--print'], {
      encoding: 'utf8',
    });
    expect(readFileSync('src/backend/wasm/heap-simd.generated.ts', 'utf8')).toBe(generated);
  });

  it('setRelaxedSimd takes a boolean, with an error that says so', () => {
    expect(() => setRelaxedSimd('yes' as unknown as boolean)).toThrow(
      /setRelaxedSimd takes true or false, got "yes"/,
    );
  });

  it('each module stays under 4 KB, the most a browser compiles synchronously on its main thread', () => {
    for (const base64 of [
      HEAP_SIMD_SHARED,
      HEAP_SIMD_UNSHARED,
      HEAP_SIMD_TRAIN_SHARED,
      HEAP_SIMD_TRAIN_UNSHARED,
      HEAP_SIMD_WINOGRAD_SHARED,
      HEAP_SIMD_WINOGRAD_UNSHARED,
      HEAP_SIMD_CONV_SHARED,
      HEAP_SIMD_CONV_UNSHARED,
      HEAP_SIMD_WINOGRAD_FMA_SHARED,
      HEAP_SIMD_WINOGRAD_FMA_UNSHARED,
      HEAP_SIMD_CONV_FMA_SHARED,
      HEAP_SIMD_CONV_FMA_UNSHARED,
    ]) {
      expect(Buffer.from(base64, 'base64').length).toBeLessThan(4096);
    }
  });

  // Both variants, on memories of their own: the threaded build's shared one and the
  // single-threaded builds' unshared one (exported as `asm.memory` there).
  for (const shared of [true, false]) {
    it(`affine_channels on ${shared ? 'a shared' : 'an unshared'} memory: worked example with a scalar tail`, () => {
      const memory = shared
        ? new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true })
        : new WebAssembly.Memory({ initial: 1 });
      const backend = shared ? { wasm: { wasmMemory: memory } } : { wasm: { asm: { memory } } };
      const simd = heapSimd(backend);
      expect(simd).not.toBeNull();
      expect(heapSimd(backend)).toBe(simd); // one instance per memory
      const heap = new Float32Array(memory.buffer);
      // 2 rows x 5 channels at byte 64, a at 0, b at 32, output at 128.
      heap.set([1, 2, 3, 4, 5], 0);
      heap.set([10, 20, 30, 40, 50], 8);
      heap.set([1, 1, 1, 1, 1, 2, 2, 2, 2, 2], 16);
      simd!.affine_channels(64, 128, 0, 32, 2, 5);
      expect([...heap.subarray(32, 42)]).toEqual([11, 22, 33, 44, 55, 12, 24, 36, 48, 60]);
      expect(heap[42]).toBe(0); // nothing written past the end
    });
  }

  it('is null where the backend hides its memory, or when turned off', () => {
    expect(heapSimd({})).toBeNull();
    const backend = { wasm: { wasmMemory: new WebAssembly.Memory({ initial: 1 }) } };
    setHeapSimdEnabled(false);
    try {
      expect(heapSimd(backend)).toBeNull();
    } finally {
      setHeapSimdEnabled(true);
    }
    expect(heapSimd(backend)).not.toBeNull();
  });
});
