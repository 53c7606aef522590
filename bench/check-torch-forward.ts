/**
 * The TypeScript side of `bench/torch_recipes.py --check-forward`: MobileNetV2-0.35 with the
 * Keras .h5 ImageNet weights, the same fixed input (linspace(-1, 1) as 1x224x224x3), on the cpu
 * backend; prints the pooled 1280 features and their statistics as JSON.
 *
 *   npx tsx bench/check-torch-forward.ts [keras_model.h5] > ts.json
 *   /usr/bin/python3 bench/torch_recipes.py --check-forward [keras_model.h5] > torch.json
 *   /usr/bin/python3 -c "import json,sys; a,b=(json.load(open(p))['features'] for p in sys.argv[1:]); \
 *     print(max(abs(x-y) for x,y in zip(a,b)))" ts.json torch.json
 */
import * as tf from '@tensorflow/tfjs-core';
import { mobilenetV2 } from '../src/index.js';
import { loadKerasWeights, setupBackend } from '../src/node.js';

const h5 = process.argv[2] ?? '/work/shared/models/teachable-machine-busi/keras_model.h5';
await setupBackend('cpu');
const model = mobilenetV2({ alpha: 0.35, inputShape: [224, 224, 3], pooling: 'avg' });
const match = await loadKerasWeights(model, h5, { allowUnexpected: true });
const n = 224 * 224 * 3;
// float64 linspace rounded to float32, as np.linspace(..., dtype=np.float32).
const input = tf.tensor4d(
  Float32Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1)),
  [1, 224, 224, 3],
);
const out = model.predict(input) as tf.Tensor;
const f = Array.from(await out.data());
const mean = f.reduce((a, b) => a + b, 0) / f.length;
const std = Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / f.length);
console.log(
  JSON.stringify({
    source: 'tfjs',
    weights: match.loaded.length,
    mean,
    std,
    first: f.slice(0, 5),
    max: Math.max(...f),
    features: f,
  }),
);
