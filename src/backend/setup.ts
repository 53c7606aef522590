import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { MedimgError } from '../util/errors.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

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
  /** Backends that were tried and failed before this one, with the reason. */
  skipped: { name: string; reason: string }[];
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
    hint: 'npm install @tensorflow/tfjs-backend-wasm',
  },
  cpu: {
    name: 'cpu',
    packages: ['@tensorflow/tfjs-backend-cpu'],
    hint: 'npm install @tensorflow/tfjs-backend-cpu',
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

async function tryActivate(
  candidate: Candidate,
  importer: PackageImporter,
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
    try {
      ok = await tf.setBackend(candidate.name);
    } catch (error) {
      reasons.push(`${pkg} failed to initialise (${describe(error)})`);
      continue;
    }
    if (!ok) {
      reasons.push(`${pkg} failed to initialise`);
      continue;
    }
    await tf.ready();
    // wasm as shipped cannot differentiate a convolution: add this library's training kernels.
    if (candidate.name === 'wasm') registerWasmTrainingKernels();
    return { ok: true, info: { name: candidate.name, package: pkg, gpu: pkg.endsWith('-gpu') } };
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
  options: { importer?: PackageImporter } = {},
): Promise<BackendInfo> {
  const importer = options.importer ?? defaultImporter;
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
    const result = await tryActivate(candidate, importer);
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
