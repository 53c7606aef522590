import type { TrainCallbacks } from './train.js';

/** Options of {@link progressCallback}. */
export interface ProgressOptions {
  /** Where lines go (default `console.log`). */
  write?: (text: string) => void;
  /** A live, redrawn bar with ETA (terminals) instead of one line per epoch. */
  live?: boolean;
  /** For the live bar: rewrites the current line (e.g. `process.stdout.write('\r' + s)`). */
  redraw?: (text: string) => void;
}

const fmt = (s: number) =>
  s >= 3600
    ? `${(s / 3600).toFixed(1)}h`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`
      : `${s.toFixed(0)}s`;

/**
 * Training progress: a live bar with batch count, running loss and ETA on a terminal, plain
 * lines (one per epoch) otherwise, e.g. in CI logs.
 */
export function progressCallback(options: ProgressOptions = {}): TrainCallbacks {
  const write = options.write ?? ((t: string) => console.log(t));
  let epochs = 0;
  let perEpoch = 0;
  let start = 0;
  let epochStart = 0;
  let done = 0;
  let total = 0;
  let lossSum = 0;
  let count = 0;
  return {
    onTrainBegin: ({ epochs: e, startEpoch, batchesPerEpoch }) => {
      epochs = e;
      perEpoch = batchesPerEpoch;
      total = (e - startEpoch) * batchesPerEpoch;
      start = Date.now();
      if (startEpoch > 0) write(`resuming at epoch ${startEpoch + 1}/${e}`);
    },
    onEpochBegin: () => {
      epochStart = Date.now();
      lossSum = 0;
      count = 0;
    },
    onBatchEnd: (batch, logs) => {
      done++;
      lossSum += logs.loss * logs.size;
      count += logs.size;
      if (options.live && options.redraw) {
        const elapsed = (Date.now() - start) / 1000;
        const eta = (elapsed / done) * (total - done);
        const width = 24;
        const filled = Math.round((width * (batch + 1)) / perEpoch);
        options.redraw(
          `epoch ${logs.epoch + 1}/${epochs} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${batch + 1}/${perEpoch} loss ${(lossSum / count).toFixed(4)} ETA ${fmt(eta)}`,
        );
      }
    },
    onEpochEnd: (epoch, logs = {}) => {
      const parts = Object.entries(logs)
        .filter(([k]) => k !== 'epoch')
        .map(([k, v]) => `${k} ${k === 'lr' ? v.toExponential(2) : v.toFixed(4)}`);
      const line = `epoch ${epoch + 1}/${epochs} (${fmt((Date.now() - epochStart) / 1000)}): ${parts.join('  ')}`;
      if (options.live && options.redraw) options.redraw('');
      write(line);
    },
    onTrainEnd: (result) => {
      // What the frozen-feature cache saved (train's frozenFeatures).
      const f = result.frozenFeatures;
      if (!f) return;
      const hits = f.train.hits + (f.validation?.hits ?? 0);
      const seen = hits + f.train.misses + (f.validation?.misses ?? 0);
      if (seen === 0) return;
      const kept = (f.train.bytes + (f.validation?.bytes ?? 0)) / 2 ** 20;
      write(
        `frozen layers (through ${f.train.cut}) reused for ${hits} of ${seen} images (${kept.toFixed(1)} MiB kept)`,
      );
    },
  };
}
