import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { MedimgError } from '../util/errors.js';
import { installPatches } from './patches/index.js';
import { wasmThreading } from './threading.js';
import { usesRelaxedSimd } from './wasm/heap-simd.js';
import { registerWasmTrainingKernels } from './wasm/index.js';

/** Backends that {@link setupBackend} knows how to activate. */
export const BACKEND_NAMES = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgl', 'webgpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What {@link setupBackend} activated. */
export interface BackendInfo {
  /** The tfjs backend name now active (`tensorflow`, `wasm`, `cpu`, `webgl`, `webgpu`). */
  name: string;
  /** The npm package that provides it. */
  package: string;
  /** For `tensorflow`: whether the CUDA build (tfjs-node-gpu) was loaded. */
  gpu: boolean;
  /**
   * For `wasm`: the threads XNNPACK's pool uses (1 = the single-threaded build). Fixed when the
   * backend is first initialised in a process.
   */
  threads?: number;
  /** For `wasm`: why it runs on one thread although more were asked for, when it does. */
  threadsNote?: string;
  /**
   * For `wasm`: whether the library's heap product loops fuse their multiply-adds (relaxed SIMD,
   * Node 22 and later; see `setRelaxedSimd`).
   */
  relaxedSimd?: boolean;
  /** Backends that were tried and failed before this one, with the reason. */
  skipped: { name: string; reason: string }[];
}

/** Options of {@link setupBackend}. */
export interface SetupBackendOptions {
  /** Loads optional backend packages; replaced in tests. */
  importer?: PackageImporter;
  /**
   * Threads for the `wasm` backend. In Node (with `medimg-classify/node` imported) the default
   * is every core and the threaded build is loaded by this library; `1` keeps the
   * single-threaded build. In browsers tfjs decides whether threads are possible (the page
   * must be cross-origin isolated) and this caps their number. Only the first initialisation
   * of the wasm backend in a process can set it.
   */
  threads?: number;
}

/** Loads an optional package by name; replaced in tests. */
export type PackageImporter = (specifier: string) => Promise<unknown>;

// A variable specifier keeps bundlers from trying to resolve optional Node-only packages.
const defaultImporter: PackageImporter = (specifier) => import(/* @vite-ignore */ specifier);

interface Candidate {
  name: string;
  packages: string[];
  hint: string;
}

const CANDIDATES: Record<Exclude<BackendName, 'auto'>, Candidate> = {
  tensorflow: {
    name: 'tensorflow',
    packages: ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'],
    hint: 'npm install @tensorflow/tfjs-node (CPU, libtensorflow) or @tensorflow/tfjs-node-gpu (NVIDIA GPU, CUDA 11.2 + cuDNN 8.1)',
  },
  wasm: {
    name: 'wasm',
    packages: ['@tensorflow/tfjs-backend-wasm'],
    // A dependency of medimg-classify: missing only when the install was partial or pruned.
    hint: '@tensorflow/tfjs-backend-wasm ships with medimg-classify: reinstall it (npm install medimg-classify)',
  },
  cpu: {
    name: 'cpu',
    packages: ['@tensorflow/tfjs-backend-cpu'],
    hint: '@tensorflow/tfjs-backend-cpu ships with medimg-classify: reinstall it (npm install medimg-classify)',
  },
  webgl: {
    name: 'webgl',
    packages: ['@tensorflow/tfjs-backend-webgl'],
    hint: 'npm install @tensorflow/tfjs-backend-webgl (browsers only)',
  },
  webgpu: {
    name: 'webgpu',
    packages: ['@tensorflow/tfjs-backend-webgpu'],
    hint: 'npm install @tensorflow/tfjs-backend-webgpu (browsers with WebGPU only)',
  },
};

const AUTO_ORDER: Exclude<BackendName, 'auto'>[] = ['tensorflow', 'wasm', 'cpu'];

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/** Arranges the wasm thread count before the backend's first initialisation. */
function prepareWasmThreads(threads: number | undefined): { restore(): void; note?: string } {
  const none = { restore: () => {} };
  if (tf.engine().registry.wasm !== undefined) return none;
  const hook = wasmThreading();
  const wanted = threads ?? hook?.defaultThreads() ?? -1;
  if (hook !== undefined && wanted > 1) return hook.prepare(wanted);
  if (wanted >= 1) setThreadsCount(wanted);
  return none;
}

async function tryActivate(
  candidate: Candidate,
  importer: PackageImporter,
  threads: number | undefined,
): Promise<{ ok: true; info: Omit<BackendInfo, 'skipped'> } | { ok: false; reason: string }> {
  const reasons: string[] = [];
  for (const pkg of candidate.packages) {
    if (!(candidate.name in tf.engine().registryFactory)) {
      try {
        await importer(pkg);
      } catch (error) {
        reasons.push(`${pkg} is not installed or failed to load (${describe(error)})`);
        continue;
      }
    }
    if (!(candidate.name in tf.engine().registryFactory)) {
      reasons.push(`${pkg} loaded but registered no '${candidate.name}' backend`);
      continue;
    }
    let ok = false;
    const threading = candidate.name === 'wasm' ? prepareWasmThreads(threads) : { restore: () => {} };
    try {
      ok = await tf.setBackend(candidate.name);
    } catch (error) {
      reasons.push(`${pkg} failed to initialise (${describe(error)})`);
      continue;
    } finally {
      threading.restore();
    }
    if (!ok) {
      reasons.push(`${pkg} failed to initialise`);
      continue;
    }
    await tf.ready();
    // wasm as shipped cannot differentiate a convolution: add this library's training kernels.
    const info: Omit<BackendInfo, 'skipped'> = {
      name: candidate.name,
      package: pkg,
      gpu: pkg.endsWith('-gpu'),
    };
    if (candidate.name === 'wasm') {
      wasmThreading()?.settle?.(tf.backend());
      registerWasmTrainingKernels();
      info.threads = getThreadsCount();
      if (threading.note !== undefined) info.threadsNote = threading.note;
      info.relaxedSimd = usesRelaxedSimd();
    }
    installPatches({ wasm: candidate.name === 'wasm' });
    return { ok: true, info };
  }
  return { ok: false, reason: reasons.join('; ') };
}

/** Names of the backends registered with tfjs right now. */
export function availableBackends(): string[] {
  return Object.keys(tf.engine().registryFactory).sort();
}

/**
 * Activates a tfjs backend and reports what was activated.
 *
 * `'auto'` prefers `tensorflow` (tfjs-node-gpu, then tfjs-node, when they can be imported),
 * then `wasm`, then `cpu`. Asking for a backend that is not installed throws an error that
 * says which package to install and lists the backends that are available.
 *
 * @example
 * const info = await setupBackend('auto');
 * console.log(`training on ${info.name} (${info.package})`);
 */
export async function setupBackend(
  name: BackendName = 'auto',
  options: SetupBackendOptions = {},
): Promise<BackendInfo> {
  const importer = options.importer ?? defaultImporter;
  const { threads } = options;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
    throw new MedimgError('setupBackend', `threads must be a positive integer, got ${String(threads)}`);
  }
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new MedimgError(
      'setupBackend',
      `unknown backend '${String(name)}'; valid choices are ${BACKEND_NAMES.map((n) => `'${n}'`).join(', ')}`,
    );
  }
  const order = name === 'auto' ? AUTO_ORDER : [name];
  const skipped: BackendInfo['skipped'] = [];
  for (const key of order) {
    const candidate = CANDIDATES[key];
    const result = await tryActivate(candidate, importer, threads);
    if (result.ok) return { ...result.info, skipped };
    skipped.push({ name: key, reason: result.reason });
  }
  const detail = skipped.map((s) => `${s.name}: ${s.reason}`).join('\n  ');
  const wanted = name === 'auto' ? 'any backend' : `backend '${name}'`;
  const hint = name === 'auto' ? CANDIDATES.wasm.hint : CANDIDATES[name].hint;
  throw new MedimgError(
    'setupBackend',
    `could not activate ${wanted}. To get it: ${hint}.\n  ${detail}\n` +
      `Available backends: ${availableBackends().join(', ') || '(none)'}`,
  );
}
