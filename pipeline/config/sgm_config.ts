/**
 * Reads sgm's own config structure (Stability-AI/generative-models `configs/inference/svd.yaml`,
 * `scripts/sampling/configs/svd*.yaml`, and the fixture's `config.yaml`) into our raw config:
 *
 * | ours | sgm (under `model.params`) |
 * | --- | --- |
 * | `model.scale_factor` | `scale_factor` |
 * | `model.unet.*` | `network_config.params.*` (`VideoUNet`) |
 * | `model.vae.*` | `first_stage_config`: `AutoencodingEngine` with `encoder_config.params` and a `temporal_ae.VideoDecoder` ⇒ `decoder: temporal`; `AutoencoderKL` with `ddconfig`, `embed_dim` ⇒ `decoder: image` |
 * | `model.image_encoder.*` | `conditioner_config` embedder 0's `open_clip_embedding_config.params.arch`, looked up in the top-level `open_clip_model_configs`, or open_clip's built-in ViT-H-14 when absent |
 * | `sampling.steps`, `num_frames`, `min/max_guidance`, `guider`, `sigma_*`, `rho` | `sampler_config` (optional) |
 *
 * Where a key is absent, sgm's (or open_clip's) default for it is used, so the result means what
 * sgm would build. Flags our graph builders assume (linear transformer projections, the extra
 * time-mix feed-forward, …) are checked, not ignored. Unknown keys are sgm's business and ignored.
 *
 * @module
 */

import { describeSpec, type FieldReader } from "./_field_reader.ts";
import { describeLimit, type IntegerLimit, type Limit, showValue } from "./limits.ts";
import type { YamlPath } from "./yaml_source.ts";

const MODEL = ["model", "params"];
const UNET = [...MODEL, "network_config", "params"];
const FIRST_STAGE = [...MODEL, "first_stage_config"];
const EMBEDDERS = [...MODEL, "conditioner_config", "params", "emb_models"];
const SAMPLER = [...MODEL, "sampler_config"];

/** open_clip's `ViT-H-14.json` (SVD_REFERENCE §3): the image encoder when `arch` is absent. */
const VIT_H_14 = {
  embed_dim: 1024,
  image_size: 224,
  patch_size: 14,
  width: 1280,
  layers: 32,
  head_width: 80,
  mlp_ratio: 4.0,
} as const;

/** open_clip `CLIPVisionCfg` defaults, for keys a custom `vision_cfg` leaves out. */
const OPEN_CLIP_VISION_DEFAULTS = {
  image_size: 224,
  patch_size: 16,
  width: 768,
  layers: 12,
  head_width: 64,
  mlp_ratio: 4.0,
} as const;

/** sgm `EDMDiscretization` defaults (note sigma_max 80, not SVD's 700). */
const EDM_DEFAULTS = { sigma_min: 0.002, sigma_max: 80.0, rho: 7.0 } as const;

/**
 * `VideoUNet` parameters whose value the graph builders assume: [key, required, sgm default].
 * A different value, or an absent key whose sgm default differs, is an error.
 */
const UNET_ASSUMPTIONS: readonly [string, unknown, unknown][] = [
  ["num_classes", "sequential", null], // label_emb on the 768-wide vector
  ["use_linear_in_transformer", true, false], // proj_in / proj_out are Linear
  ["extra_ff_mix_layer", true, false], // time-mix block has ff_in
  ["use_spatial_context", true, false], // temporal cross-attention sees the CLIP context
  ["merge_strategy", "learned_with_images", "fixed"],
  ["use_scale_shift_norm", false, false],
  ["resblock_updown", false, false],
  ["disable_temporal_crossattention", false, false],
  ["dims", 2, 2],
];

/** Width of one micro-conditioning embedding (`ConcatTimestepEmbedderND` outdim; SVD: 256). */
const OUTDIM: IntegerLimit = { kind: "integer", min: 1, max: 4096, note: "SVD: 256" };

/** SVD's conditioner, in order; the `vector` is [fps_id | motion_bucket_id | cond_aug]. */
const EMBEDDER_LAYOUT: readonly [inputKey: string, className: string][] = [
  ["cond_frames_without_noise", "FrozenOpenCLIPImagePredictionEmbedder"],
  ["fps_id", "ConcatTimestepEmbedderND"],
  ["motion_bucket_id", "ConcatTimestepEmbedderND"],
  ["cond_frames", "VideoPredictionEmbedderWithEncoder"],
  ["cond_aug", "ConcatTimestepEmbedderND"],
];

/** Is `root` sgm's structure (`model.target` / `model.params`)? */
export function isSgmConfig(root: unknown): boolean {
  const model = (root as { model?: unknown } | null)?.model;
  return model !== null && typeof model === "object" && !Array.isArray(model) &&
    ("target" in model || "params" in model);
}

/**
 * Reads an sgm config into `reader.raw`.
 *
 * @throws {ConfigError} for a missing or unsupported target, a value the graph builders do not
 * implement, an unknown `arch`, or a bad value.
 */
export function readSgmConfig(reader: FieldReader): void {
  readName(reader);
  target(reader, ["model"], ["sgm.models.diffusion.DiffusionEngine"]);
  // Required here although sgm defaults it to 1.0: that default is not SVD's latent scale.
  const scalePath = [...MODEL, "scale_factor"];
  if (reader.source.get(scalePath) == null) {
    reader.missingAt(
      scalePath,
      `${describeSpec("model.scale_factor")}; sgm's default 1.0 is not SVD's scale`,
    );
  }
  reader.field("model.scale_factor", scalePath);

  const denoiser = [...MODEL, "denoiser_config"];
  target(reader, denoiser, ["sgm.modules.diffusionmodules.denoiser.Denoiser"]);
  target(reader, [...denoiser, "params", "scaling_config"], [
    "sgm.modules.diffusionmodules.denoiser_scaling.VScalingWithEDMcNoise",
  ]);

  readUnet(reader);
  readFirstStage(reader);
  readConditioner(reader);
  readSampler(reader);
}

/** `ckpt_path`'s stem (`checkpoints/svd_xt.safetensors` → `svd_xt`), else the file's, else its folder's for `config.yaml`. */
function readName(reader: FieldReader): void {
  const ckptPath = [...MODEL, "ckpt_path"];
  const ckpt = reader.source.get(ckptPath);
  let name: string;
  let where: YamlPath = [];
  if (typeof ckpt === "string" && ckpt !== "") {
    name = stem(ckpt);
    where = ckptPath;
  } else {
    const parts = reader.source.file.split(/[\\/]/);
    name = stem(parts[parts.length - 1]);
    if (name === "config" && parts.length > 1) name = parts[parts.length - 2];
  }
  reader.field("name", where, name);
  reader.field("checkpoint", where, name.toLowerCase());
}

function stem(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  const dot = base.indexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

/**
 * Checks that `path.target` names one of `allowed` (compared by class name, so forks that move a
 * class still load) and returns the matching entry of `allowed`.
 */
function target(reader: FieldReader, path: YamlPath, allowed: readonly string[]): string {
  const at = [...path, "target"];
  const value = reader.source.get(at);
  const allowedText = allowed.join(" | ");
  if (value == null) reader.missingAt(at, allowedText);
  if (typeof value !== "string") reader.failAt(at, value, "is not a string", allowedText);
  const className = value.split(".").pop();
  const match = allowed.find((name) => name.split(".").pop() === className);
  if (!match) reader.failAt(at, value, "is not supported", allowedText);
  return match;
}

/** Checks `value` (default: the one at `path`, else `sgmDefault`) equals `required`. */
function expectValue(
  reader: FieldReader,
  path: YamlPath,
  required: unknown,
  sgmDefault: unknown,
  why = "is not what the graph builders implement",
): void {
  const present = reader.source.get(path);
  const value = present ?? sgmDefault;
  if (JSON.stringify(value) !== JSON.stringify(required)) {
    const problem = present == null ? `(sgm's default) ${why}` : why;
    reader.failAt(path, value, problem, showValue(required));
  }
}

/** An int `k` is sgm's shorthand for a kernel `[k, k, k]`. */
function kernel(value: unknown): unknown {
  return typeof value === "number" ? [value, value, value] : value;
}

function readUnet(reader: FieldReader): void {
  target(reader, [...MODEL, "network_config"], [
    "sgm.modules.diffusionmodules.video_model.VideoUNet",
  ]);
  reader.mapping(UNET);
  const get = (key: string) => reader.source.get([...UNET, key]);
  for (
    const key of [
      "in_channels",
      "out_channels",
      "model_channels",
      "num_res_blocks",
      "attention_resolutions",
      "num_head_channels",
      "context_dim",
      "adm_in_channels",
    ]
  ) {
    reader.field(`model.unet.${key}`, [...UNET, key]);
  }
  // sgm VideoUNet defaults: channel_mult (1, 2, 4, 8), transformer_depth 1, video_kernel_size 3.
  reader.field(
    "model.unet.channel_mult",
    [...UNET, "channel_mult"],
    get("channel_mult") ?? [1, 2, 4, 8],
  );
  reader.field(
    "model.unet.transformer_depth",
    [...UNET, "transformer_depth"],
    get("transformer_depth") ?? 1,
  );
  reader.field(
    "model.unet.video_kernel_size",
    [...UNET, "video_kernel_size"],
    kernel(get("video_kernel_size") ?? 3),
  );
  for (const [key, required, sgmDefault] of UNET_ASSUMPTIONS) {
    expectValue(reader, [...UNET, key], required, sgmDefault);
  }
  // Both are plain softmax attention; the "-xformers" variant only differs in the kernel used.
  const attention = get("spatial_transformer_attn_type") ?? "softmax";
  const attentionLimit: Limit = { kind: "choice", values: ["softmax", "softmax-xformers"] };
  reader.check([...UNET, "spatial_transformer_attn_type"], attention, attentionLimit);
}

/** Reads an `Encoder` / `Decoder` ddconfig at `dd` into `model.vae.*`. */
function readDdconfig(reader: FieldReader, dd: YamlPath): void {
  reader.mapping(dd);
  for (const key of ["ch", "num_res_blocks", "z_channels", "in_channels", "out_ch"]) {
    reader.field(`model.vae.${key}`, [...dd, key]);
  }
  reader.field(
    "model.vae.ch_mult",
    [...dd, "ch_mult"],
    reader.source.get([...dd, "ch_mult"]) ?? [1, 2, 4, 8],
  );
  expectValue(reader, [...dd, "double_z"], true, true);
  // The mid block always has attention; attention at the levels is not implemented.
  const levelAttention = reader.source.get([...dd, "attn_resolutions"]);
  if (levelAttention != null) expectValue(reader, [...dd, "attn_resolutions"], [], []);
  reader.check([...dd, "attn_type"], reader.source.get([...dd, "attn_type"]) ?? "vanilla", {
    kind: "choice",
    values: ["vanilla", "vanilla-xformers"],
  });
}

function readFirstStage(reader: FieldReader): void {
  const kind = target(reader, FIRST_STAGE, [
    "sgm.models.autoencoder.AutoencodingEngine",
    "sgm.models.autoencoder.AutoencoderKL",
  ]);
  const params = [...FIRST_STAGE, "params"];
  if (kind.endsWith(".AutoencoderKL")) {
    // Legacy 2-D autoencoder with quant_conv / post_quant_conv (SVD_REFERENCE §4.4).
    readDdconfig(reader, [...params, "ddconfig"]);
    reader.field("model.vae.embed_dim", [...params, "embed_dim"]);
    reader.field("model.vae.decoder", [...FIRST_STAGE, "target"], "image");
    return;
  }
  const encoder = [...params, "encoder_config"];
  const decoder = [...params, "decoder_config"];
  target(reader, encoder, ["sgm.modules.diffusionmodules.model.Encoder"]);
  target(reader, decoder, ["sgm.modules.autoencoding.temporal_ae.VideoDecoder"]);
  readDdconfig(reader, [...encoder, "params"]);
  // AutoencodingEngine has no quant_conv: the latent is the encoder's z_channels wide.
  const zPath = [...encoder, "params", "z_channels"];
  reader.field("model.vae.embed_dim", zPath, reader.source.get(zPath));
  reader.field("model.vae.decoder", [...decoder, "target"], "temporal");
  const decoderParams = [...decoder, "params"];
  const kernelPath = [...decoderParams, "video_kernel_size"];
  reader.field(
    "model.vae.video_kernel_size",
    kernelPath,
    kernel(reader.source.get(kernelPath) ?? 3),
  );
  // One VaeConfig describes both halves, so the decoder must mirror the encoder.
  for (const key of ["ch", "ch_mult", "num_res_blocks", "z_channels", "out_ch"]) {
    const encoderValue = reader.source.get([...encoder, "params", key]) ??
      (key === "ch_mult" ? [1, 2, 4, 8] : undefined);
    const path = [...decoderParams, key];
    const value = reader.source.get(path) ?? (key === "ch_mult" ? [1, 2, 4, 8] : undefined);
    if (value == null) reader.missingAt(path, showValue(encoderValue));
    if (JSON.stringify(value) !== JSON.stringify(encoderValue)) {
      reader.failAt(path, value, "differs from the encoder's", showValue(encoderValue));
    }
  }
}

function readConditioner(reader: FieldReader): void {
  target(reader, [...MODEL, "conditioner_config"], ["sgm.modules.GeneralConditioner"]);
  const layoutText = `${EMBEDDER_LAYOUT.length} embedders with input_key ${
    EMBEDDER_LAYOUT.map(([key]) => key).join(", ")
  } (SVD's conditioner)`;
  const embedders = reader.list(EMBEDDERS, layoutText) ?? reader.missingAt(EMBEDDERS, layoutText);
  if (embedders.length !== EMBEDDER_LAYOUT.length) {
    reader.failAt(EMBEDDERS, `${embedders.length} embedders`, "is not SVD's layout", layoutText);
  }
  const outdims: [YamlPath, number][] = [];
  EMBEDDER_LAYOUT.forEach(([inputKey, className], i) => {
    const at = [...EMBEDDERS, i];
    reader.mapping(at);
    reader.check([...at, "input_key"], reader.source.get([...at, "input_key"]), {
      kind: "choice",
      values: [inputKey],
      note: `embedder ${i} of ${layoutText}`,
    });
    target(reader, at, [`sgm.modules.encoders.modules.${className}`]);
    if (className === "ConcatTimestepEmbedderND") {
      // sgm's ConcatTimestepEmbedderND(outdim) has no default.
      const path = [...at, "params", "outdim"];
      const value = reader.source.get(path);
      if (value == null) reader.missingAt(path, describeLimit(OUTDIM));
      outdims.push([path, reader.check(path, value, OUTDIM)]);
    }
  });
  checkOutdims(reader, outdims);
  readImageEncoder(reader, [...EMBEDDERS, 0, "params"]);
  checkConditioningEncoder(reader, [...EMBEDDERS, 3, "params"]);
}

/**
 * The UNet's `vector` is the three sinusoidal embeddings side by side: one `outdim` for all three
 * (as diffusers' single `addition_time_embed_dim`), and `adm_in_channels` = 3 × outdim.
 */
function checkOutdims(reader: FieldReader, outdims: readonly [YamlPath, number][]): void {
  const [[firstPath, outdim], ...others] = outdims;
  for (const [path, value] of others) {
    if (value !== outdim) {
      const first = reader.locatePath(firstPath).field;
      reader.failAt(
        path,
        value,
        `differs from ${first} (one width for the three embeddings)`,
        String(outdim),
      );
    }
  }
  const adm = reader.raw.model?.unet?.adm_in_channels;
  const expected = `${3 * outdim} (3 × the embedders' outdim ${outdim})`;
  if (adm === undefined) reader.missing("model.unet.adm_in_channels", expected);
  if (adm !== 3 * outdim) {
    reader.fail("model.unet.adm_in_channels", adm, "does not fit the conditioner", expected);
  }
}

function readImageEncoder(reader: FieldReader, params: YamlPath): void {
  expectValue(reader, [...params, "n_cond_frames"], 1, 1);
  expectValue(reader, [...params, "n_copies"], 1, 1);
  const clip = [...params, "open_clip_embedding_config"];
  target(reader, clip, ["sgm.modules.encoders.modules.FrozenOpenCLIPImageEmbedder"]);
  const archPath = [...clip, "params", "arch"];
  const arch = reader.source.get(archPath) ?? "ViT-H-14";
  if (arch === "ViT-H-14") {
    for (const [key, value] of Object.entries(VIT_H_14)) {
      reader.field(
        `model.image_encoder.${key}`,
        reader.source.get(archPath) == null ? clip : archPath,
        value,
      );
    }
    return;
  }
  const registry = reader.mapping(["open_clip_model_configs"]) ?? {};
  if (typeof arch !== "string" || !Object.hasOwn(registry, arch)) {
    const known = ["ViT-H-14", ...Object.keys(registry)].join(" | ");
    reader.failAt(
      archPath,
      arch,
      "is not a known open_clip model",
      `${known} (top-level open_clip_model_configs)`,
    );
  }
  const model = ["open_clip_model_configs", arch];
  reader.mapping(model);
  reader.field("model.image_encoder.embed_dim", [...model, "embed_dim"]);
  const vision = [...model, "vision_cfg"];
  reader.mapping(vision);
  for (const [key, fallback] of Object.entries(OPEN_CLIP_VISION_DEFAULTS)) {
    reader.field(
      `model.image_encoder.${key}`,
      [...vision, key],
      reader.source.get([...vision, key]) ?? fallback,
    );
  }
}

/**
 * The conditioning-frame encoder (`conditioner.embedders.3.encoder`) has its own weights but is
 * built from the same `VaeConfig`, so its ddconfig must equal the first stage's encoder.
 */
function checkConditioningEncoder(reader: FieldReader, params: YamlPath): void {
  const encoder = [...params, "encoder_config"];
  target(reader, encoder, [
    "sgm.models.autoencoder.AutoencoderKLModeOnly",
    "sgm.models.autoencoder.AutoencoderKL",
  ]);
  const vae = reader.raw.model?.vae ?? {};
  const first: Record<string, unknown> = {
    ch: vae.ch,
    ch_mult: vae.ch_mult,
    num_res_blocks: vae.num_res_blocks,
    z_channels: vae.z_channels,
    in_channels: vae.in_channels,
  };
  const dd = [...encoder, "params", "ddconfig"];
  for (const [key, expected] of Object.entries(first)) {
    const path = [...dd, key];
    const value = reader.source.get(path) ?? (key === "ch_mult" ? [1, 2, 4, 8] : undefined);
    if (value == null) reader.missingAt(path, showValue(expected));
    if (JSON.stringify(value) !== JSON.stringify(expected)) {
      reader.failAt(path, value, "differs from the first stage's encoder", showValue(expected));
    }
  }
  expectValue(
    reader,
    [...encoder, "params", "embed_dim"],
    vae.embed_dim,
    undefined,
    "differs from the first stage's latent width",
  );
}

function readSampler(reader: FieldReader): void {
  if (!reader.mapping(SAMPLER)) return;
  target(reader, SAMPLER, ["sgm.modules.diffusionmodules.sampling.EulerEDMSampler"]);
  const params = [...SAMPLER, "params"];
  reader.field("sampling.steps", [...params, "num_steps"]);
  // γ = 0: the sampler implements deterministic Euler steps only.
  expectValue(
    reader,
    [...params, "s_churn"],
    0,
    0,
    "is not implemented (only deterministic Euler, s_churn 0)",
  );

  const discretization = [...params, "discretization_config"];
  if (reader.mapping(discretization)) {
    target(reader, discretization, ["sgm.modules.diffusionmodules.discretizer.EDMDiscretization"]);
    for (const [key, fallback] of Object.entries(EDM_DEFAULTS)) {
      const path = [...discretization, "params", key];
      reader.field(`sampling.${key}`, path, reader.source.get(path) ?? fallback);
    }
  }

  const guider = [...params, "guider_config"];
  if (reader.mapping(guider)) {
    const kind = target(reader, guider, [
      "sgm.modules.diffusionmodules.guiders.LinearPredictionGuider",
      "sgm.modules.diffusionmodules.guiders.TrianglePredictionGuider",
    ]);
    reader.field(
      "sampling.guider",
      [...guider, "target"],
      kind.endsWith("TrianglePredictionGuider") ? "triangle" : "linear",
    );
    const guiderParams = [...guider, "params"];
    reader.field("sampling.max_guidance", [...guiderParams, "max_scale"]);
    // sgm's guiders default min_scale to 1.0.
    reader.field(
      "sampling.min_guidance",
      [...guiderParams, "min_scale"],
      reader.source.get([...guiderParams, "min_scale"]) ?? 1.0,
    );
    // Set by sgm's sampling script from the version when absent (the default is then ours).
    reader.field("sampling.num_frames", [...guiderParams, "num_frames"]);
  }
}
