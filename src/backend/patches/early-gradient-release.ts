/**
 * Frees backprop memory as soon as tfjs no longer needs it.
 *
 * tfjs's backward pass (`engine.gradients`) keeps two things until it ends. One is the
 * gradient of every intermediate tensor; they are freed only when the backward `tidy` closes.
 * The other is every tensor the forward pass saved for a gradient; these go when the tape is
 * cleaned up. So its peak holds the forward activations and all their gradients at once. For
 * ResNet50V2 trained end to end at 224x224, batch 8, that is over the 4 GB a wasm heap can
 * address.
 *
 * Each node's gradient function runs once, in reverse tape order. After that, its incoming
 * gradients (dy) and its saved tensors are dead. So the gradient functions are wrapped:
 * - when the next one starts, the previous node's dy and saved tensors are disposed;
 * - tensors the previous node passed on (a gradient returned as-is) are kept;
 * - tensors made before this backward pass began are kept, such as a dy the caller supplied.
 * Higher-order gradients (`gradientDepth > 0`) keep the tape and are left alone.
 * Backend-independent; the numbers computed are unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';

type GradientMap = Record<string, () => tf.Tensor>;
type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => GradientMap;
type Engine = ReturnType<typeof tf.engine>;

interface Backward {
  /** Id of the first tensor made by this backward pass (set when its first node runs). */
  start: number | null;
  dys: (tf.Tensor | null)[];
  saved: tf.Tensor[];
  passedOn: Set<tf.Tensor>;
}

const stack: Backward[] = [];
const wrapped = new WeakSet<object>();
const PATCHED = Symbol.for('medimg-classify.earlyGradientRelease');
let enabled = true;

/**
 * Turns early release off or on (default on once `setupBackend` has run). The numbers computed
 * are the same either way; turn it off to compare memory, or if a custom gradient keeps a
 * reference to its incoming gradient or saved tensors beyond its own call.
 */
export function setEarlyGradientRelease(on: boolean): void {
  enabled = on;
}

function releasePrevious(pass: Backward): void {
  const start = pass.start ?? Number.POSITIVE_INFINITY;
  for (const t of pass.dys) {
    if (t && t.id >= start && !pass.passedOn.has(t) && !t.isDisposed) t.dispose();
  }
  for (const t of pass.saved) if (!pass.passedOn.has(t) && !t.isDisposed) t.dispose();
  pass.dys = [];
  pass.saved = [];
  pass.passedOn = new Set();
}

function wrapGradFunc(gradFunc: GradFunc): GradFunc {
  return (dy, saved, attrs) => {
    const pass = stack.at(-1);
    if (!enabled || !pass || tf.engine().state.gradientDepth !== 0) return gradFunc(dy, saved, attrs);
    if (pass.start === null) {
      const probe = tf.scalar(0);
      pass.start = probe.id;
      probe.dispose();
    }
    releasePrevious(pass);
    const grads = gradFunc(dy, saved, attrs);
    pass.dys = Array.isArray(dy) ? dy : [dy];
    pass.saved = [...saved];
    const out: GradientMap = {};
    for (const [name, grad] of Object.entries(grads)) {
      out[name] = () => {
        const t = grad();
        pass.passedOn.add(t);
        return t;
      };
    }
    return out;
  };
}

/**
 * Installs early release (idempotent): wraps `engine.gradients` to track each backward pass, and
 * the gradient functions registered for the kernels of every registered backend. Gradients
 * registered later are not wrapped; calling this again wraps them. Called by `setupBackend`.
 */
export function installEarlyGradientRelease(): void {
  const engine = tf.engine() as Engine & { [PATCHED]?: true };
  if (!engine[PATCHED]) {
    const gradients = engine.gradients;
    engine.gradients = function (this: Engine, ...args: Parameters<Engine['gradients']>) {
      stack.push({ start: null, dys: [], saved: [], passedOn: new Set() });
      try {
        return gradients.apply(this, args);
      } finally {
        stack.pop();
      }
    } as Engine['gradients'];
    engine[PATCHED] = true;
  }
  const names = new Set<string>();
  for (const backend of Object.keys(engine.registryFactory))
    for (const kernel of tf.getKernelsForBackend(backend)) names.add(kernel.kernelName);
  for (const name of names) {
    const config = tf.getGradient(name);
    if (!config || wrapped.has(config)) continue;
    const replacement: tf.GradConfig = { ...config, gradFunc: wrapGradFunc(config.gradFunc as GradFunc) };
    wrapped.add(replacement);
    tf.registerGradient(replacement);
  }
}
