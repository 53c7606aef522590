import { type EvaluationMetrics, writeEvaluation } from '../node.js';
import { out } from './io.js';

/** Writes an evaluation's files and prints its report and where the pictures are. */
export async function printEvaluation(
  metrics: EvaluationMetrics,
  dir: string,
  classNames: string[],
): Promise<void> {
  const { text, files } = await writeEvaluation(metrics, dir, { classNames });
  out(text);
  out(`pictures: ${files.map((f) => f.png).join(', ')}`);
}
