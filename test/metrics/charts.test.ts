import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { confusionMatrixChart, rocChart, trainingCurvesChart, writeChart } from '../../src/node.js';
import fixtures from '../fixtures/metrics.json' with { type: 'json' };

const dir = mkdtempSync(join(tmpdir(), 'medimg-charts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mri = fixtures.cases[0]!;
const names = mri.classNames!;

async function expectImage(paths: { svg: string; png: string }, minWidth: number) {
  const svg = readFileSync(paths.svg, 'utf8');
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  const meta = await sharp(paths.png).metadata();
  expect(meta.format).toBe('png');
  expect(meta.width).toBeGreaterThan(minWidth);
  // Not blank: the image has real contrast.
  const stats = await sharp(paths.png).stats();
  expect(stats.channels[0]!.min).toBeLessThan(100);
  expect(stats.channels[0]!.max).toBeGreaterThan(200);
  return svg;
}

describe('charts (Vega-Lite rendered server-side to SVG and PNG)', () => {
  it('confusion matrix: counts and row-normalised, with class names and cell labels', async () => {
    const counts = await writeChart(
      confusionMatrixChart(mri.confusionMatrix, { classNames: names }),
      join(dir, 'cm'),
    );
    const svg = await expectImage(counts, 300);
    for (const n of names) expect(svg).toContain(n);
    expect(svg).toContain(`>${mri.confusionMatrix[0]![0]}<`);
    const rates = await writeChart(
      confusionMatrixChart(mri.confusionMatrix, { classNames: names, normalize: true }),
      join(dir, 'cm-norm'),
    );
    const svgN = await expectImage(rates, 300);
    expect(svgN).toContain('100.0%'); // glioma recall is 1.0 in this fixture
  });

  it('ROC curves with per-class AUC in the legend', async () => {
    const paths = await writeChart(
      rocChart(mri.yTrue, mri.probabilities!, { classNames: names }),
      join(dir, 'roc'),
    );
    const svg = await expectImage(paths, 300);
    expect(svg).toContain('glioma (AUC 0.983)');
  });

  it('training curves, one panel per metric', async () => {
    const history = [1, 2, 3].flatMap((epoch) => [
      { epoch, metric: 'loss', split: 'train', value: 1 / epoch },
      { epoch, metric: 'loss', split: 'validation', value: 1.2 / epoch },
      { epoch, metric: 'accuracy', split: 'train', value: 0.5 + epoch / 10 },
      { epoch, metric: 'accuracy', split: 'validation', value: 0.45 + epoch / 10 },
    ]);
    const paths = await writeChart(trainingCurvesChart(history), join(dir, 'curves'));
    const svg = await expectImage(paths, 400);
    expect(svg).toContain('accuracy');
    expect(svg).toContain('validation');
  });

  it('refuses bad input', () => {
    expect(() => confusionMatrixChart([[1, 2]])).toThrow(/must be square/);
    expect(() => trainingCurvesChart([])).toThrow(/history is empty/);
  });
});
