/**
 * `model.json`: what a converted model directory holds, written by the converter and checked by
 * the runtime before it loads anything.
 *
 * @module
 */

import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import type { AttentionForm } from "../networks/layers.ts";

/** Format tag of `model.json`. */
export const MODEL_FORMAT = "svd-stream-model/1";

/** SVD's four graphs and their file names. */
export const GRAPH_FILES = {
  image_encoder: "image_encoder.onnx",
  vae_encoder: "vae_encoder.onnx",
  unet: "unet.onnx",
  vae_decoder: "vae_decoder.onnx",
} as const;

/** Name of one of the four graphs. */
export type GraphName = keyof typeof GRAPH_FILES;

/** One graph input or output. */
export interface GraphValueSignature {
  readonly name: string;
  readonly type: string;
  readonly dims: (number | string)[];
}

/** One graph of the model directory. */
export interface GraphManifest {
  readonly file: string;
  /** External data file beside it, if any. */
  readonly data?: string;
  readonly dtype: Precision;
  /** Checkpoint parameters the graph accounts for (including skipped, mathematically unused ones). */
  readonly parameters: number;
  /** float16 weights clipped to ±65504 while converting. */
  readonly clippedToFloat16: number;
  readonly inputs: GraphValueSignature[];
  readonly outputs: GraphValueSignature[];
}

/** The content of `model.json`. */
export interface ModelManifest {
  readonly format: typeof MODEL_FORMAT;
  readonly name: string;
  readonly createdAt: string;
  /** Where the weights came from (checkpoint path or `random(seed=N)`). */
  readonly source: string;
  readonly precision: Precision;
  /**
   * How every graph emits attention ("fused" or "decomposed", see `pipeline/networks/layers.ts`).
   * A model.json written before this field existed has fused attention; the reader fills it in.
   */
  readonly attention: AttentionForm;
  readonly config: SvdConfig;
  readonly graphs: Partial<Record<GraphName, GraphManifest>>;
  /** Every file of the directory except model.json: size and sha256. */
  readonly files: Record<string, { bytes: number; sha256: string }>;
}
