import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

type Layer = tfl.layers.Layer;

/** All layers of a model, nested models' layers included, in topological order. */
export function flattenLayers(model: tfl.LayersModel): Layer[] {
  const out: Layer[] = [];
  const visit = (layers: Layer[]) => {
    for (const layer of layers) {
      const inner = (layer as unknown as { layers?: Layer[] }).layers;
      if (Array.isArray(inner)) visit(inner);
      else out.push(layer);
    }
  };
  visit(model.layers);
  return out;
}

/** A layer call's single input: tfjs hands it either bare or as a one-element list. */
export function singleInput(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  return Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
}

/** A symbolic tensor of a functional model's graph, as tfjs-layers keeps it. */
export interface GraphTensor {
  id: number;
  name: string;
  shape: (number | null)[];
  sourceLayer: Layer;
}

/** A node of a functional model's graph: one call of a layer (`Container.nodesByDepth`). */
export interface GraphNode {
  outboundLayer: Layer;
  inputTensors: GraphTensor[];
  outputTensors: GraphTensor[];
}

/** A functional model's graph. */
export interface Graph {
  inputs: GraphTensor[];
  outputs: GraphTensor[];
  nodesByDepth: Record<string, GraphNode[]>;
}

/** The graph a layer runs, if it is a model (a Sequential runs through its inner functional model). */
export function graphOf(layer: Layer): Graph | undefined {
  const inner = layer as unknown as { model?: Layer; layers?: unknown; nodesByDepth?: unknown };
  if (layer.getClassName() === 'Sequential' && inner.model) return graphOf(inner.model);
  return Array.isArray(inner.layers) && inner.nodesByDepth ? (layer as unknown as Graph) : undefined;
}

/** A graph's nodes in the order the model runs them: deepest first. */
export function nodesInRunOrder(graph: Graph): GraphNode[] {
  return Object.keys(graph.nodesByDepth)
    .map(Number)
    .sort((a, b) => b - a)
    .flatMap((depth) => graph.nodesByDepth[depth] ?? []);
}
