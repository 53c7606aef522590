/**
 * Patch: silence tfjs's "install tfjs-node" banner, which the cpu backend prints on first use.
 * Only the CLI calls this: it reports the backend choice itself, with why tfjs-node was skipped.
 * Library users keep tfjs's behaviour.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Marks the cpu backend as already used, so that it prints no banner. */
export function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
}
