/**
 * The package root must bundle for browsers: esbuild with platform 'browser' fails on any
 * Node built-in (fs, path, crypto, ...) or Node-only package (sharp, h5wasm/node) reachable
 * from src/index.ts. tfjs is external (a peer). Also reports the bundle size.
 */

import { resolve } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('browser-safe package root', () => {
  it('bundles for the browser with no Node built-in reachable, and reports its size', async () => {
    const result = await build({
      entryPoints: [resolve(__dirname, '../../src/index.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      minify: true,
      write: false,
      metafile: true,
      external: ['@tensorflow/*'],
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((p) => /node_modules\/(sharp|h5wasm|vega)/.test(p))).toBe(false);
    // Node-only code lives in `*.node.ts` files (and the CLI); none may reach the browser bundle.
    expect(inputs.filter((p) => /\.node\.ts$/.test(p) || p.includes('src/cli/'))).toEqual([]);
    const bytes = result.outputFiles[0]!.contents.length;
    console.log(
      `browser bundle of medimg-classify (tfjs excluded): ${(bytes / 1024).toFixed(1)} KiB minified`,
    );
    expect(bytes).toBeGreaterThan(20_000);
  });

  it('a Node built-in would be caught', async () => {
    await expect(
      build({
        stdin: {
          contents: "import { readFileSync } from 'node:fs'; console.log(readFileSync);",
          resolveDir: __dirname,
        },
        bundle: true,
        platform: 'browser',
        write: false,
        logLevel: 'silent',
      }),
    ).rejects.toThrow(/node:fs/);
  });
});
