import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', node: 'src/node.ts', cli: 'src/cli/bin.ts' },
  format: ['esm', 'cjs'],
  banner: ({ format }) => (format === 'esm' ? {} : {}),
  dts: { entry: { index: 'src/index.ts', node: 'src/node.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: true,
  treeshake: true,
  // tfjs keeps its op/serialization registries per module copy: never bundle it.
  external: [/^@tensorflow\//, 'sharp', 'h5wasm', 'vega', 'vega-lite'],
});
