/**
 * How `setupBackend('wasm')` asks for a multi-threaded wasm build. The browser-safe root only
 * defines the hook; the Node entry (`medimg-classify/node`) installs one that makes the threaded
 * build load under Node (see `node/wasm-threads.ts`). Browsers use tfjs's own detection
 * (cross-origin isolation), and `threads` is passed to its `setThreadsCount`.
 */

/** Installed by an environment that can make the threaded wasm build load. */
export interface WasmThreading {
  /** Threads to use when the caller does not say. */
  defaultThreads(): number;
  /**
   * Called right before the wasm backend is first initialised, with the thread count wanted
   * (> 1). `restore` undoes any temporary global patches; it is called once initialisation has
   * settled, whether it succeeded or not. `note` says why threads could not be arranged (the
   * backend then initialises single-threaded).
   */
  prepare(threads: number): { restore(): void; note?: string };
  /**
   * Called with the backend once it has initialised, e.g. to let the process exit although the
   * thread pool's workers are alive.
   */
  settle?(backend: unknown): void;
}

let installed: WasmThreading | undefined;

/** Installs (or, with `undefined`, removes) the wasm threading hook. */
export function setWasmThreading(hook: WasmThreading | undefined): void {
  installed = hook;
}

/** The wasm threading hook in force, if any. */
export function wasmThreading(): WasmThreading | undefined {
  return installed;
}
