import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { BACKEND_NAMES, decodeImage, gradCam, loadClassifier, writeGradCamPng } from '../../node.js';
import { type Command, parse, str, UsageError } from '../args.js';
import { backendFlags, out, startBackend } from '../io.js';

export const predictCmd: Command = {
  name: 'predict',
  summary: 'classify image files with a saved classifier (optionally with Grad-CAM)',
  usage: `Usage: medimg-classify predict --model DIR IMAGE... [--gradcam] [--out DIR] [--json] [--backend NAME] [--threads N]

Prints the class and probabilities of each image, with a warning when the top class is normal
but an abnormal class is close. --gradcam writes a heat-map overlay PNG per image to --out.
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default auto)`,
  run: async (argv) => {
    const { values, positionals } = parse(
      predictCmd,
      argv,
      {
        model: { type: 'string' },
        gradcam: { type: 'boolean' },
        out: { type: 'string' },
        json: { type: 'boolean' },
        backend: { type: 'string' },
        threads: { type: 'string' },
      },
      true,
    );
    if (values.help) return out(predictCmd.usage);
    const modelDir = str(values.model);
    if (!modelDir) throw new UsageError(`--model is required\n\n${predictCmd.usage}`);
    if (!positionals.length) throw new UsageError(`give at least one IMAGE\n\n${predictCmd.usage}`);
    const flags = backendFlags(values.backend, values.threads);
    await startBackend(flags);
    const clf = await loadClassifier(modelDir);
    const dir = resolve(str(values.out) ?? 'runs/predict');
    const results = [];
    for (const path of positionals) {
      const p = await clf.predict(path);
      results.push({ path, ...p });
      if (!values.json) {
        out(
          `${path}: ${p.className} (${Object.entries(p.probabilities)
            .map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`)
            .join(', ')})`,
        );
        if (p.warning) out(`  WARNING: ${p.warning}`);
      }
      if (values.gradcam) {
        const image = await decodeImage(path, clf.meta.decode);
        const x = clf.preprocessing ? clf.preprocessing.apply(image) : image;
        const cam = gradCam(clf.model, x);
        const file = join(
          dir,
          `${path
            .split('/')
            .pop()
            ?.replace(/\.[^.]+$/, '')}-gradcam.png`,
        );
        await writeGradCamPng(image, cam.heatmap, file);
        if (!values.json) out(`  Grad-CAM: ${file}`);
        tf.dispose([image, x, cam.heatmap]);
      }
    }
    if (values.json) out(JSON.stringify(results, null, 2));
  },
};
