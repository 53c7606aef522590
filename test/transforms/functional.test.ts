import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adjustBrightness,
  adjustContrast,
  cropToForeground,
  erase,
  gaussianBlur,
  gaussianKernel1d,
  grayscale,
  hflip,
  letterbox,
  letterboxGeometry,
  normalize,
  rescale,
  resize,
  rotate,
  vflip,
} from '../../src/index.js';
import { setHostRotation } from '../../src/transforms/functional/rotate.js';
import fixtures from '../fixtures/transforms.json' with { type: 'json' };
import { expectNoLeak, maxAbsDiff, testImage, useBackend } from '../helpers.js';

const t3 = (x: unknown) => tf.tensor3d(x as number[][][]);

describe.each(['cpu', 'wasm'] as const)(
  'functional transforms match torchvision 0.14 (%s backend)',
  (backend) => {
    beforeAll(() => useBackend(backend));

    it('gaussianKernel1d equals torchvision _get_gaussian_kernel1d', () => {
      for (const c of fixtures.gaussianKernel1d) {
        const k = gaussianKernel1d(c.kernelSize, c.sigma);
        k.forEach((v, i) => {
          expect(v).toBeCloseTo(c.kernel[i] as number, 6);
        });
      }
    });

    it('gaussianBlur within 1e-3 on the 0-255 scale (1 and 3 channels, square and [kx, ky] kernels)', () => {
      for (const c of fixtures.gaussianBlur) {
        const x = t3(c.input);
        const y = gaussianBlur(x, { kernelSize: c.kernelSize as number, sigma: c.sigma as number });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-3);
        tf.dispose([x, y]);
      }
    });

    it('grayscale uses rgb_to_grayscale weights (1 and 3 output channels)', () => {
      for (const c of fixtures.grayscale) {
        const x = t3(c.input);
        const y = grayscale(x, { outputChannels: c.outputChannels as 1 | 3 });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-4);
        tf.dispose([x, y]);
      }
    });

    it('erase replaces exactly the rectangle, at every border and over the whole image, for a batch, per-channel values and a value tensor', () => {
      const [N, H, W, C] = [2, 6, 7, 3];
      const x = tf.tensor4d(
        Float32Array.from({ length: N * H * W * C }, (_, i) => i),
        [N, H, W, C],
      );
      const patch = (h: number, w: number) =>
        tf.tensor3d(
          Float32Array.from({ length: h * w * C }, (_, i) => -1 - i),
          [h, w, C],
        );
      const rects: [number, number, number, number][] = [
        [0, 0, 2, 3], // top-left corner
        [4, 4, 2, 3], // bottom-right corner
        [1, 0, 3, 7], // full width
        [0, 2, 6, 1], // full height
        [0, 0, 6, 7], // the whole image
        [2, 3, 1, 1],
      ];
      for (const [top, left, height, width] of rects) {
        for (const kind of ['scalar', 'channels', 'tensor'] as const) {
          const value = kind === 'scalar' ? 9 : kind === 'channels' ? [10, 20, 30] : patch(height, width);
          const y = erase(x, { top, left, height, width, value });
          const got = y.dataSync();
          const src = x.dataSync();
          const pv = value instanceof tf.Tensor ? value.dataSync() : null;
          for (let i = 0; i < got.length; i++) {
            const c = i % C;
            const col = Math.floor(i / C) % W;
            const row = Math.floor(i / (C * W)) % H;
            const inside = row >= top && row < top + height && col >= left && col < left + width;
            const want = !inside
              ? src[i]
              : kind === 'scalar'
                ? 9
                : kind === 'channels'
                  ? [10, 20, 30][c]
                  : pv![((row - top) * width + (col - left)) * C + c];
            expect(got[i], `${[top, left, height, width]} ${kind} at ${i}`).toBe(want);
          }
          expect(y.shape).toEqual([N, H, W, C]);
          tf.dispose([y, ...(value instanceof tf.Tensor ? [value] : [])]);
        }
      }
      x.dispose();
    });

    it('erase, normalize, hflip and vflip equal torchvision', () => {
      for (const c of fixtures.erase) {
        const x = t3(c.input);
        const y = erase(x, { top: c.top, left: c.left, height: c.height, width: c.width, value: c.value });
        expect(maxAbsDiff(y, c.output)).toBe(0);
        tf.dispose([x, y]);
      }
      for (const c of fixtures.normalize) {
        const x = t3(c.input);
        const y = normalize(x, { mean: c.mean, std: c.std });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-5);
        tf.dispose([x, y]);
      }
      const x = t3(fixtures.hflip.input);
      const h = hflip(x);
      const v = vflip(x);
      expect(maxAbsDiff(h, fixtures.hflip.output)).toBe(0);
      expect(maxAbsDiff(v, fixtures.vflip.output)).toBe(0);
      tf.dispose([x, h, v]);
    });

    it('letterbox: geometry and pixels equal bilinear resize + centred pad (up- and downscaling, 1 and 3 channels)', () => {
      for (const c of fixtures.letterbox) {
        const x = t3(c.input);
        const g = letterboxGeometry(x.shape[0], x.shape[1], c.height, c.width);
        expect({
          contentHeight: g.contentHeight,
          contentWidth: g.contentWidth,
          top: g.top,
          left: g.left,
        }).toEqual(c.geometry);
        const y = letterbox(x, { height: c.height, width: c.width, fill: c.fill });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-3);
        tf.dispose([x, y]);
      }
    });

    it('letterbox keeps the aspect ratio of a 512x380 slice at 224', () => {
      const g = letterboxGeometry(512, 380, 224, 224);
      expect(g).toMatchObject({ contentHeight: 224, contentWidth: 166, top: 0, left: 29 });
      expect(g.contentWidth / g.contentHeight).toBeCloseTo(380 / 512, 2);
    });

    it('rotate equals torchvision F.rotate (nearest, expand=False) for 90, -90, 180 and 30 degrees, by the JavaScript gather and by tensor ops', () => {
      try {
        for (const host of [true, false]) {
          setHostRotation(host);
          for (const c of fixtures.rotate) {
            const x = t3(c.input);
            const y = rotate(x, { angle: c.angle });
            expect(maxAbsDiff(y, c.output), `host ${host}, ${c.angle} degrees`).toBe(0);
            tf.dispose([x, y]);
          }
        }
        // A batch of 2 RGB images at 17 degrees, with a fill: both paths agree value for value.
        const x = tf.randomUniform([2, 9, 7, 3], 0, 255, 'float32', 5) as tf.Tensor4D;
        setHostRotation(true);
        const a = rotate(x, { angle: 17, fill: 40 });
        setHostRotation(false);
        const b = rotate(x, { angle: 17, fill: 40 });
        expect(maxAbsDiff(a, b.arraySync())).toBe(0);
        expect(Array.from(a.dataSync()).filter((v) => v === 40).length).toBeGreaterThan(0);
        tf.dispose([x, a, b]);
      } finally {
        setHostRotation(true);
      }
    });

    it('adjustBrightness and adjustContrast equal torchvision on the 0-255 scale', () => {
      for (const c of fixtures.adjustBrightness) {
        const x = t3(c.input);
        const y = adjustBrightness(x, { factor: c.factor });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-3);
        tf.dispose([x, y]);
      }
      for (const c of fixtures.adjustContrast) {
        const x = t3(c.input);
        const y = adjustContrast(x, { factor: c.factor });
        expect(maxAbsDiff(y, c.output)).toBeLessThan(1e-3);
        tf.dispose([x, y]);
      }
    });
  },
);

describe('functional transforms: worked examples', () => {
  beforeAll(() => useBackend('cpu'));

  it('cropToForeground crops to the bright box plus margin; an all-dark image is unchanged', async () => {
    const data = new Float32Array(10 * 12);
    for (let r = 3; r <= 6; r++) for (let c = 2; c <= 8; c++) data[r * 12 + c] = 200;
    data[0] = 5; // below the default threshold of 10
    const x = tf.tensor3d(data, [10, 12, 1]);
    const y = cropToForeground(x);
    expect(y.shape).toEqual([4, 7, 1]);
    expect(tf.min(y).dataSync()[0]).toBe(200);
    const m = cropToForeground(x, { margin: 2 });
    expect(m.shape).toEqual([8, 11, 1]); // rows 1..8, cols 0..10
    const dark = tf.zeros([5, 5, 3]) as tf.Tensor3D;
    const same = cropToForeground(dark);
    expect(same.shape).toEqual([5, 5, 3]);
    tf.dispose([x, y, m, dark, same]);
    const z = testImage(9, 9, 3);
    await expectNoLeak(() => cropToForeground(z));
    z.dispose();
  });

  it('rescale and resize', () => {
    const x = tf.tensor3d([0, 127.5, 255], [1, 3, 1]);
    const y = rescale(x, { scale: 1 / 127.5, offset: -1 });
    expect(Array.from(y.dataSync())).toEqual([-1, 0, 1]);
    const r = resize(testImage(8, 6, 3), { height: 4, width: 12 });
    expect(r.shape).toEqual([4, 12, 3]);
    tf.dispose([x, y, r]);
  });

  it('every function keeps rank, dtype and the input, and leaks nothing', async () => {
    const fns: [string, (x: tf.Tensor3D | tf.Tensor4D) => tf.Tensor][] = [
      ['letterbox', (x) => letterbox(x, { height: 7, width: 9 })],
      ['resize', (x) => resize(x, { height: 5, width: 5 })],
      ['grayscale', (x) => grayscale(x, { outputChannels: 3 })],
      ['gaussianBlur', (x) => gaussianBlur(x, { kernelSize: 3, sigma: 1 })],
      ['erase', (x) => erase(x, { top: 1, left: 1, height: 2, width: 2, value: 9 })],
      ['normalize', (x) => normalize(x, { mean: [1, 2, 3], std: [2, 2, 2] })],
      ['rescale', (x) => rescale(x, { scale: 2 })],
      ['hflip', hflip],
      ['vflip', vflip],
      ['rotate', (x) => rotate(x, { angle: 30 })],
      ['adjustBrightness', (x) => adjustBrightness(x, { factor: 1.3 })],
      ['adjustContrast', (x) => adjustContrast(x, { factor: 0.7 })],
      ['cropToForeground', (x) => cropToForeground(x, { threshold: 100 })],
    ];
    for (const [name, fn] of fns) {
      const x = testImage(6, 8, 3);
      const copy = x.clone();
      const before = tf.memory().numTensors;
      const y = fn(x);
      expect(tf.memory().numTensors, name).toBe(before + 1);
      expect(y.rank, name).toBe(3);
      expect(y.dtype, name).toBe('float32');
      expect(maxAbsDiff(x, copy.arraySync()), `${name} changed its input`).toBe(0);
      const batch = tf.stack([x, x]) as tf.Tensor4D;
      const yb = fn(batch);
      expect(yb.rank, name).toBe(4);
      expect(
        maxAbsDiff(
          tf.tidy(() => tf.unstack(yb)[1]!),
          y.arraySync(),
        ),
        `${name} batch != single`,
      ).toBeLessThan(1e-4);
      tf.dispose([x, copy, y, batch, yb]);
    }
  });

  it('bad arguments name the function and the argument', () => {
    const x = testImage(6, 6, 3);
    expect(() => gaussianBlur(x, { kernelSize: 4, sigma: 1 })).toThrow(
      'Error in gaussianBlur: kernelSize must be odd, got 4',
    );
    expect(() => gaussianBlur(x, { kernelSize: 3, sigma: 0 })).toThrow(
      /Error in gaussianBlur: sigma must be > 0/,
    );
    expect(() => gaussianBlur(x, { kernelSize: 15, sigma: 1 })).toThrow(
      /Error in gaussianBlur: kernelSize .* reflect padding/,
    );
    expect(() => normalize(x, { mean: [1, 2], std: [1, 1, 1] })).toThrow(
      'Error in normalize: mean has 2 values but the image has 3 channel(s)',
    );
    expect(() => normalize(x, { mean: 0, std: [1, 0, 1] })).toThrow(
      /Error in normalize: std must not contain 0/,
    );
    expect(() => letterbox(tf.zeros([4, 4]) as unknown as tf.Tensor3D, { height: 2, width: 2 })).toThrow(
      /Error in letterbox: image must have rank 3 .* got rank 2/,
    );
    expect(() => letterbox(x, { height: 0, width: 2 })).toThrow(/Error in letterbox: height must be >= 1/);
    expect(() => erase(x, { top: 4, left: 0, height: 4, width: 1, value: 0 })).toThrow(
      /Error in erase: rectangle/,
    );
    expect(() => grayscale([1, 2, 3] as unknown as tf.Tensor3D)).toThrow(
      /Error in grayscale: image must be a tf.Tensor/,
    );
    x.dispose();
  });
});
