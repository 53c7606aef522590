// Bundles the page for the browser (tfjs and the library's browser-safe root) into dist/,
// and copies the wasm binaries beside it, so the page works offline from any static server.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist');
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [join(here, 'app.ts')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  outfile: join(out, 'app.js'),
  alias: { 'medimg-classify': resolve(here, '../../src/index.ts') },
  metafile: true,
  logLevel: 'warning',
});
const wasmDir = join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')), '..');
for (const f of readdirSync(join(wasmDir, 'dist')).filter((f) => f.endsWith('.wasm')))
  copyFileSync(join(wasmDir, 'dist', f), join(out, f));
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.log(`built ${join(out, 'app.js')} (${(bytes / 1024).toFixed(0)} KiB with tfjs)`);
