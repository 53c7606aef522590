import { silenceCpuBanner } from '../backend/patches/cpu-banner.js';
import { BACKEND_NAMES, type BackendInfo, type BackendName } from '../backend/setup.js';
import { setupBackend } from '../backend/setup.node.js';
import type { TtaViews } from '../inference/tta.js';
import { progressCallback } from '../train/progress.js';
import { num, UsageError } from './args.js';

export const out = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};
export const err = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

/** Checks `--backend` and `--threads` without starting anything. */
export function backendFlags(name: unknown, threads: unknown): { name: BackendName; threads?: number } {
  const b = (name ?? 'auto') as BackendName;
  if (!(BACKEND_NAMES as readonly string[]).includes(b))
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${String(b)}'`);
  const t =
    threads === undefined ? undefined : num('threads', threads as string, 1, { integer: true, min: 1 });
  return t === undefined ? { name: b } : { name: b, threads: t };
}

/**
 * Checks `--tta` without starting anything; undefined when not given. `views` lists the values
 * the command takes: 1 or 2 by default, `TTA_VIEWS` (1, 2 or 4) for commands that draw the views
 * from a saved classifier's training flips.
 */
export function ttaFlag<V extends TtaViews = 1 | 2>(
  value: unknown,
  views: readonly V[] = [1, 2] as V[],
): V | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!views.some((v) => String(v) === value))
    throw new UsageError(
      views.includes(4 as V)
        ? `--tta must be 1 (off), 2 (average each image and its flip) or 4 (each image, its horizontal and vertical flips and both), got '${String(value)}'`
        : `--tta must be 1 (off) or 2 (average each image and its horizontal flip), got '${String(value)}'`,
    );
  return n as V;
}

/** Starts the backend chosen by `--backend`/`--threads` and says which one runs. */
export async function startBackend(flags: { name: BackendName; threads?: number }): Promise<BackendInfo> {
  silenceCpuBanner();
  const info = await setupBackend(flags.name, flags.threads === undefined ? {} : { threads: flags.threads });
  out(
    `backend: ${info.name} (${info.package}${info.threads ? `, ${info.threads} thread${info.threads > 1 ? 's' : ''}` : ''})${info.skipped.length ? `; skipped ${info.skipped.map((s) => s.name).join(', ')}` : ''}`,
  );
  if (info.threadsNote) out(`note: ${info.threadsNote}`);
  return info;
}

/** Training progress: a live bar on a terminal, a line per epoch otherwise. */
export function progress() {
  return progressCallback({
    live: Boolean(process.stdout.isTTY),
    redraw: (s) => process.stdout.write(`\r${s.padEnd(100)}${s ? '' : '\r'}`),
    write: out,
  });
}
