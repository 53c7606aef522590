/**
 * A pool of Node worker threads that run the heap-SIMD loops on the wasm backend's shared memory
 * (tfjs's threaded build), beside XNNPACK's own pool: see `wasm/heap-parallel.ts`. Each worker
 * instantiates the modules on the same memory and sleeps in `Atomics.wait` until the caller
 * posts its share of calls in a small shared control block; the caller runs its own share and
 * waits for the others. Until every worker is ready (or if one never starts), the caller runs all
 * of the work itself. The workers are unref'd, so they never keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import { type HeapParallel, MAX_CALLS, PARALLEL_FUNCTIONS, runHere } from './wasm/heap-parallel.js';
import { heapSimdModules } from './wasm/heap-simd.js';

const ARGS = 16;
const SLOT = 1 + MAX_CALLS * ARGS;
// Control block: [0] job number, [1] workers done, [2] a worker failed, [3] function index,
// [4] workers ready, then one slot per worker: the number of calls and their arguments.
const HEADER = 5;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, modules, control, index, names, header, slot, args } = workerData;
const exports = Object.assign({}, ...modules.map((bytes) =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports));
const ctl = new Int32Array(control);
const base = header + index * slot;
Atomics.add(ctl, 4, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  try {
    const fn = exports[names[ctl[3]]];
    for (let c = 0, n = ctl[base]; c < n; c++) {
      const o = base + 1 + c * args;
      fn(...ctl.subarray(o, o + args));
    }
  } catch (e) {
    Atomics.store(ctl, 2, 1);
  }
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
`;

/** Starts `workers` worker threads on `memory` (a shared WebAssembly.Memory). */
export function startHeapPool(memory: WebAssembly.Memory, workers: number): HeapParallel {
  const control = new SharedArrayBuffer(4 * (HEADER + workers * SLOT));
  const ctl = new Int32Array(control);
  const modules = heapSimdModules(true);
  for (let index = 0; index < workers; index++) {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        memory,
        modules,
        control,
        index,
        names: PARALLEL_FUNCTIONS,
        header: HEADER,
        slot: SLOT,
        args: ARGS,
      },
    });
    worker.unref();
  }
  return {
    threads: workers + 1,
    run(fn, simd, calls) {
      const mine = calls[0] ?? [];
      const theirs = calls.slice(1);
      if (
        Atomics.load(ctl, 4) < workers ||
        theirs.length > workers ||
        theirs.some((list) => list.length > MAX_CALLS || list.some((a) => a.length > ARGS))
      ) {
        // Workers still starting, or more than one job's control block holds: all of it here.
        runHere(fn, simd, calls);
        return;
      }
      ctl[3] = PARALLEL_FUNCTIONS.indexOf(fn);
      Atomics.store(ctl, 1, 0);
      for (let w = 0; w < workers; w++) {
        const list = theirs[w] ?? [];
        const base = HEADER + w * SLOT;
        ctl[base] = list.length;
        list.forEach((args, c) => ctl.set(args, base + 1 + c * ARGS));
      }
      Atomics.add(ctl, 0, 1);
      Atomics.notify(ctl, 0);
      runHere(fn, simd, [mine]);
      for (let done = Atomics.load(ctl, 1); done < workers; done = Atomics.load(ctl, 1)) {
        if (Atomics.wait(ctl, 1, done, 60_000) === 'timed-out')
          throw new Error('medimg-classify: heap pool: a worker did not answer within 60 s');
      }
      // The loops only fail on a bad pointer, which would fail here too: report it.
      if (Atomics.exchange(ctl, 2, 0) !== 0)
        throw new Error(`medimg-classify: heap pool: ${fn} failed in a worker (a bad argument?)`);
    },
  };
}
