/**
 * Allowed values of every field of our config format, keyed by its dotted path in
 * `configs/*.yaml` (which is also its place in `RawSvdConfig`). Readers of both formats check
 * values against this table; the `sampling` entries are the request's sampling fields, checked by
 * the request declaration itself (`pipeline/request/`), plus the noise schedule.
 *
 * Network ranges are generous sanity bounds (a typo such as `model_channels: 3200` passes,
 * `-320` or `32O` does not); the structural constraints that matter are the cross-field checks in
 * `_consistency.ts`.
 *
 * @module
 */

import { type FieldDeclaration, fieldsOn, REQUEST_FIELDS } from "../request/fields.ts";
import type { IntegerLimit, Limit } from "./limits.ts";
import { SCHEDULE_LIMITS } from "./sampling_params.ts";

/** What a field may hold. */
export type FieldSpec =
  | { readonly kind: "value"; readonly limit: Limit }
  | { readonly kind: "list"; readonly length: IntegerLimit; readonly item: Limit }
  | { readonly kind: "request"; readonly field: FieldDeclaration }
  | { readonly kind: "text"; readonly pattern: RegExp; readonly allowed: string };

const int = (min: number, max: number, extra: Partial<IntegerLimit> = {}): FieldSpec => ({
  kind: "value",
  limit: { kind: "integer", min, max, ...extra },
});
const list = (minLength: number, maxLength: number, item: Limit): FieldSpec => ({
  kind: "list",
  length: { kind: "integer", min: minLength, max: maxLength },
  item,
});
const multiplier: Limit = { kind: "integer", min: 1, max: 16 };
// Temporal kernels are centred, so odd; sgm's SVD uses [3, 1, 1] (3 frames, 1×1 space).
const kernelSize = list(3, 3, { kind: "integer", min: 1, max: 7, oneOf: [1, 3, 5, 7] });
const groupNormWidth = { multipleOf: 32, note: "GroupNorm splits channels into 32 groups" };

/** Every field of our format, by dotted path. */
export const FIELD_SPECS: Readonly<Record<string, FieldSpec>> = {
  "name": {
    kind: "text",
    pattern: /^[^\n]{1,100}$/,
    allowed: "a one-line name of 1..100 characters",
  },
  "checkpoint": {
    kind: "text",
    pattern: /^[a-z0-9][a-z0-9_.-]{0,63}$/,
    allowed: "a weights.lock entry name (lowercase letters, digits, _ . -), e.g. svd, svd_xt, tiny",
  },
  "model.scale_factor": {
    kind: "value",
    limit: { kind: "number", min: 0, max: 10, exclusiveMin: true, note: "SVD: 0.18215" },
  },

  "model.unet.in_channels": int(1, 64),
  "model.unet.out_channels": int(1, 64),
  "model.unet.model_channels": int(32, 4096, groupNormWidth),
  "model.unet.channel_mult": list(1, 8, multiplier),
  "model.unet.num_res_blocks": int(1, 8),
  "model.unet.attention_resolutions": list(0, 8, {
    kind: "integer",
    min: 1,
    max: 128,
    oneOf: [1, 2, 4, 8, 16, 32, 64, 128],
    note: "downsample factors",
  }),
  "model.unet.num_head_channels": int(1, 1024),
  "model.unet.transformer_depth": int(1, 16),
  "model.unet.context_dim": int(1, 8192),
  "model.unet.adm_in_channels": int(3, 3 * 4096, {
    multipleOf: 3,
    note: "3 × outdim: the fps_id, motion_bucket_id and cond_aug embeddings; SVD: 768",
  }),
  "model.unet.video_kernel_size": kernelSize,

  "model.vae.ch": int(32, 1024, groupNormWidth),
  "model.vae.ch_mult": list(1, 8, multiplier),
  "model.vae.num_res_blocks": int(1, 8),
  "model.vae.z_channels": int(1, 64),
  "model.vae.embed_dim": int(1, 64),
  "model.vae.decoder": { kind: "value", limit: { kind: "choice", values: ["temporal", "image"] } },
  "model.vae.in_channels": int(1, 16),
  "model.vae.out_ch": int(1, 16),
  "model.vae.video_kernel_size": kernelSize,

  "model.image_encoder.image_size": int(16, 1024),
  "model.image_encoder.patch_size": int(1, 64),
  "model.image_encoder.width": int(8, 8192),
  "model.image_encoder.layers": int(1, 128),
  "model.image_encoder.head_width": int(1, 1024),
  "model.image_encoder.mlp_ratio": {
    kind: "value",
    limit: { kind: "number", min: 0, max: 16, exclusiveMin: true },
  },
  "model.image_encoder.embed_dim": int(1, 8192),

  ...Object.fromEntries(
    fieldsOn("config").map((name) => {
      const field = REQUEST_FIELDS[name];
      return [`sampling.${field.key}`, { kind: "request", field }];
    }),
  ),
  ...Object.fromEntries(
    Object.values(SCHEDULE_LIMITS).map((
      { key, ...limit },
    ) => [`sampling.${key}`, { kind: "value", limit: limit as Limit }]),
  ),
};

/** The keys allowed directly under the mapping at dotted path `prefix` ("" for the root). */
export function childKeys(prefix: string): string[] {
  const start = prefix === "" ? "" : `${prefix}.`;
  const keys = new Set<string>();
  for (const path of Object.keys(FIELD_SPECS)) {
    if (path.startsWith(start)) keys.add(path.slice(start.length).split(".")[0]);
  }
  return [...keys];
}

/** Dotted paths of all mappings of our format: "", "model", "model.unet", …, "sampling". */
export function sectionPaths(): string[] {
  const sections = new Set<string>([""]);
  for (const path of Object.keys(FIELD_SPECS)) {
    const parts = path.split(".");
    for (let i = 1; i < parts.length; i++) sections.add(parts.slice(0, i).join("."));
  }
  return [...sections];
}
