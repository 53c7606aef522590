/**
 * The report page in real Chromium (Debian's `chromium`, driven by playwright-core): a tiny
 * model trained on synthetic images, reviewed by `evaluateAndSave`; the page must load from a
 * file with no request besides itself, every image must decode, and every section must be there.
 * A full-page screenshot goes to the temporary folder (medimg-report-page.png) for a human look.
 * Skipped when /usr/bin/chromium is absent (.ci/run installs it).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adaBelief,
  arraySource,
  evaluateAndSave,
  Rescale,
  setupBackend,
  simpleCnn,
  syntheticDataset,
  train,
} from '../../src/node.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const work = mkdtempSync(join(tmpdir(), 'medimg-report-'));
const SCREENSHOT = join(tmpdir(), 'medimg-report-page.png');

describe.skipIf(!existsSync(CHROMIUM))('report page in headless Chromium', () => {
  let page = '';

  beforeAll(async () => {
    await setupBackend('wasm');
    const size = 24;
    const data = (perClass: number, seed: number) =>
      syntheticDataset({ kind: 'brain-mri', perClass, size, seed });
    const trainData = data(12, 1);
    const source = (d: ReturnType<typeof data>) =>
      arraySource(d.samples, { height: size, width: size, numClasses: 4 });
    const model = simpleCnn({
      inputShape: [size, size, 1],
      numClasses: 4,
      filters: [4, 8],
      dense: 8,
      seed: 2,
    });
    const pre = new Rescale({ scale: 1 / 255 });
    const validation = source(data(14, 2));
    const result = await train({
      model,
      train: source(trainData),
      validation,
      optimizer: adaBelief({ learningRate: 3e-3 }),
      epochs: 3,
      batchSize: 8,
      transform: pre,
      validationTransform: pre,
    });
    const r = await evaluateAndSave({
      dir: work,
      model,
      classNames: trainData.classes,
      normalClass: 'notumor',
      decode: { channels: 1, resize: { height: size, width: size, fit: 'contain' } },
      preprocessing: pre,
      validation,
      test: source(data(6, 3)),
      history: result.history,
      modelCard: {
        command: 'medimg-classify train --data synthetic',
        seed: 2,
        data: { classes: trainData.classes },
      },
      worst: 6,
      tta: 2,
      title: 'Report page test',
    });
    page = r.report;
    model.dispose();
  }, 180_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('loads offline (no request but the page), every image decodes, every section is there', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const url = pathToFileURL(page).href;
      const requests: string[] = [];
      // Every request is recorded; any but the page itself is refused, so a stray one also breaks an image.
      await context.route('**/*', (route) => {
        const u = route.request().url();
        requests.push(u);
        return u === url ? route.continue() : route.abort();
      });
      const tab = await context.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      tab.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await tab.goto(url, { waitUntil: 'load' });
      expect(requests).toEqual([url]);
      const images = await tab.evaluate(() =>
        Array.from(document.images).map((i) => ({
          alt: i.alt,
          complete: i.complete,
          naturalWidth: i.naturalWidth,
          data: i.src.startsWith('data:image/png;base64,'),
        })),
      );
      // Per split: 2 confusion matrices, ROC, operating point ROC and confusion, reliability,
      // coverage, worst cases (8 x 2); and the training curves.
      expect(images).toHaveLength(17);
      for (const i of images) {
        expect(i.data, i.alt).toBe(true);
        expect(i.complete, i.alt).toBe(true);
        expect(i.naturalWidth, i.alt).toBeGreaterThan(0);
      }
      const sections = await tab.evaluate(() =>
        Array.from(document.querySelectorAll('[data-section]')).map((e) => e.getAttribute('data-section')),
      );
      for (const s of ['summary', 'rules', 'training-curves', 'model-card']) expect(sections).toContain(s);
      for (const s of [
        'metrics',
        'operating-point',
        'confusion',
        'roc',
        'calibration',
        'referral',
        'class-thresholds',
        'worst-cases',
      ])
        expect(
          sections.filter((x) => x === s),
          s,
        ).toHaveLength(2);
      const text = await tab.evaluate(() => document.body.textContent ?? '');
      expect(text).toMatch(/Key figures/);
      expect(text).toMatch(/Sensitivity at the operating point/);
      expect(text).toMatch(/Missed findings \(abnormal called normal\)/);
      expect(text).toMatch(/medimg-classify train --data synthetic/);
      expect(text).toMatch(/probabilities averaged over each image and its horizontal flip/);
      // The navigation's links all lead somewhere on the page.
      const dangling = await tab.evaluate(() =>
        Array.from(document.querySelectorAll('nav a'))
          .map((a) => (a.getAttribute('href') ?? '').slice(1))
          .filter((id) => !document.getElementById(id)),
      );
      expect(dangling).toEqual([]);
      // Nothing wider than the window: the page reads without scrolling sideways.
      const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      await tab.screenshot({ path: SCREENSHOT, fullPage: true });
      const shot = await sharp(SCREENSHOT).metadata();
      expect(shot.width).toBe(1280);
      expect(shot.height).toBeGreaterThan(3000);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
