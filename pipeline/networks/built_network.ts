/**
 * What every graph builder returns.
 *
 * @module
 */

import type { Precision } from "../config/network_configs.ts";
import { GraphBuilder } from "../onnx/graph.ts";
import { WeightBinder } from "../onnx/weight_binder.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import type { AttentionForm, Net } from "./layers.ts";

/** A built graph and the binder that knows which weights it took. */
export interface BuiltNetwork {
  readonly graph: GraphBuilder;
  readonly weights: WeightBinder;
}

/** Options every builder takes. */
export interface BuildOptions {
  /** "fp32" (default) or "fp16" (float16 weights and activations, float32 statistics and I/O). */
  readonly precision?: Precision;
  /** How attention is emitted: "fused" (default) or "decomposed" (see `layers.ts`). */
  readonly attention?: AttentionForm;
}

/** Starts a graph named `name` over `source` with the precision of `options`. */
export function startNetwork(name: string, source: WeightSource, options: BuildOptions = {}): Net {
  const g = new GraphBuilder(name);
  const type = options.precision === "fp16" ? "float16" : "float32";
  return { g, w: new WeightBinder(source, g, type), type, attention: options.attention ?? "fused" };
}
