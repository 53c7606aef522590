import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  encodeTensors,
  modelArtifacts,
  modelFromArtifacts,
  packBundle,
  unpackBundle,
} from '../inference/serialize.js';
import type { RandomState } from '../util/random.js';

/** Training state saved beside the model and optimizer. */
export interface TrainingState {
  /** Last completed epoch (0-based). */
  epoch: number;
  history: EpochLog[];
  /** Generator states of the training transform pipeline. */
  transformState: RandomState[];
  learningRate: number;
  best: { metric: string; value: number; epoch: number } | null;
  earlyStopping: { wait: number } | null;
  optimizerClass: string;
  optimizerConfig: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

/** Metrics of one epoch: `loss`, `accuracy`, `f1` and `val_*` counterparts. */
export type EpochLog = { epoch: number } & Record<string, number>;

/** Where checkpoints are kept: a folder on disk in Node, memory in tests or browsers. */
export interface CheckpointStore {
  write(name: string, bytes: Uint8Array): Promise<void>;
  read(name: string): Promise<Uint8Array | null>;
  /** A human-readable location, for messages. */
  describe(name: string): string;
}

/** A checkpoint store in memory. */
export function memoryCheckpointStore(): CheckpointStore & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    write: async (name, bytes) => {
      files.set(name, bytes.slice());
    },
    read: async (name) => files.get(name) ?? null,
    describe: (name) => `memory:${name}`,
  };
}

/** Serialises model weights + topology, optimizer state and training state into one buffer. */
export async function encodeCheckpoint(
  model: tfl.LayersModel,
  optimizer: tf.Optimizer,
  state: TrainingState,
): Promise<Uint8Array> {
  const artifacts = await modelArtifacts(model);
  const optWeights = await optimizer.getWeights();
  const opt = await encodeTensors(optWeights);
  return packBundle(
    {
      format: 'medimg-checkpoint',
      version: 1,
      modelTopology: artifacts.modelTopology,
      weightSpecs: artifacts.weightSpecs,
      optimizerSpecs: opt.specs,
      state,
    },
    [artifacts.weightData, opt.data],
  );
}

/** What {@link decodeCheckpoint} restores. */
export interface LoadedCheckpoint {
  model: tfl.LayersModel;
  optimizerWeights: { name: string; tensor: tf.Tensor }[];
  state: TrainingState;
}

/** Rebuilds what {@link encodeCheckpoint} saved. */
export async function decodeCheckpoint(bytes: Uint8Array, label: string): Promise<LoadedCheckpoint> {
  const { header, blobs } = unpackBundle<{
    modelTopology: object;
    weightSpecs: tf.io.WeightsManifestEntry[];
    optimizerSpecs: tf.io.WeightsManifestEntry[];
    state: TrainingState;
  }>(bytes, label);
  const model = await modelFromArtifacts({
    modelTopology: header.modelTopology,
    weightSpecs: header.weightSpecs,
    weightData: blobs[0] as ArrayBuffer,
  });
  const decoded = tf.io.decodeWeights(blobs[1] as ArrayBuffer, header.optimizerSpecs);
  const optimizerWeights = header.optimizerSpecs.map((s) => ({
    name: s.name,
    tensor: decoded[s.name] as tf.Tensor,
  }));
  return { model, optimizerWeights, state: header.state };
}
