import type { WrittenEvaluation } from '../node.js';
import { out } from './io.js';

/** Prints an evaluation's text report and where its files are. */
export function printEvaluation(written: WrittenEvaluation, page?: string): void {
  out(written.text);
  out(`pictures: ${written.files.map((f) => f.png).join(', ')}`);
  if (written.predictions) out(`per-image results: ${written.predictions}`);
  if (written.worstCases) out(`worst cases: ${written.worstCases.path}`);
  if (page) out(`report page: ${page}`);
}
