import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };
import { availableBackends, setupBackend } from '../../src/index.js';
import { VERSION } from '../../src/version.js';

describe('setupBackend', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it("'auto' picks wasm here, where tfjs-node is not installed, and says why tensorflow was skipped", async () => {
    const info = await setupBackend('auto');
    expect(info.name).toBe('wasm');
    expect(info.package).toBe('@tensorflow/tfjs-backend-wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.skipped.map((s) => s.name)).toEqual(['tensorflow']);
    expect(info.skipped[0]?.reason).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
    expect(info.skipped[0]?.reason).toMatch(/@tensorflow\/tfjs-node is not installed/);
    // The wasm binary was loaded from the installed package (no network here) and computes.
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0]);
    expect(y).toBe(11);
  });

  it("'tensorflow' without tfjs-node fails with the package to install and the available backends", async () => {
    const error = await setupBackend('tensorflow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/^Error in setupBackend: could not activate backend 'tensorflow'/);
    expect(message).toContain('npm install @tensorflow/tfjs-node');
    expect(message).toContain('@tensorflow/tfjs-node-gpu');
    expect(message).toMatch(/Available backends: .*cpu.*wasm/);
  });

  it("'webgl' in Node fails naming the package", async () => {
    await expect(setupBackend('webgl')).rejects.toThrow(/npm install @tensorflow\/tfjs-backend-webgl/);
  });

  it('an unknown name lists the valid choices', async () => {
    // @ts-expect-error: testing a bad value from untyped callers
    await expect(setupBackend('cuda')).rejects.toThrow(
      /unknown backend 'cuda'; valid choices are 'auto', 'tensorflow'/,
    );
  });

  it("'auto' prefers tfjs-node-gpu, then tfjs-node, when they import and register a backend", async () => {
    const tried: string[] = [];
    const fakeRegister = (spec: string) => {
      tried.push(spec);
      if (spec === '@tensorflow/tfjs-node-gpu')
        throw new Error('libcudart.so.11.0: cannot open shared object');
      // Stand-in for tfjs-node: registers a 'tensorflow' backend (here a cpu backend under that name).
      tf.registerBackend('tensorflow', () => tf.findBackendFactory('cpu')!() as tf.KernelBackend);
      return Promise.resolve({});
    };
    try {
      const info = await setupBackend('auto', { importer: async (s) => fakeRegister(s) });
      expect(tried).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
      expect(info).toMatchObject({ name: 'tensorflow', package: '@tensorflow/tfjs-node', gpu: false });
      expect(tf.getBackend()).toBe('tensorflow');
    } finally {
      await tf.setBackend('cpu');
      tf.removeBackend('tensorflow');
    }
  });

  it("'cpu' is always available", async () => {
    const info = await setupBackend('cpu');
    expect(info.name).toBe('cpu');
    expect(availableBackends()).toEqual(expect.arrayContaining(['cpu', 'wasm']));
  });

  it('VERSION matches package.json', () => {
    expect(VERSION).toBe(pkg.version);
  });
});
