import { readFile } from 'node:fs/promises';
import { describeTta } from '../inference/tta.js';
import type { EvaluationMetrics } from '../metrics/accumulator.js';
import type { Interval } from '../metrics/bootstrap.js';
import type { ReviewChoices, SplitReview } from '../metrics/review.js';
import { writeFileAtomic } from '../util/atomic-write.node.js';
import { check } from '../util/errors.js';
import { VERSION } from '../version.js';
import type { WrittenEvaluation } from './evaluation.node.js';

/** One split of a {@link writeReportPage} report: its metrics and what `writeEvaluation` wrote. */
export interface ReportPageSplit {
  /** Short name, used in the page's anchors: `validation`, `test`, `data`. */
  name: string;
  title: string;
  metrics: EvaluationMetrics;
  written: WrittenEvaluation;
}

/** Options of {@link writeReportPage}. */
export interface ReportPageOptions {
  title: string;
  classNames: string[];
  normalClass?: string;
  splits: ReportPageSplit[];
  /** The decision rules applied (chosen on validation, or saved with the classifier). */
  choices?: ReviewChoices;
  /** Where the rules come from, in words (e.g. "chosen on the validation split of this run"). */
  rulesFrom?: string;
  /** The run's model card (the CLI's `run.json`, or a classifier's `modelCard`). */
  modelCard?: Record<string, unknown>;
  /** PNG of the training curves. */
  trainingCurves?: string;
  /** Extra lines shown under the title. */
  notes?: string[];
}

const esc = (v: unknown) =>
  String(v).replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
const pct = (x: number | undefined) =>
  x !== undefined && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '–';
const num = (x: number | undefined | null, digits = 3) =>
  x !== undefined && x !== null && Number.isFinite(x) ? x.toFixed(digits) : '–';
const withCi = (i: Interval | undefined) =>
  i === undefined
    ? '–'
    : Number.isFinite(i.lower)
      ? `${pct(i.estimate)} <span class="ci">(${pct(i.lower)}–${pct(i.upper)})</span>`
      : pct(i.estimate);

/** The width of a PNG, from its IHDR chunk. */
function pngWidth(png: Buffer): number {
  check(png.length > 24 && png.readUInt32BE(12) === 0x49484452, 'writeReportPage', 'not a PNG file');
  return png.readUInt32BE(16);
}

/** An <img> with the PNG embedded as a data: URI; `scale` is the PNG's pixels per CSS pixel. */
async function img(path: string, alt: string, scale = 2): Promise<{ html: string; width: number }> {
  const png = await readFile(path);
  const width = Math.round(pngWidth(png) / scale);
  return {
    html: `<img src="data:image/png;base64,${png.toString('base64')}" width="${width}" alt="${esc(alt)}">`,
    width,
  };
}

/** A figure as wide as its picture (the caption wraps under it), never wider than the page. */
async function figure(path: string | undefined, caption: string, scale = 2): Promise<string> {
  if (!path) return '';
  const { html, width } = await img(path, caption, scale);
  return `<figure style="width:${width + 2}px">${html}<figcaption>${esc(caption)}</figcaption></figure>`;
}

/** A table; `align` gives each column's alignment ('l' or 'r', default: first column left, others right). */
function table(head: string[], rows: string[][], cls = '', align = ''): string {
  const td = (c: string, i: number) => (align[i] === 'l' ? `<td class="l">${c}</td>` : `<td>${c}</td>`);
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${c}</th>` : td(c, i))).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const CSS = `
:root{--ink:#1d2330;--muted:#5b6475;--line:#d8dde6;--soft:#f4f6fa;--accent:#1f5fa8;--warn:#fff5d6;--warnline:#e0b84c;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
header{background:var(--soft);border-bottom:1px solid var(--line);padding:20px 32px}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:2px 0;color:var(--muted)}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;z-index:1;font-size:14px}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:8px 32px 48px}
h2{margin:36px 0 8px;padding-bottom:4px;border-bottom:2px solid var(--ink);font-size:21px}
h3{margin:26px 0 8px;font-size:17px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:14px;font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:5px 10px;text-align:right;vertical-align:top}
thead th{background:var(--soft);text-align:center}
tbody th{text-align:left;font-weight:600;background:#fafbfd}
tbody tr:nth-child(even) td{background:#fbfcfe}
.ci{color:var(--muted);font-size:12.5px;white-space:nowrap}
.kv td,.kv th,td.l{text-align:left}
.note{background:var(--warn);border-left:4px solid var(--warnline);padding:8px 12px;margin:10px 0}
.bad{color:var(--bad);font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:6px 0;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid var(--line);background:#fff}
figcaption{font-size:13px;color:var(--muted)}
pre{background:var(--soft);border:1px solid var(--line);padding:10px;overflow:auto;font-size:12.5px;max-height:420px}
details{margin:8px 0}
table.card{margin:0;font-size:13px}table.card thead{display:none}table.card th,table.card td{padding:2px 8px}
ul.paths{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
@media print{nav{display:none}h2{break-before:page}figure{break-inside:avoid}}
`;

function summaryTable(splits: ReportPageSplit[]): string {
  const rows: string[][] = [];
  const cell = (f: (s: ReportPageSplit, r: SplitReview | undefined) => string) =>
    splits.map((s) => f(s, s.written.review));
  rows.push(['Images', ...cell((s) => String(s.metrics.report.support))]);
  rows.push([
    'Accuracy',
    ...cell((s, r) => (r ? withCi(r.confidence.accuracy) : pct(s.metrics.report.accuracy))),
  ]);
  rows.push(['Macro F1', ...cell((s) => num(s.metrics.report.macro.f1))]);
  rows.push(['ROC-AUC (one-vs-rest, macro)', ...cell((s) => num(s.metrics.rocAuc?.macro))]);
  if (splits.some((s) => s.written.review?.operatingPoint)) {
    const op = (r: SplitReview | undefined) => r?.operatingPoint;
    rows.push([
      'Sensitivity at the operating point',
      ...cell((_, r) => withCi(op(r)?.confidence.sensitivity)),
    ]);
    rows.push([
      'Specificity at the operating point',
      ...cell((_, r) => withCi(op(r)?.confidence.specificity)),
    ]);
    rows.push([
      'Missed findings at the operating point',
      ...cell((_, r) => {
        const o = op(r);
        return o
          ? `<span class="${o.result.missed ? 'bad' : ''}">${o.result.missed} of ${o.result.abnormal}</span>`
          : '–';
      }),
    ]);
  }
  if (splits.some((s) => s.metrics.missedFindings))
    rows.push([
      'Missed findings, most probable class',
      ...cell((s) =>
        s.metrics.missedFindings
          ? `${s.metrics.missedFindings.count} of ${s.metrics.missedFindings.abnormal}`
          : '–',
      ),
    ]);
  rows.push([
    'Expected calibration error',
    ...cell((_, r) =>
      r
        ? `${num(r.calibration.ece)}${r.calibration.before ? ` <span class="ci">(before: ${num(r.calibration.before.ece)})</span>` : ''}`
        : '–',
    ),
  ]);
  rows.push([
    'Referred to a human',
    ...cell((_, r) => {
      const rule = r?.referral.rules.find((x) => x.by === 'maxProbability');
      return rule
        ? `${rule.referred} of ${r?.images} <span class="ci">(accuracy on the rest ${pct(rule.accuracy)})</span>`
        : '–';
    }),
  ]);
  return table(['', ...splits.map((s) => esc(s.title))], rows);
}

function rulesBlock(options: ReportPageOptions): string {
  const c = options.choices;
  if (!c) return '<p>No decision rules: the most probable class is the prediction.</p>';
  const rows: string[][] = [];
  const t = c.temperature;
  rows.push([
    'Temperature scaling',
    t
      ? t.applied
        ? `T = ${num(t.temperature)}: probabilities are softmax(log p / T)${Number.isFinite(t.nllBefore) ? `; NLL ${num(t.nllBefore, 4)} → ${num(t.nllAfter, 4)} where it was fitted` : ''}`
        : `not applied: ${esc(t.note ?? '')}`
      : 'none: the probabilities are the model’s own',
  ]);
  const op = c.operatingPoint;
  rows.push([
    'Abnormal vs normal threshold',
    op
      ? `abnormal when P(not ${esc(options.normalClass)}) ≥ ${num(op.threshold, 4)}: the largest threshold reaching sensitivity ≥ ${pct(c.sensitivity)} where it was chosen (sensitivity ${pct(op.sensitivity)}, specificity ${pct(op.specificity)} there); below it, ${esc(options.normalClass)}; at or above it, the most probable abnormal class`
      : esc(c.operatingPointNote ?? 'none'),
  ]);
  const referral = c.referral.find((r) => r.by === 'maxProbability');
  rows.push([
    'Refer to a human',
    referral && Number.isFinite(referral.threshold)
      ? `when the top probability is below ${num(referral.threshold, 4)}: the cut-off keeping the most images (${pct(referral.coverage)}) at accuracy ≥ ${pct(c.referralAccuracy)} where it was chosen`
      : Number.isFinite(c.referralAccuracy)
        ? `no cut-off reaches ${pct(c.referralAccuracy)} accuracy where the rules were chosen`
        : 'none',
  ]);
  rows.push([
    'Chosen on',
    `${Number.isFinite(c.images) ? `${c.images} images` : 'validation images'}${options.rulesFrom ? ` (${esc(options.rulesFrom)})` : ''}`,
  ]);
  return table(['Rule', 'Setting'], rows, 'kv');
}

function metricsTable(s: ReportPageSplit): string {
  const m = s.metrics;
  const r = s.written.review;
  const rows = m.report.perClass.map((c, k) => [
    esc(s.written.review?.classNames[k] ?? c.className ?? k),
    num(c.precision),
    r ? withCi(r.confidence.recall[k]) : pct(c.recall),
    num(c.f1),
    num(m.rocAuc?.perClass[k]),
    String(c.support),
  ]);
  rows.push([
    'Macro average',
    num(m.report.macro.precision),
    pct(m.report.macro.recall),
    num(m.report.macro.f1),
    num(m.rocAuc?.macro),
    String(m.report.support),
  ]);
  rows.push([
    'Weighted average',
    num(m.report.weighted.precision),
    pct(m.report.weighted.recall),
    num(m.report.weighted.f1),
    '',
    String(m.report.support),
  ]);
  const head = [
    'Class',
    'Precision',
    'Recall (sensitivity) <span class="ci">95% CI</span>',
    'F1',
    'ROC-AUC',
    'Images',
  ];
  let out = table(head, rows);
  out += `<p>Accuracy ${r ? withCi(r.confidence.accuracy) : pct(m.report.accuracy)}; mean loss (cross-entropy) ${num(m.loss, 4)}${m.tta !== undefined && m.tta > 1 ? `; probabilities averaged over ${describeTta(m.tta, m.ttaFlips)} (TTA)` : ''}. Intervals: percentile bootstrap, 1000 resamples of the images.</p>`;
  return out;
}

async function operatingPointBlock(s: ReportPageSplit, options: ReportPageOptions): Promise<string> {
  const r = s.written.review;
  const o = r?.operatingPoint;
  if (!o)
    return `<p>${esc(options.choices?.operatingPointNote ?? 'No operating point: the classifier has no normal class.')}</p>`;
  const res = o.result;
  const rows = [
    ['Threshold on P(not normal)', num(res.threshold, 4)],
    ['Sensitivity (abnormal images called abnormal)', withCi(o.confidence.sensitivity)],
    ['Specificity (normal images called normal)', withCi(o.confidence.specificity)],
    [
      'Missed findings (abnormal called normal)',
      `<span class="${res.missed ? 'bad' : ''}">${res.missed} of ${res.abnormal}</span> <span class="ci">(rate ${pct(o.confidence.missedRate.estimate)}, 95% CI ${pct(o.confidence.missedRate.lower)}–${pct(o.confidence.missedRate.upper)})</span>`,
    ],
    ['False alarms (normal called abnormal)', `${res.falseAlarms} of ${res.normal}`],
    ['Positive / negative predictive value', `${pct(res.ppv)} / ${pct(res.npv)}`],
  ];
  let out = table(['', 'Value'], rows, 'kv');
  if (r.chosenHere)
    out +=
      '<p class="note">The threshold was chosen on these images: their sensitivity meets the target by construction. The held-out test set (when there is one) tells how it generalises.</p>';
  if (res.missed && res.missedIndices.length <= 30) {
    out += `<details open><summary>Missed findings (${res.missed})</summary><ul class="paths">${res.missedIndices
      .map((i) => {
        const c = s.metrics.cases?.[i];
        return `<li>${esc(c?.path ?? `sample ${i}`)}: ${esc(r.classNames[c?.yTrue ?? 0])}, P(not normal) ${num(1 - (c?.probabilities[r.normalClass as number] ?? 0))}</li>`;
      })
      .join('')}</ul></details>`;
  }
  out += `<div class="figs">${await figure(s.written.charts.operatingPoint, 'ROC of P(not normal) for abnormal vs normal; the red point is the frozen threshold on this split.')}${await figure(s.written.charts.confusionAtThreshold, 'Confusion matrix of the predictions under the threshold (what predict says).')}</div>`;
  return out;
}

function classThresholdsBlock(r: SplitReview, choices: ReviewChoices | undefined): string {
  if (!r.classThresholds.length) return '<p>No per-class thresholds.</p>';
  const rows = r.classThresholds.map((t) => [
    esc(t.className),
    num(t.threshold, 4),
    pct(t.sensitivity),
    pct(t.specificity),
    String(t.support),
  ]);
  return `<p>For each class k, the largest threshold on p[k] that calls at least ${pct(choices?.sensitivity)} of the validation images of class k (one-vs-rest), applied frozen here. For reference; predict uses the abnormal-vs-normal threshold above.</p>${table(['Class', 'Threshold on p[class]', 'Sensitivity', 'Specificity', 'Images'], rows)}`;
}

async function calibrationBlock(s: ReportPageSplit): Promise<string> {
  const c = s.written.review?.calibration;
  if (!c) return '';
  const rows = [
    [
      'Expected calibration error (15 bins)',
      c.before ? num(c.before.ece, 4) : num(c.ece, 4),
      c.before ? num(c.ece, 4) : '–',
    ],
    [
      'Negative log-likelihood',
      c.before ? num(c.before.nll, 4) : num(c.nll, 4),
      c.before ? num(c.nll, 4) : '–',
    ],
  ];
  const head = [
    '',
    'Model probabilities',
    c.before ? `After temperature ${num(c.temperature, 3)}` : 'After temperature',
  ];
  return `${table(head, rows)}<div class="figs">${await figure(s.written.charts.reliability, 'Accuracy against confidence per bin; on the dashed diagonal the probabilities can be taken at face value. Point size: number of images.')}</div>`;
}

async function referralBlock(s: ReportPageSplit): Promise<string> {
  const r = s.written.review;
  if (!r) return '';
  const rows = r.referral.atCoverage.map((a) => [pct(a.coverage), pct(a.maxProbability), pct(a.entropy)]);
  let out = `<div class="figs">${await figure(s.written.charts.coverage, 'Keeping only the images the model is most certain of (by top probability or entropy) and referring the rest: accuracy on the kept images. Circles: the referral rules chosen on validation.')}<div>${table(['Kept (most certain first)', 'Accuracy, by top probability', 'Accuracy, by entropy'], rows)}`;
  const rules = r.referral.rules.map((x) => [
    x.by === 'maxProbability' ? 'top probability' : 'entropy',
    Number.isFinite(x.threshold)
      ? x.by === 'maxProbability'
        ? `&lt; ${num(x.threshold, 4)}`
        : `&gt; ${num(x.threshold, 4)} nats`
      : 'every image',
    `${x.referred} of ${r.images}`,
    pct(x.coverage),
    pct(x.accuracy),
  ]);
  if (rules.length)
    out += `<p>Rules chosen on validation for ${pct(r.referral.rules[0]?.targetAccuracy)} accuracy on the kept images, applied here:</p>${table(['Certainty', 'Refer when', 'Referred', 'Kept', 'Accuracy on kept'], rules)}`;
  return `${out}</div></div>`;
}

async function worstBlock(s: ReportPageSplit): Promise<string> {
  const r = s.written.review;
  if (!r?.worst.length) return '<p>No per-case results.</p>';
  const rows = r.worst.map((c, k) => [
    String(k + 1),
    esc(c.path),
    esc(r.classNames[c.yTrue]),
    esc(r.classNames[c.predicted]),
    num(c.probabilities[c.predicted]),
    num(c.probabilities[c.yTrue]),
    num(c.loss),
  ]);
  const grid = s.written.worstCases;
  let out = grid
    ? await figure(
        grid.path,
        grid.gradCam
          ? 'Each case: the image as the model saw it, and the Grad-CAM of the predicted class (red: where the evidence for it lies).'
          : `Images only (${grid.note ?? 'no Grad-CAM'}).`,
        1,
      )
    : '';
  out += table(['#', 'Image', 'True', 'Predicted', 'p(predicted)', 'p(true)', 'Loss'], rows, '', 'rlll');
  if (r.mostConfused.length)
    out += `<h3 id="${s.name}-confused">Most confused classes</h3>${table(
      ['True class', 'Predicted as', 'Images'],
      r.mostConfused.slice(0, 10).map(([a, b, n]) => [esc(a), esc(b), String(n)]),
      '',
      'll',
    )}`;
  return out;
}

/** A model-card value: scalars as text, lists of scalars on one line, objects as nested tables. */
function cardValue(v: unknown, depth: number): string {
  if (v === null || typeof v !== 'object') return esc(v);
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object'))
    return v.length ? esc(v.join(', ')) : '–';
  if (!Array.isArray(v) && depth < 2) {
    const rows = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [esc(k), cardValue(x, depth + 1)]);
    return table(['', ''], rows, 'kv card');
  }
  return `<pre>${esc(JSON.stringify(v, null, 2))}</pre>`;
}

function modelCardBlock(card: Record<string, unknown> | undefined): string {
  if (!card) return '<p>No model card (the classifier was saved without one).</p>';
  const rows = Object.entries(card)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [esc(k), cardValue(v, 0)]);
  return table(['Field', 'Value'], rows, 'kv');
}

/**
 * Builds the report page's HTML: one self-contained page (inline CSS, images as data: URIs, no
 * script, nothing fetched) with the key figures of every split, the decision rules, then per
 * split the metrics with bootstrap intervals, the operating point, confusion matrices, ROC
 * curves, calibration, referral, per-class thresholds, the worst cases with Grad-CAM and the
 * most confused classes, then the training curves and the model card.
 */
export async function reportPageHtml(options: ReportPageOptions): Promise<string> {
  check(options.splits.length > 0, 'writeReportPage', 'no split to report');
  const parts: string[] = [];
  const nav = [
    ['summary', 'Key figures'],
    ['rules', 'Decision rules'],
    ...options.splits.map((s) => [`split-${s.name}`, s.title]),
    ...(options.trainingCurves ? [['training-curves', 'Training curves']] : []),
    ['model-card', 'Model card'],
  ];
  parts.push(
    `<header><h1>${esc(options.title)}</h1><p>Classes: ${options.classNames.map(esc).join(', ')}${options.normalClass ? ` (normal: ${esc(options.normalClass)})` : ''}</p>${(options.notes ?? []).map((n) => `<p>${esc(n)}</p>`).join('')}<p>Written ${esc(new Date().toISOString())} by medimg-classify ${esc(VERSION)}.</p></header>`,
  );
  parts.push(`<nav>${nav.map(([id, t]) => `<a href="#${id}">${esc(t)}</a>`).join('')}</nav><main>`);
  parts.push(
    `<section id="summary" data-section="summary"><h2>Key figures</h2>${summaryTable(options.splits)}`,
  );
  if (options.splits.some((s) => s.written.review?.chosenHere))
    parts.push(
      `<p class="note">Figures on ${options.splits
        .filter((s) => s.written.review?.chosenHere)
        .map((s) => esc(s.title))
        .join(', ')} are on the images the decision rules were chosen on, so they are optimistic.</p>`,
    );
  parts.push('</section>');
  parts.push(
    `<section id="rules" data-section="rules"><h2>Decision rules</h2>${rulesBlock(options)}</section>`,
  );
  for (const s of options.splits) {
    const id = s.name;
    const w = s.written;
    parts.push(`<section id="split-${id}" data-section="split"><h2>${esc(s.title)}</h2>`);
    parts.push(`<h3 id="${id}-metrics" data-section="metrics">Metrics</h3>${metricsTable(s)}`);
    if (w.predictions) parts.push(`<p>Every image's result: <code>${esc(w.predictions)}</code>.</p>`);
    parts.push(
      `<h3 id="${id}-operating-point" data-section="operating-point">Operating point: abnormal vs normal</h3>${await operatingPointBlock(s, options)}`,
    );
    parts.push(
      `<h3 id="${id}-confusion" data-section="confusion">Confusion matrices (most probable class)</h3><div class="figs">${await figure(w.charts.confusion, 'Counts; rows are the true class.')}${await figure(w.charts.confusionNormalized, "Row-normalised: the diagonal is each class's recall.")}</div>`,
    );
    parts.push(
      `<h3 id="${id}-roc" data-section="roc">ROC curves</h3><div class="figs">${await figure(w.charts.roc, 'One-vs-rest ROC curve of every class.')}</div>`,
    );
    parts.push(
      `<h3 id="${id}-calibration" data-section="calibration">Calibration</h3>${await calibrationBlock(s)}`,
    );
    parts.push(
      `<h3 id="${id}-referral" data-section="referral">Uncertainty: refer to a human</h3>${await referralBlock(s)}`,
    );
    if (w.review)
      parts.push(
        `<h3 id="${id}-class-thresholds" data-section="class-thresholds">Per-class thresholds</h3>${classThresholdsBlock(w.review, options.choices)}`,
      );
    parts.push(`<h3 id="${id}-worst" data-section="worst-cases">Worst cases</h3>${await worstBlock(s)}`);
    parts.push('</section>');
  }
  if (options.trainingCurves)
    parts.push(
      `<section id="training-curves" data-section="training-curves"><h2>Training curves</h2>${await figure(options.trainingCurves, 'Loss, accuracy and macro F1 per epoch on the training and validation splits.')}</section>`,
    );
  parts.push(
    `<section id="model-card" data-section="model-card"><h2>Model card</h2>${modelCardBlock(options.modelCard)}</section>`,
  );
  parts.push('</main>');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(options.title)}</title><style>${CSS}</style></head>
<body>${parts.join('\n')}</body></html>
`;
}

/**
 * Writes {@link reportPageHtml} to `path` (e.g. `evaluation/report.html`): one self-contained
 * page that opens offline, from a file or an e-mail. Returns the path.
 *
 * @example
 * await writeReportPage('runs/a/evaluation/report.html', { title: 'Brain MRI', classNames, splits: [...] });
 */
export async function writeReportPage(path: string, options: ReportPageOptions): Promise<string> {
  await writeFileAtomic(path, await reportPageHtml(options));
  return path;
}
