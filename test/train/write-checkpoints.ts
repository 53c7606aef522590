// Child process for the interrupted-write test: writes 'last' checkpoints of a large model in a loop.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { adaBelief, encodeCheckpoint, fileCheckpointStore, simpleCnn } from '../../src/node.js';

await tf.setBackend('cpu');
const store = fileCheckpointStore(process.argv[2]!);
const model = simpleCnn({ inputShape: [128, 128, 1], numClasses: 4, filters: [16, 32, 64], dense: 256 });
const optimizer = adaBelief();
for (let epoch = 0; epoch < 10_000; epoch++) {
  const bytes = await encodeCheckpoint(model, optimizer, {
    epoch,
    history: [],
    transformState: [],
    learningRate: 1e-3,
    best: null,
    earlyStopping: null,
    optimizerClass: 'AdaBelief',
    optimizerConfig: {},
  });
  await store.write('last', bytes);
  process.stdout.write('written\n');
}
