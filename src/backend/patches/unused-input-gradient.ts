/**
 * Patch: skip the input gradient tfjs computes for a network's first convolution and throws away.
 *
 * tfjs-layers runs every convolution through `tf.fused.conv2d` or `tf.fused.depthwiseConv2d`.
 * Their gradient is a custom gradient that computes the gradients of all its inputs eagerly, so
 * the first convolution's gradient with respect to the image (on which no variable depends) is
 * computed, then dropped by the backward pass, which follows only inputs that depend on the
 * variables it differentiates. For MobileNetV2 trained end to end at 224x224, batch 32, that
 * 3-channel input gradient was the largest kernel of the step (646 of 3,397 ms on wasm).
 *
 * While `engine.gradients` records its forward pass, the patch follows which tensors depend on
 * its `xs` (tfjs's own rule for pruning the tape). When the first input of a fused convolution
 * does not, that node's gradient runs with its input-gradient kernel (`Conv2DBackpropInput` or
 * `DepthwiseConv2dNativeBackpropInput` of that input's shape) answered with zeros, which tfjs
 * discards unread. Every gradient that is used is computed as before: the numbers are unchanged.
 * Higher-order gradients are left alone. Backend-independent; `setSkipUnusedInputGradients(false)`
 * switches it off.
 */
import * as tf from '@tensorflow/tfjs-core';

type Engine = ReturnType<typeof tf.engine>;
type GradientsFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => unknown;
interface EngineInternals {
  state: { gradientDepth: number };
  gradients: Engine['gradients'];
  addTapeNode(
    kernelName: string,
    inputs: Record<string, tf.Tensor>,
    outputs: tf.Tensor[],
    gradientsFunc: GradientsFunc | undefined,
    saved: tf.Tensor[],
    attrs: tf.NamedAttrMap,
  ): void;
  runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap): tf.Tensor | tf.Tensor[];
}

/** The custom-gradient scopes of tfjs's fused convolutions, whose input 0 is the image side. */
const FUSED_CONVOLUTIONS = new Set(['fusedConv2d__op', 'fusedDepthwiseConv2d__op']);
const INPUT_GRADIENTS = new Set(['Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropInput']);
const PATCHED = Symbol.for('medimg-classify.skipUnusedInputGradients');

interface Recording {
  /** Ids of `xs` and of every recorded tensor that depends on them. */
  fromX: Set<number>;
  /** A nested `gradients` call recorded into the same tape: stop skipping, to stay exact. */
  nested: boolean;
}
const recordings: Recording[] = [];
/** Set while a fused convolution's gradient runs whose input 0 needs no gradient. */
let skip: number[] | null = null;
let enabled = true;
/** How many input gradients were skipped (tests read it). */
let skipped = 0;

/** Turns the patch off or on (on once `setupBackend` has run). The numbers are the same either way. */
export function setSkipUnusedInputGradients(on: boolean): void {
  enabled = on;
}

/** Input gradients skipped since the patch was installed. */
export function skippedInputGradients(): number {
  return skipped;
}

/**
 * While `engine.gradients` records its forward pass (not nested), whether none of `tensors`
 * depends on the variables it differentiates: a computation from them needs no tape. `false`
 * when nothing records, when gradients are nested, or before the patch is installed.
 */
export function independentOfGradientSources(tensors: tf.Tensor[]): boolean {
  const recording = recordings.at(-1);
  const engine = tf.engine() as unknown as EngineInternals;
  if (!recording || recording.nested || engine.state.gradientDepth !== 1) return false;
  return tensors.every((t) => !recording.fromX.has(t.id));
}

/**
 * Runs `f` with the tape paused: its operations are not recorded and tfjs fuses what it fuses
 * outside gradients. Only for computations {@link independentOfGradientSources} clears.
 */
export function untaped<T>(f: () => T): T {
  const { state } = tf.engine() as unknown as EngineInternals;
  const depth = state.gradientDepth;
  state.gradientDepth = 0;
  try {
    return f();
  } finally {
    state.gradientDepth = depth;
  }
}

/** Installs the patch on tfjs's engine (idempotent). Called by `setupBackend`. */
export function installSkipUnusedInputGradients(): void {
  const engine = tf.engine() as unknown as EngineInternals & { [PATCHED]?: true };
  if (engine[PATCHED]) return;
  const { gradients, addTapeNode, runKernel } = engine;
  engine.gradients = function (this: EngineInternals, ...args: Parameters<Engine['gradients']>) {
    if (this.state.gradientDepth > 0) {
      for (const r of recordings) r.nested = true;
      return gradients.apply(this, args);
    }
    recordings.push({ fromX: new Set(args[1].map((x) => x.id)), nested: false });
    try {
      return gradients.apply(this, args);
    } finally {
      recordings.pop();
    }
  } as Engine['gradients'];
  engine.addTapeNode = function (
    this: EngineInternals,
    kernelName,
    inputs,
    outputs,
    gradientsFunc,
    saved,
    attrs,
  ) {
    const recording = recordings.at(-1);
    if (recording && this.state.gradientDepth === 1) {
      const { fromX } = recording;
      if (Object.values(inputs).some((t) => t != null && fromX.has(t.id)))
        for (const t of outputs) fromX.add(t.id);
      const image = inputs['0'];
      if (gradientsFunc && image && FUSED_CONVOLUTIONS.has(kernelName) && !fromX.has(image.id)) {
        const inner = gradientsFunc;
        const shape = [...image.shape];
        gradientsFunc = (dy, kept, a) => {
          if (!enabled || recording.nested) return inner(dy, kept, a);
          skip = shape;
          try {
            return inner(dy, kept, a);
          } finally {
            skip = null;
          }
        };
      }
    }
    return addTapeNode.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
  };
  engine.runKernel = function (this: EngineInternals, kernelName, inputs, attrs) {
    const inputShape = attrs?.inputShape;
    if (
      skip &&
      INPUT_GRADIENTS.has(kernelName) &&
      Array.isArray(inputShape) &&
      tf.util.arraysEqual(inputShape as number[], skip)
    ) {
      const shape = skip;
      skip = null;
      skipped++;
      return tf.zeros(shape);
    }
    return runKernel.call(this, kernelName, inputs, attrs);
  };
  engine[PATCHED] = true;
}
