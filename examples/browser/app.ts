/**
 * In-browser classifier page: loads a classifier folder written by the Node CLI (default
 * ./model/, or ?model=URL), decodes a dropped image with the same conventions as Node, shows
 * the class probabilities, the missed-finding warning and a Grad-CAM overlay. Runs on WebGL,
 * falling back to wasm and then cpu with a visible note. Built by build.mjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';
import {
  type Classifier,
  gradCam,
  gradCamOverlay,
  imageFromBrowser,
  loadClassifierFromUrl,
  type Prediction,
  setupBackend,
} from 'medimg-classify';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const note = $('note');

async function chooseBackend(): Promise<string> {
  setWasmPaths(new URL('./dist/', location.href).toString());
  const tried: string[] = [];
  for (const name of ['webgl', 'wasm', 'cpu'] as const) {
    try {
      const info = await setupBackend(name);
      if (tried.length) {
        note.textContent = `Note: ${tried.join(' and ')} unavailable here; running on ${info.name} (slower, same results).`;
        note.style.display = 'block';
      }
      return info.name;
    } catch {
      tried.push(name === 'webgl' ? 'WebGL' : name);
    }
  }
  throw new Error('no TensorFlow.js backend could start');
}

function show(prediction: Prediction) {
  $('result').textContent =
    `${prediction.className} (${(100 * (prediction.probabilities[prediction.className] ?? 0)).toFixed(1)}%)`;
  $('probs').innerHTML = Object.entries(prediction.probabilities)
    .map(
      ([name, p]) =>
        `<tr data-class="${name}"><td>${name}</td><td class="p">${(100 * p).toFixed(1)}%</td><td><span class="bar" style="width:${Math.round(120 * p)}px"></span></td></tr>`,
    )
    .join('');
  const w = $('warning');
  w.textContent = prediction.warning ?? '';
  w.style.display = prediction.warning ? 'block' : 'none';
}

function draw(
  canvas: HTMLCanvasElement,
  rgb: Uint8Array | Float32Array,
  width: number,
  height: number,
  channels: number,
) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    for (let k = 0; k < 3; k++) img.data[i * 4 + k] = rgb[i * channels + Math.min(k, channels - 1)] as number;
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

async function classify(clf: Classifier, file: Blob) {
  status.textContent = 'Classifying...';
  const image = await imageFromBrowser(file, clf.meta.decode);
  try {
    const prediction = clf.predictTensor(image);
    show(prediction);
    const [h, w, c] = image.shape;
    draw($('image'), image.dataSync() as Float32Array, w, h, c);
    const x = clf.preprocessing ? clf.preprocessing.apply(image) : image;
    const cam = gradCam(clf.model, x, { classIndex: prediction.classIndex });
    draw($('cam'), gradCamOverlay(image, cam.heatmap), w, h, 3);
    tf.dispose([cam.heatmap, ...(x === image ? [] : [x])]);
    status.textContent = `Done (${tf.getBackend()}).`;
    document.body.dataset.ready = 'result';
    (window as unknown as { lastPrediction: Prediction }).lastPrediction = prediction;
  } finally {
    image.dispose();
  }
}

async function start() {
  const backend = await chooseBackend();
  const modelUrl =
    new URLSearchParams(location.search).get('model') ?? new URL('./model/', location.href).toString();
  const clf = await loadClassifierFromUrl(modelUrl);
  status.textContent = `Ready: ${clf.meta.classNames.join(', ')} (${backend}). Trained with medimg-classify ${clf.meta.library}.`;
  document.body.dataset.ready = 'model';
  const drop = $('drop');
  const input = $<HTMLInputElement>('file');
  drop.addEventListener('click', () => input.click());
  input.addEventListener('change', () => input.files?.[0] && classify(clf, input.files[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) classify(clf, file);
  });
}

start().catch((error: Error) => {
  status.textContent = `Error: ${error.message}`;
  document.body.dataset.ready = 'error';
});
