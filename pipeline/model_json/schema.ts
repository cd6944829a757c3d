/**
 * The contract of `model.json`, the manifest of a converted model directory: what the converter
 * writes and what the runtime checks before it loads anything.
 *
 * The envelope (format tag, graphs with their I/O signatures, files with size and sha256) is a
 * zod schema: one declaration gives the type checks and the path of every offending value, which
 * the reader turns into `model.json:<line>: <field>` messages. zod (4.x, the major that Hono's
 * OpenAPI integration `@hono/zod-openapi` builds on, so the service can keep one schema library for
 * all its JSON contracts) rather than a hand-written walker that would repeat what zod does, with
 * worse paths in its errors. The embedded `config` is not described here:
 * it is checked by the config loader's own rules (`parseEmbeddedConfig` in `pipeline/config/`),
 * so a model.json config and a YAML config obey one set of ranges.
 *
 * @module
 */

import { z } from "zod";
import type { Precision, SvdConfig } from "../config/mod.ts";
import { ATTENTION_FORMS, type AttentionForm } from "../networks/layers.ts";

/** Name of the manifest inside a model directory. */
export const MANIFEST_FILE = "model.json";

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
  /** ONNX element type: `float32`, `float16`, `int64`, … */
  readonly type: string;
  /** Sizes, or symbolic names (`N`, `T`, `h`) for the ones fixed at run time. */
  readonly dims: readonly (number | string)[];
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
  readonly inputs: readonly GraphValueSignature[];
  readonly outputs: readonly GraphValueSignature[];
}

/** Size and sha256 of one file of the directory. */
export interface FileRecord {
  readonly bytes: number;
  /** 64 lowercase hex digits. */
  readonly sha256: string;
}

/** The content of `model.json`. */
export interface ModelManifest {
  readonly format: typeof MODEL_FORMAT;
  readonly name: string;
  /** ISO 8601 time of the conversion. */
  readonly createdAt: string;
  /** Where the weights came from (checkpoint path or `random(seed=N)`). */
  readonly source: string;
  readonly precision: Precision;
  /**
   * How every graph emits attention ("fused" or "decomposed", see `pipeline/networks/layers.ts`).
   * A model.json written before this field existed has fused attention; the reader fills it in.
   */
  readonly attention: AttentionForm;
  /** The resolved config the graphs were built from. */
  readonly config: SvdConfig;
  readonly graphs: Readonly<Partial<Record<GraphName, GraphManifest>>>;
  /** Every file of the directory except model.json: size and sha256. */
  readonly files: Readonly<Record<string, FileRecord>>;
}

/** A name without separators or `..`: ORT refuses external data outside the model directory. */
export function isPlainFileName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/") &&
    !name.includes("\\");
}

/** An object that refuses unknown keys, naming the known ones. */
function strictObject<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? `is not a known key: allowed ${known}` : undefined,
  });
}

const precision = z.enum(["fp32", "fp16"]);
const count = z.int().nonnegative();
const fileName = z.string().refine(isPlainFileName, {
  error: "is not a file name inside the directory",
});

const valueSignature = strictObject({
  name: z.string().min(1),
  type: z.string().min(1),
  dims: z.array(
    z.union([z.int().nonnegative(), z.string().min(1)], {
      error: "is not a size (a whole number ≥ 0) or a symbolic name (N, T, h, …)",
    }),
  ),
});

const graph = strictObject({
  file: fileName,
  data: fileName.optional(),
  dtype: precision,
  parameters: count,
  clippedToFloat16: count,
  inputs: z.array(valueSignature),
  outputs: z.array(valueSignature),
});

const graphs = strictObject(
  {
    image_encoder: graph.optional(),
    vae_encoder: graph.optional(),
    unet: graph.optional(),
    vae_decoder: graph.optional(),
  } satisfies Record<GraphName, unknown>,
);

/**
 * The envelope of `model.json`; `config` is checked separately (see the module doc). Every
 * graph's files must have an entry in `files`.
 */
export const MODEL_JSON_SCHEMA = strictObject({
  format: z.literal(MODEL_FORMAT, {
    error: `is not a format this version reads: expected "${MODEL_FORMAT}"`,
  }),
  name: z.string().min(1),
  createdAt: z.iso.datetime(),
  source: z.string(),
  precision,
  // Converters before the field existed wrote fused attention only.
  attention: z.enum(ATTENTION_FORMS, {
    error: `is not an attention form: allowed ${ATTENTION_FORMS.join(" | ")}`,
  }).default("fused"),
  config: z.unknown().refine((value) => value !== undefined, { error: "is missing" }),
  graphs,
  files: z.record(
    fileName,
    strictObject({
      bytes: count,
      sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "is not 64 lowercase hex digits" }),
    }),
  ),
}).superRefine((manifest, context) => {
  for (const [name, entry] of Object.entries(manifest.graphs)) {
    for (const key of ["file", "data"] as const) {
      const file = entry?.[key];
      if (file !== undefined && !Object.hasOwn(manifest.files, file)) {
        context.addIssue({
          code: "custom",
          path: ["graphs", name, key],
          input: file,
          message: `has no entry in "files" (size and sha256)`,
        });
      }
    }
  }
});
