/**
 * End to end in real Chromium (Debian's `chromium`, driven by playwright-core; no browser
 * download): trains a small classifier with the Node library, serves the example page with it,
 * drops an image, and checks the shown class and that the page's probabilities match
 * `predict` in Node. Skipped when /usr/bin/chromium is absent (.ci/run installs it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  arraySource,
  loadClassifier,
  Rescale,
  saveClassifier,
  setupBackend,
  simpleCnn,
  syntheticDataset,
  train,
} from '../../src/node.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const page = resolve(__dirname, '../../examples/browser');
const work = mkdtempSync(join(tmpdir(), 'medimg-browser-'));
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
};

function serve(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const base = path.startsWith('/model/') ? join(work, 'classifier') : page;
    const rel = normalize(
      path.startsWith('/model/') ? path.slice('/model/'.length) : path.slice(1) || 'index.html',
    );
    const file = join(base, rel);
    if (rel.startsWith('..') || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () =>
      done({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` }),
    ),
  );
}

describe.skipIf(!existsSync(CHROMIUM))('browser page in headless Chromium', () => {
  let server: Server;
  let url = '';
  const size = 32;
  const data = syntheticDataset({ kind: 'brain-mri', perClass: 10, size, seed: 9 });

  beforeAll(async () => {
    await setupBackend('wasm');
    const model = simpleCnn({
      inputShape: [size, size, 1],
      numClasses: 4,
      filters: [4, 8],
      dense: 8,
      seed: 2,
    });
    const pre = new Rescale({ scale: 1 / 255 });
    await train({
      model,
      train: arraySource(data.samples, { height: size, width: size, numClasses: 4 }),
      optimizer: adaBelief({ learningRate: 3e-3 }),
      epochs: 2,
      batchSize: 8,
      transform: pre,
    });
    await saveClassifier(join(work, 'classifier'), {
      model,
      classNames: data.classes,
      decode: { channels: 1, resize: { height: size, width: size, fit: 'contain' } },
      preprocessing: pre,
      normalClass: 'notumor',
    });
    model.dispose();
    const s = data.samples[3]!;
    await sharp(Buffer.from(Uint8Array.from(s.pixels, Math.round)), {
      raw: { width: size, height: size, channels: 1 },
    })
      .png()
      .toFile(join(work, 'scan.png'));
    execFileSync(process.execPath, [join(page, 'build.mjs')], { stdio: 'pipe' });
    ({ server, url } = await serve());
  }, 180_000);

  afterAll(() => {
    server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('classifies a dropped image like predict in Node, shows the fallback note and a Grad-CAM overlay', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.goto(url);
      await tab.waitForSelector('body[data-ready="model"]', { timeout: 60_000 });
      await tab.setInputFiles('#file', join(work, 'scan.png'));
      await tab.waitForSelector('body[data-ready="result"]', { timeout: 60_000 });
      const shown = await tab.evaluate(
        () =>
          (
            window as unknown as {
              lastPrediction: { className: string; probabilities: Record<string, number> };
            }
          ).lastPrediction,
      );
      const clf = await loadClassifier(join(work, 'classifier'));
      const expected = await clf.predict(join(work, 'scan.png'));
      clf.dispose();
      expect(shown.className).toBe(expected.className);
      for (const [name, p] of Object.entries(expected.probabilities))
        expect(Math.abs(shown.probabilities[name]! - p), name).toBeLessThan(0.01);
      expect(await tab.textContent('#result')).toContain(expected.className);
      const backend = await tab.evaluate(() => document.getElementById('status')!.textContent);
      if (!backend?.includes('webgl')) expect(await tab.isVisible('#note')).toBe(true); // fell back, and says so
      // The Grad-CAM canvas is not blank.
      const camPixels = await tab.evaluate(() => {
        const c = document.getElementById('cam') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i]! + d[i + 1]! + d[i + 2]! > 30) lit++;
        return lit;
      });
      expect(camPixels).toBeGreaterThan(50);
      await tab.screenshot({ path: join(tmpdir(), 'medimg-browser-page.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 180_000);
});
