import { check } from '../util/errors.js';
import { Random } from '../util/random.js';

export type SyntheticKind = 'brain-mri' | 'breast-ultrasound';

/** Class names of each synthetic kind (sorted, as a class-per-folder dataset would be). */
export const SYNTHETIC_CLASSES: Record<SyntheticKind, string[]> = {
  'brain-mri': ['glioma', 'meningioma', 'notumor', 'pituitary'],
  'breast-ultrasound': ['benign', 'malignant', 'normal'],
};

/** The normal class of each kind, for missed-finding counts. */
export const SYNTHETIC_NORMAL_CLASS: Record<SyntheticKind, string> = {
  'brain-mri': 'notumor',
  'breast-ultrasound': 'normal',
};

/** One generated image: `size * size` gray values 0-255, row-major. */
export interface SyntheticSample {
  pixels: Float32Array;
  label: number;
}

export interface SyntheticDataset {
  kind: SyntheticKind;
  classes: string[];
  size: number;
  samples: SyntheticSample[];
}

/**
 * Procedurally generated phantom images with class-dependent structure, for demos and tests
 * (no file system, no download). Learnable, but not trivially: head or tissue shape, position,
 * texture, contrast and noise vary per image, and lesions differ in shape, margin, position
 * and echo pattern rather than in a single intensity.
 *
 * Brain MRI (axial slice): skull ring, parenchyma texture, ventricles; glioma = irregular,
 * infiltrative mass with blurred margins in a hemisphere; meningioma = sharply bounded round
 * mass against the skull; pituitary = small bright mass at the midline base; notumor = none.
 *
 * Breast ultrasound: layered speckle; benign = oval, smooth, wider-than-tall hypoechoic mass;
 * malignant = irregular, spiculated, taller-than-wide mass with posterior shadowing;
 * normal = none.
 *
 * @example
 * const data = syntheticDataset({ kind: 'brain-mri', perClass: 50, size: 64, seed: 1 });
 */
export function syntheticDataset(options: {
  kind: SyntheticKind;
  perClass: number;
  size?: number;
  seed: number;
}): SyntheticDataset {
  const op = 'syntheticDataset';
  const { kind, perClass, seed } = options ?? ({} as typeof options);
  const size = options?.size ?? 64;
  check(
    kind in SYNTHETIC_CLASSES,
    op,
    `kind must be 'brain-mri' or 'breast-ultrasound', got ${String(kind)}`,
  );
  check(
    Number.isInteger(perClass) && perClass > 0,
    op,
    `perClass must be a positive integer, got ${perClass}`,
  );
  check(Number.isInteger(size) && size >= 16, op, `size must be an integer >= 16, got ${size}`);
  check(Number.isInteger(seed), op, `seed must be an integer, got ${String(seed)}`);
  const classes = SYNTHETIC_CLASSES[kind];
  const rng = new Random(seed);
  const samples: SyntheticSample[] = [];
  for (let i = 0; i < perClass; i++) {
    for (let label = 0; label < classes.length; label++) {
      const draw = new Random(rng.nextSeed());
      const cls = classes[label] as string;
      const pixels = kind === 'brain-mri' ? brain(size, cls, draw) : ultrasound(size, cls, draw);
      samples.push({ pixels, label });
    }
  }
  return { kind, classes: [...classes], size, samples };
}

const smooth = (e0: number, e1: number, x: number) => {
  const t = Math.min(1, Math.max(0, (x - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
};

/** Smooth value noise on a coarse grid, bilinearly upsampled. */
function valueNoise(size: number, cells: number, rng: Random): Float32Array {
  const g = cells + 1;
  const grid = Float32Array.from({ length: g * g }, () => rng.next());
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gx = (x / size) * cells;
      const gy = (y / size) * cells;
      const x0 = Math.floor(gx);
      const y0 = Math.floor(gy);
      const fx = gx - x0;
      const fy = gy - y0;
      const v = (i: number, j: number) => grid[Math.min(g - 1, j) * g + Math.min(g - 1, i)] as number;
      out[y * size + x] =
        v(x0, y0) * (1 - fx) * (1 - fy) +
        v(x0 + 1, y0) * fx * (1 - fy) +
        v(x0, y0 + 1) * (1 - fx) * fy +
        v(x0 + 1, y0 + 1) * fx * fy;
    }
  }
  return out;
}

/** Radius of an irregular blob at angle `a`: base radius with random harmonics. */
function blobRadius(rng: Random, base: number, roughness: number, harmonics: number): (a: number) => number {
  const terms = Array.from({ length: harmonics }, (_, k) => ({
    k: k + 2,
    amp: (roughness * rng.uniform(0.3, 1)) / (k + 1),
    phase: rng.uniform(0, 2 * Math.PI),
  }));
  return (a) => base * (1 + terms.reduce((s, t) => s + t.amp * Math.sin(t.k * a + t.phase), 0));
}

function brain(size: number, cls: string, rng: Random): Float32Array {
  const img = new Float32Array(size * size);
  const cx = size / 2 + rng.uniform(-0.05, 0.05) * size;
  const cy = size / 2 + rng.uniform(-0.05, 0.05) * size;
  const rx = size * rng.uniform(0.36, 0.44);
  const ry = size * rng.uniform(0.4, 0.47);
  const tilt = rng.uniform(-0.25, 0.25);
  const texture = valueNoise(size, 6, rng);
  const fine = valueNoise(size, 16, rng);
  const gray = rng.uniform(95, 130);
  const contrast = rng.uniform(0.8, 1.2);
  // Lesion parameters (in head-normalised coordinates u, v in [-1, 1]).
  let lesion: {
    u: number;
    v: number;
    r: (a: number) => number;
    edge: number;
    level: number;
    hetero: number;
  } | null = null;
  if (cls === 'glioma') {
    const side = rng.next() < 0.5 ? -1 : 1;
    lesion = {
      u: side * rng.uniform(0.2, 0.5),
      v: rng.uniform(-0.45, 0.3),
      r: blobRadius(rng, rng.uniform(0.16, 0.28), 0.45, 4),
      edge: 0.12,
      level: rng.uniform(40, 75),
      hetero: 0.6,
    };
  } else if (cls === 'meningioma') {
    const a = rng.uniform(0, 2 * Math.PI);
    const base = rng.uniform(0.15, 0.24);
    lesion = {
      u: Math.cos(a) * (0.86 - base),
      v: Math.sin(a) * (0.86 - base),
      r: blobRadius(rng, base, 0.05, 2),
      edge: 0.015,
      level: rng.uniform(55, 85),
      hetero: 0.1,
    };
  } else if (cls === 'pituitary') {
    lesion = {
      u: rng.uniform(-0.05, 0.05),
      v: rng.uniform(0.45, 0.58),
      r: blobRadius(rng, rng.uniform(0.08, 0.13), 0.1, 2),
      edge: 0.03,
      level: rng.uniform(60, 90),
      hetero: 0.15,
    };
  }
  const cos = Math.cos(tilt);
  const sin = Math.sin(tilt);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const u = (cos * dx + sin * dy) / rx;
      const v = (-sin * dx + cos * dy) / ry;
      const r = Math.hypot(u, v);
      const i = y * size + x;
      let value = 0;
      if (r < 1.08) {
        const skull = smooth(0.9, 0.95, r) * (1 - smooth(1.0, 1.08, r));
        const inside = 1 - smooth(0.88, 0.93, r);
        const t = texture[i] as number;
        let tissue = gray + 28 * (t - 0.5) + 12 * ((fine[i] as number) - 0.5);
        // Ventricles: two dark crescents near the centre.
        const vent = Math.exp(-(((Math.abs(u) - 0.12) / 0.07) ** 2 + ((v + 0.05) / 0.22) ** 2));
        tissue -= 70 * vent;
        if (lesion) {
          const lu = u - lesion.u;
          const lv = v - lesion.v;
          const lr = Math.hypot(lu, lv);
          const edge = lesion.r(Math.atan2(lv, lu));
          const w = 1 - smooth(edge - lesion.edge, edge + lesion.edge, lr);
          tissue += w * (lesion.level * (1 - lesion.hetero + lesion.hetero * 2 * (fine[i] as number)));
        }
        value = inside * tissue * contrast + skull * rng.uniform(190, 230);
      }
      img[i] = clamp(value + rng.normal(0, 4));
    }
  }
  return img;
}

function ultrasound(size: number, cls: string, rng: Random): Float32Array {
  const img = new Float32Array(size * size);
  const layers = valueNoise(size, 3, rng);
  const gain = rng.uniform(0.8, 1.2);
  const depthFall = rng.uniform(0.3, 0.6);
  let lesion: {
    x: number;
    y: number;
    rx: number;
    ry: number;
    r: (a: number) => number;
    edge: number;
    level: number;
    shadow: number;
  } | null = null;
  if (cls === 'benign') {
    const rx = rng.uniform(0.14, 0.24);
    lesion = {
      x: rng.uniform(0.3, 0.7),
      y: rng.uniform(0.35, 0.6),
      rx,
      ry: rx * rng.uniform(0.5, 0.75),
      r: blobRadius(rng, 1, 0.06, 2),
      edge: 0.04,
      level: rng.uniform(0.15, 0.35),
      shadow: rng.uniform(-0.15, 0.05),
    };
  } else if (cls === 'malignant') {
    const ry = rng.uniform(0.13, 0.2);
    lesion = {
      x: rng.uniform(0.3, 0.7),
      y: rng.uniform(0.35, 0.55),
      rx: ry * rng.uniform(0.7, 1.0),
      ry,
      r: blobRadius(rng, 1, 0.35, 7),
      edge: 0.06,
      level: rng.uniform(0.2, 0.4),
      shadow: rng.uniform(0.35, 0.6),
    };
  }
  for (let y = 0; y < size; y++) {
    const depth = y / size;
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const band = 0.55 + 0.35 * Math.sin(depth * rng.uniform(9.5, 10.5) + 3 * (layers[i] as number));
      let echo = band * (1 - depthFall * depth);
      if (lesion) {
        const lx = (x / size - lesion.x) / lesion.rx;
        const ly = (depth - lesion.y) / lesion.ry;
        const rr = Math.hypot(lx, ly);
        const edge = lesion.r(Math.atan2(ly, lx));
        const w = 1 - smooth(edge - lesion.edge * 4, edge + lesion.edge * 4, rr);
        echo = echo * (1 - w) + lesion.level * w;
        // Posterior shadowing (malignant) or enhancement (benign, negative shadow) below the mass.
        if (ly > 0 && Math.abs(lx) < 0.9)
          echo *= 1 - lesion.shadow * smooth(0.8, 1.6, ly) * (1 - Math.abs(lx) / 0.9);
      }
      // Multiplicative speckle (Rayleigh-like).
      const speckle = Math.sqrt(-2 * Math.log(Math.max(1e-6, rng.next())));
      img[i] = clamp(255 * gain * echo * 0.55 * speckle);
    }
  }
  return img;
}

function clamp(v: number): number {
  return v < 0 ? 0 : Math.min(v, 255);
}
