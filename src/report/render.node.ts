import type { ChartSpec } from '../metrics/charts.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { MedimgError } from '../util/errors.js';

/** Output of {@link renderChart}. */
export interface RenderedChart {
  svg: string;
  png: Buffer;
}

/**
 * Renders a Vega-Lite spec to SVG with Vega (server-side, no browser), and to PNG with sharp
 * (librsvg). `scale` multiplies the PNG resolution (default 2 for crisp text).
 */
export async function renderChart(spec: ChartSpec, options: { scale?: number } = {}): Promise<RenderedChart> {
  const [vega, vegaLite, sharp] = await Promise.all([import('vega'), import('vega-lite'), import('sharp')]);
  let svg: string;
  try {
    const compiled = vegaLite.compile(spec as unknown as Parameters<typeof vegaLite.compile>[0]).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
    svg = await view.toSVG();
    view.finalize();
  } catch (error) {
    throw new MedimgError('renderChart', `Vega could not render the chart: ${(error as Error).message}`);
  }
  const density = 72 * (options.scale ?? 2);
  const png = await sharp.default(Buffer.from(svg), { density }).png().toBuffer();
  return { svg, png };
}

/**
 * Renders a chart and writes `<base>.svg` and `<base>.png` (and `<base>.vl.json`, the spec).
 * Returns the paths written.
 *
 * @example
 * await writeChart(confusionMatrixChart(report.confusionMatrix, { classNames }), 'out/confusion-matrix');
 */
export async function writeChart(
  spec: ChartSpec,
  base: string,
): Promise<{ svg: string; png: string; spec: string }> {
  const { svg, png } = await renderChart(spec);
  const paths = { svg: `${base}.svg`, png: `${base}.png`, spec: `${base}.vl.json` };
  await writeFileAtomic(paths.svg, svg);
  await writeFileAtomic(paths.png, png);
  await writeFileAtomic(paths.spec, `${JSON.stringify(spec, null, 2)}\n`);
  return paths;
}
