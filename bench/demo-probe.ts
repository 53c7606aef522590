import { evaluateSource, adaBelief, arraySource, classificationReport, Compose, GaussianBlur, RandomErasing, RandomHorizontalFlip, Rescale, setupBackend, simpleCnn, stratifiedSplit, syntheticDataset, train } from '../src/index.js';

const info = await setupBackend('auto');
console.log(info.name);
const size = Number(process.argv[2] ?? 64);
const data = syntheticDataset({ kind: 'brain-mri', perClass: Number(process.argv[3] ?? 60), size, seed: 1 });
const { train: tr, validation: va } = stratifiedSplit(data.samples, { validation: 0.25, seed: 1 });
const src = (s: typeof tr) => arraySource(s, { height: size, width: size, numClasses: 4 });
const model = simpleCnn({ inputShape: [size, size, 1], numClasses: 4, filters: [16, 32, 64], dense: 64, dropout: 0.3, seed: 1 });
const pre = new Rescale({ scale: 1 / 255 });
const aug = new Compose([new RandomHorizontalFlip(), new GaussianBlur({ kernelSize: 3, sigma: [0.1, 1] }), new Rescale({ scale: 1 / 255 })], { seed: 2 });
const t0 = Date.now();
const res = await train({ model, train: src(tr), validation: src(va), optimizer: adaBelief({ learningRate: 2e-3 }), epochs: Number(process.argv[4] ?? 8), batchSize: 16, transform: aug, validationTransform: pre, seed: 1,
  callbacks: [{ onEpochEnd: (e, l) => console.log(e, JSON.stringify(l), ((Date.now() - t0) / 1000).toFixed(1) + 's') }] });
const ev = await evaluateSource(model, src(va), { transform: pre });
const m = ev.accumulator.aggregate();
console.log(classificationReport(m.yTrue, m.yPred, { classNames: data.classes }).toString());
