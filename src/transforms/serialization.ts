import { check, MedimgError } from '../util/errors.js';
import type { Transform, TransformJSON } from './base.js';
import { Compose, OneOf, RandomApply } from './compose.js';
import {
  CropToForeground,
  Letterbox,
  RandomHorizontalFlip,
  RandomRotation,
  RandomVerticalFlip,
  Resize,
} from './geometric.js';
import {
  ColorJitter,
  GaussianBlur,
  Grayscale,
  Normalize,
  RandomErasing,
  Rescale,
  Window,
} from './intensity.js';

type Factory = (config: Record<string, unknown>) => Transform;

// Constructor options are validated by each constructor, so the factories pass configs through.
type AnyOptions = never;
const simple =
  (Cls: new (options: AnyOptions) => Transform): Factory =>
  (config) =>
    new Cls(config as AnyOptions);
const container =
  (Cls: new (children: Transform[], options: AnyOptions) => Transform): Factory =>
  (config) => {
    const { transforms, ...options } = config;
    check(Array.isArray(transforms), 'transformFromJSON', `${Cls.name} config needs a transforms array`);
    return new Cls((transforms as TransformJSON[]).map(transformFromJSON), options as AnyOptions);
  };

const registry = new Map<string, Factory>([
  ['Letterbox', simple(Letterbox)],
  ['Resize', simple(Resize)],
  ['CropToForeground', simple(CropToForeground)],
  ['RandomHorizontalFlip', simple(RandomHorizontalFlip)],
  ['RandomVerticalFlip', simple(RandomVerticalFlip)],
  ['RandomRotation', simple(RandomRotation)],
  ['Grayscale', simple(Grayscale)],
  ['Normalize', simple(Normalize)],
  ['Rescale', simple(Rescale)],
  ['Window', simple(Window)],
  ['GaussianBlur', simple(GaussianBlur)],
  ['RandomErasing', simple(RandomErasing)],
  ['ColorJitter', simple(ColorJitter)],
  ['Compose', container(Compose)],
  ['RandomApply', container(RandomApply)],
  ['OneOf', container(OneOf)],
]);

/** Names of every transform {@link transformFromJSON} can rebuild (the library's and registered ones). */
export function registeredTransforms(): string[] {
  return [...registry.keys()];
}

/** Makes a custom transform class loadable by {@link transformFromJSON}. */
export function registerTransform(
  name: string,
  factory: (config: Record<string, unknown>) => Transform,
): void {
  registry.set(name, factory);
}

/**
 * Rebuilds a transform (or a whole pipeline) from its JSON form, as stored in a saved
 * classifier. Random transforms restart from their recorded seed.
 *
 * @example
 * const copy = transformFromJSON(JSON.parse(JSON.stringify(pipeline)));
 */
export function transformFromJSON(json: TransformJSON | string): Transform {
  const value: unknown = typeof json === 'string' ? JSON.parse(json) : json;
  check(
    typeof value === 'object' && value !== null && typeof (value as TransformJSON).name === 'string',
    'transformFromJSON',
    'expected { name, config }',
  );
  const { name, config } = value as TransformJSON;
  const factory = registry.get(name);
  if (!factory) {
    throw new MedimgError(
      'transformFromJSON',
      `unknown transform '${name}'; known: ${[...registry.keys()].join(', ')} (use registerTransform for custom ones)`,
    );
  }
  return factory(config ?? {});
}
