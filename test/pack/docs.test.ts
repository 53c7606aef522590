import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('API docs', () => {
  it('typedoc renders the API from the doc comments without errors', () => {
    const r = spawnSync('npx', ['--no-install', 'typedoc', '--emit', 'none'], {
      cwd: resolve(__dirname, '../..'),
      encoding: 'utf8',
    });
    // typedoc exits non-zero on errors and prints a summary only when something was reported.
    expect(r.stdout + r.stderr).not.toMatch(/\[error\]|Found [1-9]\d* error/);
    expect(r.status).toBe(0);
  }, 180_000);
});
