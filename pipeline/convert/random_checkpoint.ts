/**
 * Writes a checkpoint of seeded random weights in sgm's single-file layout, with every key and
 * shape of the real file (including the tensors inference never reads), so the converter can be
 * measured on a full-size 9.56 GB input without the official download.
 *
 * The key set comes from the graph builders themselves: each builder runs over a recording
 * source, which notes every key and shape it asks for.
 *
 * @module
 */

import type { SvdConfig } from "../config/mod.ts";
import { buildImageDecoder } from "../networks/image_decoder.ts";
import { buildVaeEncoder } from "../networks/vae_encoder.ts";
import { writeSafetensors } from "../safetensors/writer.ts";
import { numel } from "../tensor.ts";
import { randomWeight } from "../weights/random_weights.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { buildGraph } from "./convert.ts";
import { GRAPH_FILES, type GraphName } from "../model_json/mod.ts";

/** A source of any key that records the keys and shapes the graph builders ask for. */
export class RecordingSource implements WeightSource {
  readonly description = "recording";
  readonly shapes = new Map<string, readonly number[]>();
  keys(): undefined {
    return undefined;
  }
  dims(key: string, expected: readonly number[]): readonly number[] {
    this.shapes.set(key, expected);
    return expected;
  }
  read(): Promise<Float32Array> {
    throw new Error("RecordingSource holds no values");
  }
}

/**
 * Every key and shape of an sgm checkpoint for `config`: the four inference networks, the
 * unused first-stage encoder, the conditioner autoencoder's decoder half and the CLIP text-tower
 * leftovers (SVD_REFERENCE.md §6.2).
 */
export function checkpointLayout(config: SvdConfig): Map<string, readonly number[]> {
  const rec = new RecordingSource();
  for (const name of Object.keys(GRAPH_FILES) as GraphName[]) buildGraph(name, config, rec, "fp32");
  // Unused at inference, present in the official files:
  buildVaeEncoder(config.vae, rec, { prefix: "first_stage_model.", quantConv: false });
  buildImageDecoder(config.vae, rec, { prefix: "conditioner.embedders.3.encoder." });
  if (config.vae.decoder === "image") {
    // AutoencoderKL first stage: its encoder has a quant_conv too.
    const q = 2 * config.vae.embedDim;
    rec.shapes.set("first_stage_model.quant_conv.weight", [q, q, 1, 1]);
    rec.shapes.set("first_stage_model.quant_conv.bias", [q]);
  }
  const width = config.imageEncoder.embedDim; // ViT-H-14's text tower is 1024 wide, as embed_dim
  const text = "conditioner.embedders.0.open_clip.model.";
  rec.shapes.set(`${text}token_embedding.weight`, [49408, width]);
  rec.shapes.set(`${text}positional_embedding`, [77, width]);
  rec.shapes.set(`${text}ln_final.weight`, [width]);
  rec.shapes.set(`${text}ln_final.bias`, [width]);
  rec.shapes.set(`${text}text_projection`, [width, config.imageEncoder.embedDim]);
  rec.shapes.set(`${text}logit_scale`, []);
  return rec.shapes;
}

/** Writes the random checkpoint for `config` to `path`; returns its key count and parameters. */
export async function writeRandomCheckpoint(
  config: SvdConfig,
  path: string,
  options: { seed?: number; onProgress?: (written: number, total: number) => void } = {},
): Promise<{ tensors: number; parameters: number }> {
  const layout = checkpointLayout(config);
  const seed = options.seed ?? 0;
  let parameters = 0;
  const entries = [...layout].map(([name, dims]) => {
    parameters += numel(dims);
    return {
      name,
      dtype: "F32" as const,
      dims,
      bytes: () => new Uint8Array(randomWeight(name, dims, seed).buffer),
    };
  });
  await writeSafetensors(path, entries, {
    metadata: { format: "pt", "svd-stream": `random(seed=${seed}) weights for ${config.name}` },
    onProgress: options.onProgress,
  });
  return { tensors: entries.length, parameters };
}
