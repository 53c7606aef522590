/**
 * Packed-package check: builds, packs, installs the tarball into a scratch project, then
 * imports it from ESM and requires it from CJS, and runs publint and attw on the tarball.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });

const PUBLIC_ROOT_NAMES = ['setupBackend', 'availableBackends', 'Random', 'MedimgError', 'VERSION'];

describe('packed package', () => {
  let work = '';
  let tarball = '';

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'medimg-pack-'));
    run('npm', ['run', 'build', '--silent'], root);
    const out = run('npm', ['pack', '--json', '--pack-destination', work], root);
    const [info] = JSON.parse(out) as { filename: string }[];
    tarball = join(work, info!.filename);
    const app = join(work, 'app');
    run('mkdir', ['-p', app], work);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', version: '1.0.0', private: true }),
    );
    // Peer dependencies come from the npm cache filled by this repository's own install.
    run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        tarball,
        '@tensorflow/tfjs-core@4.22.0',
        '@tensorflow/tfjs-layers@4.22.0',
      ],
      app,
    );
  }, 300_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships only dist, README, CHANGELOG and LICENSE', () => {
    const files = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], root))[0].files.map(
      (f: { path: string }) => f.path,
    ) as string[];
    for (const f of files) expect(f).toMatch(/^(dist\/|README\.md$|CHANGELOG\.md$|LICENSE$|package\.json$)/);
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.cjs');
    expect(files).toContain('dist/node.d.cts');
  });

  it('imports from ESM and requires from CJS, with the public names, and uses the app copy of tfjs', () => {
    const app = join(work, 'app');
    const names = JSON.stringify(PUBLIC_ROOT_NAMES);
    writeFileSync(
      join(app, 'esm.mjs'),
      `import * as m from 'medimg-classify'; import * as n from 'medimg-classify/node';
       import * as tf from '@tensorflow/tfjs-core';
       const missing = ${names}.filter((k) => !(k in m) || !(k in n));
       if (missing.length) throw new Error('missing ' + missing);
       const info = await m.setupBackend('auto');
       if (tf.getBackend() !== info.name) throw new Error('library used another tfjs-core copy');
       console.log('esm ok', info.name);`,
    );
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const m = require('medimg-classify'); const n = require('medimg-classify/node');
       const missing = ${names}.filter((k) => !(k in m) || !(k in n));
       if (missing.length) throw new Error('missing ' + missing);
       m.setupBackend('cpu').then((i) => console.log('cjs ok', i.name));`,
    );
    expect(run('node', ['esm.mjs'], app)).toContain('esm ok wasm');
    expect(run('node', ['cjs.cjs'], app)).toContain('cjs ok cpu');
    // tfjs is a peer: exactly one copy of tfjs-core in the app.
    const nested = readdirSync(join(app, 'node_modules/medimg-classify')).includes('node_modules');
    expect(nested).toBe(false);
  });

  it('publint and attw are clean', () => {
    const lint = run('npx', ['--no-install', 'publint', 'run', tarball, '--strict'], root);
    expect(lint).toMatch(/All good!/);
    // attw exits non-zero on a problem in the node16/bundler profile; node10 (no `exports`) is out of scope.
    const report = JSON.parse(
      run('npx', ['--no-install', 'attw', tarball, '--profile', 'node16', '--format', 'json'], root),
    ) as {
      analysis: { entrypoints: Record<string, unknown> };
      problems?: Record<string, { resolutionKind?: string }[]>;
    };
    const real = Object.values(report.problems ?? {})
      .flat()
      .filter((p) => p.resolutionKind !== 'node10');
    expect(real).toEqual([]);
    expect(Object.keys(report.analysis.entrypoints)).toEqual(expect.arrayContaining(['.', './node']));
  });
});
