import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  BACKEND_NAMES,
  checkTta,
  chooseRules,
  classifierChoices,
  type EpochLog,
  evaluate,
  folderSource,
  loadClassifier,
  type ReviewChoices,
  TTA_VIEWS,
  writeEvaluation,
  writeReportPage,
  writeTrainingCurves,
} from '../../node.js';
import { type Command, num, parse, str, UsageError } from '../args.js';
import { readData } from '../data.js';
import { backendFlags, out, startBackend, ttaFlag } from '../io.js';
import { printEvaluation } from '../report.js';

export const evaluateCmd: Command = {
  name: 'evaluate',
  summary: 'evaluate a saved classifier on a class-per-folder dataset (one report page)',
  usage: `Usage: medimg-classify evaluate --model DIR --data DIR|CSV [options]

Scores a saved classifier on a class-per-folder dataset (or a manifest's test rows) with the decision rules saved with it
(chosen on its validation data: temperature, threshold on P(not normal), referral cut-off, TTA),
and writes to --out (default MODEL/evaluation): report.html (one self-contained page: metrics
with 95% bootstrap intervals, operating point, confusion matrices, ROC, calibration, referral,
worst cases with Grad-CAM, training curves when MODEL/../history.json exists, model card),
report.txt, report.md, metrics.json, predictions.csv (one row per image), worst-cases.png and
the charts as SVG and PNG.

  --out DIR                output folder (default MODEL/evaluation)
  --exclude GLOB           files to ignore, repeatable
  --tta N                  test-time augmentation from the flips the classifier was trained with:
                           2 averages each image and its flip, 4 each image, its horizontal and
                           vertical flips and both (needs both), 1 turns it off (default: the
                           classifier's saved setting, else 1; no flips saved: horizontal)
  --sensitivity X          choose the decision rules on THIS data, the threshold for sensitivity
                           X in (0, 1], instead of using the saved ones; the page then marks its
                           figures as optimistic. A classifier saved without rules gets rules
                           chosen here in any case (default sensitivity 1)
  --refer-accuracy A       when rules are chosen here: the accuracy the referral cut-off keeps
                           (default 0.99)
  --worst K                worst cases listed and drawn with Grad-CAM (default 12; 0: none)
  --batch-size N           default 32
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)
  --threads N              wasm threads`,
  run: async (argv) => {
    const { values } = parse(evaluateCmd, argv, {
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      exclude: { type: 'string', multiple: true },
      tta: { type: 'string' },
      sensitivity: { type: 'string' },
      'refer-accuracy': { type: 'string' },
      worst: { type: 'string' },
      'batch-size': { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
    });
    if (values.help) return out(evaluateCmd.usage);
    const modelDir = str(values.model);
    const data = str(values.data);
    if (!modelDir || !data) throw new UsageError(`--model and --data are required\n\n${evaluateCmd.usage}`);
    // Every flag is checked before the classifier or any image is read.
    const ttaGiven = ttaFlag(values.tta, TTA_VIEWS);
    const sensitivity =
      values.sensitivity === undefined
        ? undefined
        : num('sensitivity', values.sensitivity, 1, { min: 0, minExclusive: true, max: 1 });
    const referralAccuracy = num('refer-accuracy', values['refer-accuracy'], 0.99, {
      min: 0,
      minExclusive: true,
      max: 1,
    });
    const worst = num('worst', values.worst, 12, { integer: true, min: 0 });
    const batchSize = num('batch-size', values['batch-size'], 32, { integer: true, min: 1 });
    const flags = backendFlags(values.backend, values.threads);
    await startBackend(flags);
    const clf = await loadClassifier(modelDir);
    const tta = ttaGiven ?? clf.meta.tta ?? 1;
    try {
      // The views come from the flips the classifier was trained with: --tta 4 needs both.
      checkTta('evaluate', tta, clf.flips);
    } catch (error) {
      clf.dispose();
      throw new UsageError(`--${(error as Error).message.replace(/^Error in evaluate: /, '')}`);
    }
    const { classNames, normalClass } = clf.meta;
    const exclude = (values.exclude as string[] | undefined) ?? [];
    const folder = await readData(data, { exclude, classNames }, 'test');
    const source = folderSource(folder.samples, folder.classes.length, clf.meta.decode);
    const saved = classifierChoices(clf.meta);
    const chooseHere = sensitivity !== undefined || saved === undefined;
    const common = {
      classNames,
      tta,
      flips: clf.flips,
      batchSize,
      ...(clf.preprocessing ? { transform: clf.preprocessing } : {}),
      ...(normalClass ? { normalClass } : {}),
    };
    let choices: ReviewChoices;
    let metrics: Awaited<ReturnType<typeof evaluate>>;
    if (chooseHere) {
      const normal = normalClass ? classNames.indexOf(normalClass) : undefined;
      ({ choices, validation: metrics } = chooseRules(await evaluate(clf.model, source, common), {
        classNames,
        ...(normal !== undefined ? { normalClass: normal } : {}),
        sensitivity: sensitivity ?? 1,
        referralAccuracy,
      }));
      out(
        `decision rules chosen on these ${metrics.report.support} images (${sensitivity !== undefined ? '--sensitivity' : 'the classifier has none saved'}): their figures are optimistic`,
      );
    } else {
      choices = saved as ReviewChoices;
      metrics = await evaluate(clf.model, source, {
        ...common,
        ...(clf.meta.temperature !== undefined ? { temperature: clf.meta.temperature } : {}),
      });
    }
    const dir = resolve(str(values.out) ?? join(modelDir, 'evaluation'));
    const written = await writeEvaluation(metrics, dir, {
      classNames,
      ...(normalClass ? { normalClass } : {}),
      choices,
      chosenHere: chooseHere,
      worst,
      gradCam: { model: clf.model, source, ...(clf.preprocessing ? { transform: clf.preprocessing } : {}) },
      title: `Evaluation of ${basename(resolve(data))}`,
    });
    // A classifier folder inside a training run: that run's history gives the training curves.
    const historyFile = join(dirname(resolve(modelDir)), 'history.json');
    let curves: string | undefined;
    if (existsSync(historyFile)) {
      const history = JSON.parse(await readFile(historyFile, 'utf8')) as EpochLog[];
      if (Array.isArray(history) && history.length)
        curves = (await writeTrainingCurves(history, join(dir, 'training-curves'))).png;
    }
    // A classifier folder is usually named 'classifier': its run folder names it better.
    const name = basename(resolve(modelDir));
    const modelName = name === 'classifier' ? `${basename(dirname(resolve(modelDir)))}/${name}` : name;
    const page = await writeReportPage(join(dir, 'report.html'), {
      title: `${modelName} on ${basename(resolve(data))}`,
      classNames,
      ...(normalClass ? { normalClass } : {}),
      splits: [
        {
          name: 'data',
          title: `${basename(resolve(data))} (${metrics.report.support} images)`,
          metrics,
          written,
        },
      ],
      choices,
      rulesFrom: chooseHere
        ? 'chosen on these images: optimistic'
        : 'saved with the classifier, chosen on its validation data',
      ...(clf.meta.modelCard ? { modelCard: clf.meta.modelCard } : {}),
      ...(curves ? { trainingCurves: curves } : {}),
      notes: [`Classifier ${resolve(modelDir)}, data ${resolve(data)}.`],
    });
    printEvaluation(written, page);
    clf.dispose();
  },
};
