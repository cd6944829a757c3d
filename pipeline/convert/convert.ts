/**
 * The converter: one checkpoint (sgm single file, diffusers folder, or seeded random weights of
 * the real shapes) → a model directory with SVD's four ONNX graphs and `model.json`.
 *
 * Graphs are built and written one at a time (each streams its weights), into `<out>.partial-*`,
 * which is renamed to `<out>` only when every file is written and hashed.
 *
 * @module
 */

import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import { writeOnnxModel } from "../onnx/model_writer.ts";
import type { BuiltNetwork } from "../networks/built_network.ts";
import type { AttentionForm } from "../networks/layers.ts";
import { buildImageDecoder } from "../networks/image_decoder.ts";
import { buildImageEncoder } from "../networks/image_encoder.ts";
import { buildVaeDecoder } from "../networks/vae_decoder.ts";
import { buildVaeEncoder } from "../networks/vae_encoder.ts";
import { buildVideoUnet } from "../networks/video_unet.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { sha256File } from "./file_hash.ts";
import {
  type FileRecord,
  GRAPH_FILES,
  type GraphManifest,
  type GraphName,
  MANIFEST_FILE,
  MODEL_FORMAT,
  type ModelManifest,
  writeModelJson,
} from "../model_json/mod.ts";

/** Options of {@linkcode convertCheckpoint}. */
export interface ConvertOptions {
  readonly config: SvdConfig;
  readonly source: WeightSource;
  /** Output model directory. */
  readonly out: string;
  /**
   * "fp32" (default: exact, what CPUs run) or "fp16" (UNet and image encoder in float16 for GPUs;
   * the VAE encoder and decoder stay float32, as sgm runs them, since SD-family VAE decoders are
   * known to overflow in float16).
   */
  readonly precision?: Precision;
  /**
   * "fused" (default: one MultiHeadAttention node, what every GPU kernel wants) or "decomposed"
   * (MatMul–Softmax–MatMul, for devices whose fused kernel is wrong; holds every attention score,
   * so only for small models). Recorded in model.json. See `pipeline/networks/layers.ts`.
   */
  readonly attention?: AttentionForm;
  /** Replace an existing `out` directory. */
  readonly force?: boolean;
  /** Which graphs to write (default all four). */
  readonly graphs?: readonly GraphName[];
  /** Progress of the whole conversion in weight bytes written. */
  readonly onProgress?: (event: ConvertProgress) => void;
}

/** Progress report of a conversion. */
export interface ConvertProgress {
  readonly graph: GraphName;
  readonly written: number;
  readonly total: number;
}

/** The dtype each graph gets for a requested precision. */
export function graphPrecision(graph: GraphName, precision: Precision): Precision {
  return graph === "unet" || graph === "image_encoder" ? precision : "fp32";
}

/** Builds the graph `name` of `config` over `source`. */
export function buildGraph(
  name: GraphName,
  config: SvdConfig,
  source: WeightSource,
  precision: Precision,
  attention: AttentionForm = "fused",
): BuiltNetwork {
  const options = { precision: graphPrecision(name, precision), attention };
  switch (name) {
    case "image_encoder":
      return buildImageEncoder(config.imageEncoder, source, options);
    case "vae_encoder":
      return buildVaeEncoder(config.vae, source, options);
    case "unet":
      return buildVideoUnet(config.unet, source, options);
    case "vae_decoder":
      return config.vae.decoder === "image"
        ? buildImageDecoder(config.vae, source, options)
        : buildVaeDecoder(config.vae, source, options);
  }
}

/** Converts `options.source` into the model directory `options.out` and returns its manifest. */
export async function convertCheckpoint(options: ConvertOptions): Promise<ModelManifest> {
  const precision = options.precision ?? "fp32";
  const attention = options.attention ?? "fused";
  const graphs = options.graphs ?? (Object.keys(GRAPH_FILES) as GraphName[]);
  const out = options.out.replace(/\/+$/, "");
  if (!options.force && await exists(out)) {
    throw new Deno.errors.AlreadyExists(
      `Cannot convert into "${out}": it exists (pass --force to replace it)`,
    );
  }
  // A private partial folder: concurrent conversions into the same `out` cannot mix files.
  const partial = `${out}.partial-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(partial, { recursive: true });
  try {
    const entries: Partial<Record<GraphName, GraphManifest>> = {};
    const files: Record<string, FileRecord> = {};
    for (const name of graphs) {
      // Each graph is built, streamed to disk and dropped before the next one starts.
      const built = buildGraph(name, options.config, options.source, precision, attention);
      const file = GRAPH_FILES[name];
      const written = await writeOnnxModel(built.graph, `${partial}/${file}`, {
        onProgress: (done, total) => options.onProgress?.({ graph: name, written: done, total }),
        metadata: { "svd-stream.graph": name, "svd-stream.source": options.source.description },
      });
      entries[name] = {
        file,
        data: written.dataPath ? `${file}.data` : undefined,
        dtype: graphPrecision(name, precision),
        parameters: built.weights.stats.parameters + built.weights.stats.skippedParameters,
        clippedToFloat16: built.weights.stats.clipped,
        inputs: built.graph.inputs.map((v) => ({ name: v.name, type: v.type, dims: [...v.dims] })),
        outputs: built.graph.outputs.map((v) => ({
          name: v.name,
          type: v.type,
          dims: [...v.dims],
        })),
      };
      for (const path of [written.modelPath, written.dataPath]) {
        if (!path) continue;
        const base = path.slice(path.lastIndexOf("/") + 1);
        files[base] = {
          bytes: (await Deno.stat(path)).size,
          sha256: await sha256File(path),
        };
      }
    }
    const manifest: ModelManifest = {
      format: MODEL_FORMAT,
      name: options.config.name,
      createdAt: new Date().toISOString(),
      source: options.source.description,
      precision,
      attention,
      config: options.config,
      graphs: entries,
      files,
    };
    await writeModelJson(`${partial}/${MANIFEST_FILE}`, manifest);
    if (options.force) await Deno.remove(out, { recursive: true }).catch(() => {});
    try {
      await Deno.rename(partial, out);
    } catch (cause) {
      throw new Deno.errors.AlreadyExists(
        `Cannot convert into "${out}": it appeared while converting`,
        { cause },
      );
    }
    return manifest;
  } catch (error) {
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
