import {
  type BackendInfo,
  type BackendName,
  type SetupBackendOptions,
  setupBackend as setupAny,
} from './setup.js';
import { setWasmThreading, wasmThreading } from './threading.js';
import { nodeWasmThreading } from './wasm-threads.node.js';

/**
 * {@link setupAny | setupBackend} for Node: the same choices, plus the threaded wasm build on
 * every core (`threads` in the options; `1` keeps the single-threaded build).
 *
 * @example
 * const info = await setupBackend('auto');
 * console.log(`training on ${info.name}${info.threads ? ` with ${info.threads} threads` : ''}`);
 */
export function setupBackend(
  name: BackendName = 'auto',
  options: SetupBackendOptions = {},
): Promise<BackendInfo> {
  if (wasmThreading() === undefined) setWasmThreading(nodeWasmThreading());
  return setupAny(name, options);
}
