import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import type { CheckpointStore } from './checkpoint.js';

/**
 * Checkpoints as files `<dir>/<name>.ckpt`, each written to a temporary file and renamed over
 * the old one, so an interrupted write never leaves a broken checkpoint behind.
 */
export function fileCheckpointStore(dir: string): CheckpointStore {
  const path = (name: string) => join(dir, `${name}.ckpt`);
  return {
    write: (name, bytes) => writeFileAtomic(path(name), bytes),
    read: async (name) => {
      try {
        return new Uint8Array(await readFile(path(name)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw error;
      }
    },
    describe: path,
  };
}
