import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticDataset } from '../../src/node.js';
import { runCli, withoutNetwork } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'medimg-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const size = 32;
const root = join(dir, 'Training');
const testRoot = join(dir, 'Testing');

beforeAll(async () => {
  const data = syntheticDataset({ kind: 'breast-ultrasound', perClass: 8, size, seed: 5 });
  const extra = syntheticDataset({ kind: 'breast-ultrasound', perClass: 2, size, seed: 6 });
  const png = (pixels: Float32Array, path: string) =>
    sharp(Buffer.from(Uint8Array.from(pixels, Math.round)), {
      raw: { width: size, height: size, channels: 1 },
    })
      .png()
      .toFile(path);
  for (const d of [root, testRoot]) for (const c of data.classes) mkdirSync(join(d, c), { recursive: true });
  for (const [i, s] of data.samples.entries())
    await png(s.pixels, join(root, data.classes[s.label]!, `${i}.png`));
  // The test folder: 6 new images and 2 byte-identical copies of training files.
  for (const [i, s] of extra.samples.entries())
    await png(s.pixels, join(testRoot, extra.classes[s.label]!, `t${i}.png`));
  copyFileSync(join(root, 'benign', '0.png'), join(testRoot, 'benign', 'copy-of-0.png'));
  copyFileSync(join(root, 'normal', '2.png'), join(testRoot, 'normal', 'copy-of-2.png'));
});

describe('medimg-classify train', () => {
  it("'help <command>' prints the command's usage; an unknown topic exits 2", async () => {
    const h = await run('help', 'train');
    expect(h.code).toBe(0);
    expect(h.text).toMatch(/^Usage: medimg-classify train --data DIR/);
    expect(h.text).toMatch(/--test DIR/);
    const bad = await run('help', 'trian');
    expect(bad.code).toBe(2);
    expect(bad.text).toMatch(/unknown command 'trian'/);
  });

  it('checks every flag before reading any image: a broken file is never reached', async () => {
    const broken = join(dir, 'broken');
    mkdirSync(join(broken, 'a'), { recursive: true });
    mkdirSync(join(broken, 'b'), { recursive: true });
    writeFileSync(join(broken, 'a', 'x.png'), 'not an image');
    writeFileSync(join(broken, 'b', 'y.png'), 'not an image');
    const mobilenet = ['--model', 'mobilenetv2', '--image-size', '32', '--backend', 'wasm'];
    const cases: [string[], RegExp][] = [
      [['--augment', 'flip,zoom'], /--augment: unknown augmentation 'zoom'/],
      [['--batchnorm', '1.5'], /--batchnorm must be a momentum in \[0, 1\), 'train' or 'frozen', got '1.5'/],
      [['--monitor', 'val_auc'], /--monitor must be one of val_loss, val_accuracy, val_f1/],
      [['--lr-schedule', 'linear'], /--lr-schedule must be one of none, cosine, step, plateau/],
      [['--resume'], /--resume needs --out DIR/],
      [['--patience', '0'], /--patience must be an integer >= 1, got '0'/],
      [
        ['--fine-tune-epochs', '2'],
        /--fine-tune-epochs works with a pretrained backbone \(--model resnet50v2, mobilenetv2, densenet121, efficientnetb0\)/,
      ],
      [['--backend', 'gpu'], /--backend must be one of auto, tensorflow, wasm/],
      [['--model', 'mobilenetv2', '--epochs', '0'], /--epochs 0 skips phase 1: give --fine-tune-epochs N/],
      [['--fine-tune-lr', '1e-3'], /--fine-tune-lr works with a pretrained backbone/],
      [['--sensitivity', '0'], /--sensitivity must be a number > 0 and <= 1, got '0'/],
      [['--refer-accuracy', '2'], /--refer-accuracy must be a number > 0 and <= 1, got '2'/],
      [['--unfreeze-from', 'block_13_expand'], /--unfreeze-from works with a pretrained backbone/],
      // The backbone is built (no image read) to check the layer name before anything trains.
      [
        [...mobilenet, '--fine-tune-epochs', '1', '--unfreeze-from', 'block_13'],
        /--unfreeze-from: MobileNetV2 has no layer 'block_13'; fine-tune from the first layer of one of its blocks: expanded_conv_depthwise, block_1_expand, .*, block_16_expand \(default block_13_expand\)/,
      ],
      [
        [...mobilenet, '--weights', join(dir, 'nowhere', 'mobilenet.h5')],
        /--weights: cannot read .*nowhere\/mobilenet\.h5: ENOENT \(no such file\)/,
      ],
      [
        ['--tta', 'yes'],
        /--tta must be 1 \(off\) or 2 \(average each image and its horizontal flip\), got 'yes'/,
      ],
      [
        ['--tta', '2', '--augment', 'blur'],
        /--tta 2 averages each image and its horizontal flip.*add 'flip' to --augment/,
      ],
    ];
    for (const [flags, message] of cases) {
      const r = await run('train', '--data', broken, ...flags);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.text, flags.join(' ')).toMatch(message);
      expect(r.text).not.toMatch(/skipped|x\.png/);
    }
    const normal = await run(
      'train',
      '--data',
      broken,
      '--normal-class',
      'healthy',
      '--out',
      join(dir, 'unused'),
    );
    expect(normal.code).toBe(2);
    expect(normal.text).toMatch(/--normal-class 'healthy' is not one of a, b/);
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  it('backbones come from the registry; --weights imagenet offline names the file to download and where to put it', async () => {
    const unknown = await run('train', '--data', root, '--model', 'vgg16');
    expect(unknown.code).toBe(2);
    expect(unknown.text).toMatch(
      /--model must be one of simple-cnn, resnet50v2, mobilenetv2, densenet121, efficientnetb0, got 'vgg16'/,
    );
    const cnnWeights = await run('train', '--data', root, '--weights', 'imagenet');
    expect(cnnWeights.code).toBe(2);
    expect(cnnWeights.text).toMatch(/--weights works with a pretrained backbone/);
    await withoutNetwork(join(dir, 'weights-cache'), async () => {
      const r = await run(
        'train',
        '--data',
        root,
        '--model',
        'densenet121',
        '--weights',
        'imagenet',
        '--image-size',
        '32',
        '--epochs',
        '1',
        '--backend',
        'wasm',
        '--out',
        join(dir, 'offline'),
      );
      expect(r.code, r.text).toBe(1);
      expect(r.text).toMatch(
        /could not download https:\/\/storage.googleapis.com\/tensorflow\/keras-applications\/densenet\/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5: fetch failed. Download it by hand into .*weights-cache\/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5/,
      );
      expect(r.text).not.toMatch(/unexpected error/);
      // The weights load before any image is read or the run folder is made.
      expect(r.text).not.toMatch(/run folder:|data: \d+ images/);
      expect(existsSync(join(dir, 'offline'))).toBe(false);
    });
  }, 120_000);

  it("one-phase fine-tuning: --epochs 0 skips the frozen phase; phase 2 starts at the registry's last block with --fine-tune-lr", async () => {
    const r = await run(
      'train',
      '--data',
      root,
      '--model',
      'mobilenetv2',
      '--image-size',
      '32',
      '--epochs',
      '0',
      '--fine-tune-epochs',
      '1',
      '--fine-tune-lr',
      '1e-3',
      '--optimizer',
      'adam',
      '--batch-size',
      '8',
      '--backend',
      'wasm',
      '--out',
      join(dir, 'one-phase'),
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(/phase 1 skipped/);
    // block_13_expand onward: blocks 13-16 and Conv_1 (37 tensors) plus the head (2).
    expect(r.text).toMatch(/phase 2: fine-tuning 41 weight tensors/);
    const run_ = JSON.parse(readFileSync(join(dir, 'one-phase', 'run.json'), 'utf8'));
    expect(run_.options).toMatchObject({ epochs: 0, fineTuneEpochs: 1, fineTuneLr: 1e-3 });
  }, 120_000);

  it('--test scores a held-out folder once, without its copies of training files; run.json and the model card record the run', async () => {
    const out = join(dir, 'run-a');
    const r = await run(
      'train',
      '--data',
      root,
      '--test',
      testRoot,
      '--image-size',
      '32',
      '--grayscale',
      '--epochs',
      '2',
      '--batch-size',
      '8',
      '--normal-class',
      'normal',
      '--lr-schedule',
      'cosine',
      '--monitor',
      'val_f1',
      '--backend',
      'wasm',
      '--seed',
      '3',
      '--out',
      out,
    );
    expect(r.code, r.text).toBe(0);
    expect(r.text).toMatch(
      /test: 8 images in .*Testing; 2 duplicate training or validation files and are left out of the score; 6 scored/,
    );
    expect(r.text).toMatch(/held-out test: 6 images, scored once/);
    for (const f of [
      'run.json',
      'evaluation/report.txt',
      'evaluation/report.html',
      'evaluation/predictions.csv',
      'test-evaluation/predictions.csv',
      'test-evaluation/report.txt',
      'test-evaluation/confusion-matrix.png',
      'history.json',
      'classifier/classifier.json',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    const runJson = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(runJson.command).toMatch(/^medimg-classify train --data /);
    expect(runJson.seed).toBe(3);
    expect(runJson.options).toMatchObject({ epochs: 2, schedule: 'cosine', monitor: 'val_f1', channels: 1 });
    expect(runJson.versions.tfjsCore).toMatch(/^4\./);
    expect(runJson.versions.backend.name).toBe('wasm');
    expect(runJson.data.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(runJson.split.train.length + runJson.split.validation.length).toBe(24);
    expect(runJson.split.test).toHaveLength(6);
    expect(runJson.split.testLeftOut.map((p: string) => p.replace(/.*Testing\//, '')).sort()).toEqual([
      'benign/copy-of-0.png',
      'normal/copy-of-2.png',
    ]);
    expect(runJson.finishedAt).toBeTruthy();
    const meta = JSON.parse(readFileSync(join(out, 'classifier', 'classifier.json'), 'utf8'));
    expect(meta.modelCard.command).toBe(runJson.command);
    expect(meta.modelCard.data.sha256).toBe(runJson.data.sha256);
    expect(meta.metrics.test.images).toBe(6);
    expect(meta.metrics.validation.images).toBe(runJson.split.validation.length);
    // The same data and seed give the same data hash and split.
    const again = await run(
      'train',
      '--data',
      root,
      '--image-size',
      '32',
      '--grayscale',
      '--epochs',
      '1',
      '--batch-size',
      '8',
      '--backend',
      'wasm',
      '--seed',
      '3',
      '--out',
      join(dir, 'run-b'),
    );
    expect(again.code).toBe(0);
    const b = JSON.parse(readFileSync(join(dir, 'run-b', 'run.json'), 'utf8'));
    expect(b.data.sha256).toBe(runJson.data.sha256);
    expect(b.split.validation).toEqual(runJson.split.validation);
  }, 120_000);

  it('runs go to new numbered folders unless --out is given; --resume continues a run', async () => {
    const cwd = process.cwd();
    const work = join(dir, 'work');
    mkdirSync(work);
    process.chdir(work);
    try {
      const flags = [
        '--data',
        root,
        '--image-size',
        '32',
        '--grayscale',
        '--batch-size',
        '8',
        '--backend',
        'wasm',
      ];
      const first = await run('train', ...flags, '--epochs', '1');
      expect(first.code, first.text).toBe(0);
      expect(first.text).toMatch(/run folder: .*runs\/train-001/);
      const second = await run('train', ...flags, '--epochs', '1');
      expect(second.text).toMatch(/run folder: .*runs\/train-002/);
      expect(existsSync(join(work, 'runs', 'train-001', 'classifier', 'classifier.json'))).toBe(true);
      const resumed = await run('train', ...flags, '--epochs', '2', '--resume', '--out', 'runs/train-001');
      expect(resumed.code, resumed.text).toBe(0);
      expect(resumed.text).toMatch(/resuming at epoch 2\/2/);
      const history = JSON.parse(readFileSync(join(work, 'runs', 'train-001', 'history.json'), 'utf8'));
      expect(history.map((h: { epoch: number }) => h.epoch)).toEqual([0, 1]);
    } finally {
      process.chdir(cwd);
    }
  }, 120_000);
});
