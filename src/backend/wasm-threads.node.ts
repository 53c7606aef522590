/**
 * Loads tfjs-backend-wasm's threaded SIMD build under Node, so XNNPACK's convolutions and
 * matrix products use every core.
 *
 * tfjs 4.22 ships that build but disables it in Node (tensorflow/tfjs#3830) for three reasons,
 * each handled here without modifying tfjs:
 *
 * 1. `WASM_HAS_MULTITHREAD_SUPPORT` is hard-wired to false when `IS_NODE`: the flag is set.
 * 2. Emscripten's pthread workers are started from `blob:` URLs, which Node's `Worker` cannot
 *    load, and each worker imports the main script from a `Blob`. While the backend
 *    initialises, `Blob` is wrapped so that the two scripts' texts are captured, and
 *    `URL.createObjectURL` returns a file written (once, content-addressed) to the temp
 *    directory instead. The worker file starts with a short prelude that supplies what the
 *    bundled factory expects from its CommonJS wrapper (`require$$N`, `commonjsGlobal`, read
 *    from the package's own bundle) and points the worker's `URL.createObjectURL` at the
 *    main-script file.
 * 3. The C++ side caps the pool at `navigator.hardwareConcurrency / 2` (it assumes two
 *    hyper-threads per core), which Emscripten reads from `os.cpus()` in Node: on a 2-core
 *    machine that is one thread. `os.cpus()` reports `2 × threads` entries during initialisation.
 *
 * All three patches are undone as soon as the backend has initialised. Last, the pool's
 * workers are unref'd, or their idle threads would keep the process from exiting.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as os from 'node:os';
import { join } from 'node:path';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomicSync } from '../util/atomic-write.node.js';
import { startHeapPool } from './heap-pool.node.js';
import type { WasmThreading } from './threading.js';
import { setHeapParallel } from './wasm/heap-parallel.js';

const requireCjs = createRequire(import.meta.url);
/** The mutable CommonJS `os` object, which Emscripten's Node code reads. */
const osModule: typeof os = requireCjs('node:os');

const MAIN_SCRIPT_PREFIX = 'var WasmBackendModuleThreadedSimd';
/** The prefix of the threaded build's pthread worker script. */
const WORKER_MARKER = 'ENVIRONMENT_IS_PTHREAD';

/**
 * `var require$$N = require('m');` lines of tfjs-backend-wasm's Node bundle: the names its
 * inlined Emscripten factory uses for Node built-ins.
 */
export function bundleRequires(bundleSource: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const m of bundleSource.matchAll(/^var (require\$\$\d+) = require\('([\w:/-]+)'\);$/gm)) {
    names.set(m[1] as string, m[2] as string);
  }
  return names;
}

/** The prelude that lets the captured worker script run as a Node worker file. */
export function workerPrelude(requires: Map<string, string>, mainScriptPath: string): string {
  const lines = ['"use strict";', 'globalThis.commonjsGlobal = globalThis;'];
  for (const [name, mod] of requires) lines.push(`globalThis.${name} = require(${JSON.stringify(mod)});`);
  // The worker imports the main script through URL.createObjectURL(blob) + importScripts(url).
  lines.push(`URL.createObjectURL = () => ${JSON.stringify(mainScriptPath)};`);
  lines.push('URL.revokeObjectURL = () => {};');
  return `${lines.join('\n')}\n`;
}

function writeOnce(path: string, text: string): void {
  if (!existsSync(path)) writeFileAtomicSync(path, text);
}

/** Writes the two scripts the pthread workers need and returns the worker's path. */
function materialise(mainScript: string, workerScript: string, cacheDir: string): string {
  const bundlePath = requireCjs.resolve('@tensorflow/tfjs-backend-wasm');
  const requires = bundleRequires(readFileSync(bundlePath, 'utf8'));
  const hash = createHash('sha256').update(mainScript).update(workerScript).digest('hex').slice(0, 16);
  const dir = join(cacheDir, `medimg-classify-wasm-threads-${hash}`);
  const mainPath = join(dir, 'main.js');
  const workerPath = join(dir, 'worker.cjs');
  writeOnce(mainPath, mainScript);
  writeOnce(workerPath, workerPrelude(requires, mainPath) + workerScript);
  return workerPath;
}

/** Why `dir` cannot take the worker scripts, or undefined when it can. */
function unwritable(dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** Options of {@link nodeWasmThreading}; the defaults suit normal use. */
export interface NodeWasmThreadingOptions {
  /** Where the worker scripts are written (default `os.tmpdir()`). */
  cacheDir?: string;
}

/** The Node implementation of the wasm threading hook. */
export function nodeWasmThreading(options: NodeWasmThreadingOptions = {}): WasmThreading {
  return {
    defaultThreads: () =>
      typeof osModule.availableParallelism === 'function'
        ? osModule.availableParallelism()
        : osModule.cpus().length,
    prepare(threads) {
      const cacheDir = options.cacheDir ?? osModule.tmpdir();
      const problem = unwritable(cacheDir);
      if (problem !== undefined) {
        return {
          restore: () => {},
          note: `single-threaded: the worker scripts cannot be written to ${cacheDir} (${problem})`,
        };
      }
      const OriginalBlob = globalThis.Blob;
      const originalCreate = URL.createObjectURL;
      const originalCpus = osModule.cpus;
      const texts = new WeakMap<Blob, string>();
      let mainScript: string | undefined;

      class CapturingBlob extends OriginalBlob {
        constructor(parts?: BlobPart[], init?: BlobPropertyBag) {
          super(parts, init);
          if (parts?.length === 1 && typeof parts[0] === 'string') {
            texts.set(this, parts[0]);
            if (parts[0].startsWith(MAIN_SCRIPT_PREFIX)) mainScript = parts[0];
          }
        }
      }
      globalThis.Blob = CapturingBlob;
      URL.createObjectURL = (obj: Blob) => {
        const text = texts.get(obj);
        if (text?.includes(WORKER_MARKER) && mainScript !== undefined) {
          return materialise(mainScript, text, cacheDir);
        }
        return originalCreate(obj);
      };
      const cpus = originalCpus();
      osModule.cpus = () =>
        Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length] as os.CpuInfo);
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
      setThreadsCount(threads);
      return {
        restore: () => {
          globalThis.Blob = OriginalBlob;
          URL.createObjectURL = originalCreate;
          osModule.cpus = originalCpus;
        },
      };
    },
    settle(backend) {
      // Emscripten refs the worker of every running pthread, and XNNPACK's pool threads run
      // (idle) for the life of the process, which would then never exit by itself.
      const pthread = (backend as { wasm?: { PThread?: { runningWorkers?: { unref?(): void }[] } } }).wasm
        ?.PThread;
      for (const worker of pthread?.runningWorkers ?? []) worker.unref?.();
      // As many threads again for the heap-SIMD loops, which XNNPACK's pool does not run.
      const memory = (backend as { wasm?: { wasmMemory?: unknown } }).wasm?.wasmMemory;
      const workers = pthread?.runningWorkers?.length ?? 0;
      if (memory instanceof WebAssembly.Memory && memory.buffer instanceof SharedArrayBuffer && workers > 0)
        setHeapParallel(memory, startHeapPool(memory, workers));
    },
  };
}
