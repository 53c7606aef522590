/**
 * A pool of Node worker threads that run the heap-SIMD loops on the wasm backend's shared memory
 * (tfjs's threaded build), beside XNNPACK's own pool: see `wasm/heap-parallel.ts`. Each worker
 * instantiates the modules on the same memory and sleeps in `Atomics.wait` until the caller
 * posts a job in a small shared control block: either each thread's share of calls (`run`), or
 * groups of calls that every thread, the caller's included, takes one at a time from a shared
 * counter until none is left (`runBalanced`). Until every worker is ready (or if one never
 * starts), the caller runs all of the work itself. The workers are unref'd, so they never keep
 * the process alive.
 */
import { Worker } from 'node:worker_threads';
import {
  type HeapParallel,
  MAX_CALLS,
  MAX_GROUP_CALLS,
  MAX_GROUPS,
  onThread,
  PARALLEL_FUNCTIONS,
  runGroupsHere,
  runHere,
} from './wasm/heap-parallel.js';
import { heapSimdModules } from './wasm/heap-simd.js';

const ARGS = 16;
const SLOT = 1 + MAX_CALLS * ARGS;
// Control block: [0] job number, [1] workers done, [2] a worker failed, [3] function index,
// [4] workers ready, [5] the job's kind (0: each worker's own slot, 1: the shared groups), then
// one slot per worker: the number of calls and their arguments.
const HEADER = 6;

/**
 * The shared groups' block for `threads` threads: [0] the next group to take, [1] the number of
 * groups, [2] the argument that takes a per-thread value (-1: none), [3] the threads that take
 * part (the first ones), then each thread's value (thread 0 the caller's), each group's first call
 * (groups + 1 entries), the calls' arguments.
 */
function groupLayout(threads: number) {
  const values = 4;
  const starts = values + threads;
  const calls = starts + MAX_GROUPS + 1;
  return { values, starts, calls, size: calls + MAX_GROUP_CALLS * ARGS };
}

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, modules, control, shared, layout, index, names, header, slot, args } = workerData;
const exports = Object.assign({}, ...modules.map((bytes) =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports));
const ctl = new Int32Array(control);
const q = new Int32Array(shared);
const base = header + index * slot;
const call = new Array(args);
Atomics.add(ctl, 4, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  try {
    const fn = exports[names[ctl[3]]];
    if (ctl[5] === 1) {
      const groups = q[1], arg = q[2], mine = q[layout.values + index + 1];
      for (let g = index + 1 < q[3] ? Atomics.add(q, 0, 1) : groups; g < groups; g = Atomics.add(q, 0, 1)) {
        for (let c = q[layout.starts + g], end = q[layout.starts + g + 1]; c < end; c++) {
          const o = layout.calls + c * args;
          for (let i = 0; i < args; i++) call[i] = q[o + i];
          if (arg >= 0) call[arg] = mine;
          fn(...call);
        }
      }
    } else {
      for (let c = 0, n = ctl[base]; c < n; c++) {
        const o = base + 1 + c * args;
        fn(...ctl.subarray(o, o + args));
      }
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
  const layout = groupLayout(workers + 1);
  const shared = new SharedArrayBuffer(4 * layout.size);
  const q = new Int32Array(shared);
  const modules = heapSimdModules(true);
  for (let index = 0; index < workers; index++) {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        memory,
        modules,
        control,
        shared,
        layout,
        index,
        names: PARALLEL_FUNCTIONS,
        header: HEADER,
        slot: SLOT,
        args: ARGS,
      },
    });
    worker.unref();
  }
  /** Posts job `kind` for `fn`, runs `here` on this thread, and waits for every worker. */
  const post = (fn: Parameters<HeapParallel['run']>[0], kind: number, here: () => void) => {
    ctl[3] = PARALLEL_FUNCTIONS.indexOf(fn);
    ctl[5] = kind;
    Atomics.store(ctl, 1, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    here();
    for (let done = Atomics.load(ctl, 1); done < workers; done = Atomics.load(ctl, 1)) {
      if (Atomics.wait(ctl, 1, done, 60_000) === 'timed-out')
        throw new Error('medimg-classify: heap pool: a worker did not answer within 60 s');
    }
    // The loops only fail on a bad pointer, which would fail here too: report it.
    if (Atomics.exchange(ctl, 2, 0) !== 0)
      throw new Error(`medimg-classify: heap pool: ${fn} failed in a worker (a bad argument?)`);
  };
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
      for (let w = 0; w < workers; w++) {
        const list = theirs[w] ?? [];
        const base = HEADER + w * SLOT;
        ctl[base] = list.length;
        list.forEach((args, c) => ctl.set(args, base + 1 + c * ARGS));
      }
      post(fn, 0, () => runHere(fn, simd, [mine]));
    },
    runBalanced(fn, simd, groups, perThread, threads = workers + 1) {
      const total = groups.reduce((n, g) => n + g.length, 0);
      const taking = Math.min(threads, workers + 1, perThread?.values.length ?? threads);
      if (
        Atomics.load(ctl, 4) < workers ||
        taking < 2 ||
        groups.length > MAX_GROUPS ||
        total > MAX_GROUP_CALLS ||
        groups.some((g) => g.some((a) => a.length > ARGS))
      ) {
        runGroupsHere(fn, simd, groups, perThread);
        return;
      }
      q[1] = groups.length;
      q[2] = perThread ? perThread.arg : -1;
      q[3] = taking;
      for (let t = 0; t < taking; t++) q[layout.values + t] = perThread?.values[t] ?? 0;
      let c = 0;
      groups.forEach((group, g) => {
        q[layout.starts + g] = c;
        for (const args of group) q.set(args, layout.calls + ARGS * c++);
      });
      q[layout.starts + groups.length] = c;
      Atomics.store(q, 0, 0);
      const f = simd[fn] as (...a: number[]) => void;
      post(fn, 1, () => {
        for (let g = Atomics.add(q, 0, 1); g < groups.length; g = Atomics.add(q, 0, 1))
          for (const args of groups[g] as number[][]) f(...onThread(args, 0, perThread));
      });
    },
  };
}
