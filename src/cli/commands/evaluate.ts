import { join, resolve } from 'node:path';
import { BACKEND_NAMES, evaluate, folderSource, loadClassifier } from '../../node.js';
import { type Command, parse, str, UsageError } from '../args.js';
import { readData } from '../data.js';
import { backendFlags, out, startBackend } from '../io.js';
import { printEvaluation } from '../report.js';

export const evaluateCmd: Command = {
  name: 'evaluate',
  summary: 'evaluate a saved classifier on a class-per-folder dataset',
  usage: `Usage: medimg-classify evaluate --model DIR --data DIR|CSV [--out DIR] [--exclude GLOB] [--backend NAME] [--threads N]

With a manifest's split column, its test rows are scored.
Writes report.txt, report.md, metrics.json, confusion matrices and ROC curves to --out
(default DIR/evaluation).
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)`,
  run: async (argv) => {
    const { values } = parse(evaluateCmd, argv, {
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      exclude: { type: 'string', multiple: true },
      backend: { type: 'string' },
      threads: { type: 'string' },
    });
    if (values.help) return out(evaluateCmd.usage);
    const modelDir = str(values.model);
    const data = str(values.data);
    if (!modelDir || !data) throw new UsageError(`--model and --data are required\n\n${evaluateCmd.usage}`);
    const flags = backendFlags(values.backend, values.threads);
    await startBackend(flags);
    const clf = await loadClassifier(modelDir);
    const exclude = (values.exclude as string[] | undefined) ?? [];
    const folder = await readData(data, { exclude, classNames: clf.meta.classNames }, 'test');
    const source = folderSource(folder.samples, folder.classes.length, clf.meta.decode);
    const metrics = await evaluate(clf.model, source, {
      classNames: clf.meta.classNames,
      ...(clf.preprocessing ? { transform: clf.preprocessing } : {}),
      ...(clf.meta.normalClass ? { normalClass: clf.meta.normalClass } : {}),
    });
    await printEvaluation(
      metrics,
      resolve(str(values.out) ?? join(modelDir, 'evaluation')),
      clf.meta.classNames,
    );
  },
};
