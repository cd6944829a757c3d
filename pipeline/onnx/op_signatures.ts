/**
 * The distinct (domain, op, opset, element types) a graph holds: what an execution provider must
 * have a kernel for. Types come from {@linkcode inferShapes}, so the list follows whatever the
 * graph builders emit.
 *
 * @module
 */

import type { ElementType, GraphBuilder } from "./graph.ts";
import type { ValueInfo } from "./shape_inference.ts";

/** One kind of node: op, domain, the domain's opset, and the type of every input and output. */
export interface OpSignature {
  /** "ai.onnx" for the default domain. */
  readonly domain: string;
  readonly op: string;
  /** The graph's opset import for `domain`. */
  readonly opset: number;
  /** Element type per input position; undefined where an optional input is left out. */
  readonly inputs: readonly (ElementType | undefined)[];
  readonly outputs: readonly ElementType[];
  /** How many nodes of the graph have this signature. */
  readonly nodes: number;
  /** Name of the first such node (for messages). */
  readonly example: string;
}

/**
 * Lists the distinct signatures of `graph`'s nodes, in order of first appearance.
 *
 * @param values the result of `inferShapes(graph, …)`
 */
export function opSignatures(
  graph: GraphBuilder,
  values: ReadonlyMap<string, ValueInfo>,
): OpSignature[] {
  const found = new Map<string, OpSignature>();
  for (const node of graph.nodes) {
    const domain = node.domain === "" ? "ai.onnx" : node.domain;
    const opset = graph.opsets.get(node.domain);
    if (opset === undefined) throw new RangeError(`No opset import for domain "${node.domain}"`);
    const typeOf = (name: string) => {
      const info = values.get(name);
      if (!info) throw new RangeError(`No inferred type for "${name}" of node ${node.name}`);
      return info.type;
    };
    const inputs = node.inputs.map((name) => (name === "" ? undefined : typeOf(name)));
    const outputs = node.outputs.map(typeOf);
    const key = `${domain}|${node.opType}|${opset}|${inputs.join(",")}|${outputs.join(",")}`;
    const known = found.get(key);
    found.set(
      key,
      known
        ? { ...known, nodes: known.nodes + 1 }
        : { domain, op: node.opType, opset, inputs, outputs, nodes: 1, example: node.name },
    );
  }
  return [...found.values()];
}

/** `ai.onnx.Conv-21(float16, float16, float16) -> float16`. */
export function formatSignature(s: OpSignature): string {
  const inputs = s.inputs.map((t) => t ?? "∅").join(", ");
  return `${s.domain}.${s.op}-${s.opset}(${inputs}) -> ${s.outputs.join(", ")}`;
}
