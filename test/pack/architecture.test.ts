/**
 * Keeps ARCHITECTURE.md's rules and the README's list of tfjs patches true.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');
const src = join(root, 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const NODE_ONLY = /from '(node:[^']+|sharp|h5wasm[^']*)'|import\('(node:[^']+|sharp|h5wasm[^']*)'\)/;

describe('architecture rules', () => {
  it('Node-only code lives in *.node.ts files (or the CLI): no other source file imports a Node built-in, sharp or h5wasm', () => {
    const offenders = files(src)
      .filter(
        (f) => !f.endsWith('.node.ts') && !f.includes(`${join('src', 'cli')}`) && !f.endsWith('src/node.ts'),
      )
      .filter((f) => NODE_ONLY.test(readFileSync(f, 'utf8')))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });

  it('the lint rule refuses an import of a *.node.ts file from browser-safe code, and allows it from a *.node.ts file', () => {
    // The project's biome.json, applied to probe files in a scratch copy of the layout.
    const scratch = mkdtempSync(join(tmpdir(), 'medimg-lint-'));
    try {
      const config = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8'));
      config.vcs = { enabled: false };
      delete config.$schema;
      writeFileSync(join(scratch, 'biome.json'), JSON.stringify(config));
      mkdirSync(join(scratch, 'src', 'metrics'), { recursive: true });
      const body =
        "import { writeFileAtomic } from '../util/atomic-write.node.js';\nexport const w = writeFileAtomic;\n";
      writeFileSync(join(scratch, 'src', 'metrics', 'probe.ts'), body);
      writeFileSync(join(scratch, 'src', 'metrics', 'probe.node.ts'), body);
      const lint = (file: string) =>
        spawnSync(process.execPath, [join(root, 'node_modules/@biomejs/biome/bin/biome'), 'lint', file], {
          cwd: scratch,
          encoding: 'utf8',
        });
      const refused = lint('src/metrics/probe.ts');
      expect(refused.status).not.toBe(0);
      expect(refused.stdout + refused.stderr).toMatch(/Node-only module/);
      const allowed = lint('src/metrics/probe.node.ts');
      expect(allowed.stdout + allowed.stderr).not.toMatch(/Node-only module/);
      expect(allowed.status).toBe(0);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it("the README's 'How this library changes tfjs' section names every file in src/backend/patches/", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('## How this library changes tfjs');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start + 10));
    const patches = readdirSync(join(src, 'backend', 'patches')).filter((f) => f !== 'index.ts');
    expect(patches.length).toBeGreaterThanOrEqual(8);
    for (const p of patches) expect(section, p).toContain(`patches/${p}`);
  });

  it('ARCHITECTURE.md names every top-level folder of src/', () => {
    const doc = readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8');
    const folders = readdirSync(src, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    for (const f of folders) expect(doc, f).toContain(`${f}/`);
  });
});
