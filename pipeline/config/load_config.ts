/**
 * The config loader: YAML in, one validated `SvdConfig` out. It reads our format
 * (`configs/*.yaml`) and sgm's own structure (`model.target` / `model.params`), and is the only
 * place where defaults are filled.
 *
 * @module
 */

import { checkConsistency } from "./_consistency.ts";
import { FieldReader } from "./_field_reader.ts";
import { readEmbeddedConfig } from "./embedded_config.ts";
import { isSgmConfig, readSgmConfig } from "./sgm_config.ts";
import { REQUEST_FIELDS, SAMPLING_NAMES } from "../request/fields.ts";
import type { SamplingDefaults } from "./sampling_params.ts";
import type { SvdConfig } from "./svd_config.ts";
import { readSvdStreamConfig } from "./svd_stream_config.ts";
import { type YamlPath, YamlSource } from "./yaml_source.ts";

/** Latent scale of SVD's KL-f8 autoencoder (sgm `scale_factor`). */
const SCALE_FACTOR = 0.18215;
/** Temporal kernel of the UNet's and decoder's video resblocks: 3 frames, 1×1 pixels. */
const VIDEO_KERNEL_SIZE = [3, 1, 1] as const;

/**
 * Per-model sampling defaults of sgm's `simple_video_sample.py` (release commit): SVD 14 frames,
 * 25 steps, CFG 1.0→2.5; SVD-XT (and 1.1, and the image-decoder variant) 25 frames, 30 steps,
 * CFG 1.5→3.0. Chosen by checkpoint name, as the script chooses by version.
 */
function familyDefaults(checkpoint: string) {
  return checkpoint.startsWith("svd_xt")
    ? { numFrames: 25, numSteps: 30, minGuidance: 1.5, maxGuidance: 3.0 }
    : { numFrames: 14, numSteps: 25, minGuidance: 1.0, maxGuidance: 2.5 };
}

/** The EDM noise schedule of every SVD model (SVD_REFERENCE §1.3); not a request field. */
const SCHEDULE = { sigmaMin: 0.002, sigmaMax: 700, rho: 7 } as const;

/**
 * Reads and validates the config at `path` (our format or sgm's).
 *
 * @throws {ConfigError} naming file, line, field and the allowed values for bad YAML or values.
 * @throws {Deno.errors.NotFound} when the file does not exist.
 *
 * @example
 * ```ts
 * const config = await loadConfig("configs/svd_xt.yaml");
 * config.sampling.numFrames; // 25
 * ```
 */
export async function loadConfig(path: string): Promise<SvdConfig> {
  return parseConfig(await Deno.readTextFile(path), path);
}

/**
 * Validates config `text` as if read from `path` (used in messages and `source.path`).
 *
 * @throws {ConfigError} as `loadConfig`.
 */
export function parseConfig(text: string, path: string): SvdConfig {
  const source = YamlSource.parse(text, path);
  const reader = new FieldReader(source);
  const format = isSgmConfig(source.root) ? "sgm" : "svd-stream";
  if (format === "sgm") readSgmConfig(reader);
  else readSvdStreamConfig(reader);
  return finish(reader, { path, format });
}

/**
 * Validates a resolved config stored at `at` in a parsed JSON or YAML document (a model
 * directory's `model.json`), with the same field, default and cross-field checks as
 * {@linkcode parseConfig}; errors name the file, its line and the field as stored
 * (`config.unet.channelMult[1]`).
 *
 * @throws {ConfigError} as `loadConfig`.
 */
export function parseEmbeddedConfig(source: YamlSource, at: YamlPath): SvdConfig {
  const reader = new FieldReader(source);
  return finish(reader, readEmbeddedConfig(reader, at));
}

/** Fills the defaults, runs the cross-field checks and freezes the result. */
function finish(reader: FieldReader, source: SvdConfig["source"]): SvdConfig {
  const config = resolve(reader, source);
  checkConsistency(config, reader);
  return deepFreeze(config);
}

/** Fills defaults into the checked raw config; a required field that is absent is an error. */
function resolve(reader: FieldReader, source: SvdConfig["source"]): SvdConfig {
  const raw = reader.raw;
  const need = <T>(key: string, value: T | undefined): T =>
    value !== undefined ? value : reader.missing(key);
  const unet = raw.model?.unet ?? {};
  const vae = raw.model?.vae ?? {};
  const clip = raw.model?.image_encoder ?? {};
  const s = raw.sampling ?? {};

  const name = need("name", raw.name);
  const checkpoint = need("checkpoint", raw.checkpoint);
  const family = familyDefaults(checkpoint);
  return {
    name,
    checkpoint,
    source,
    scaleFactor: raw.model?.scale_factor ?? SCALE_FACTOR,
    unet: {
      inChannels: need("model.unet.in_channels", unet.in_channels),
      outChannels: need("model.unet.out_channels", unet.out_channels),
      modelChannels: need("model.unet.model_channels", unet.model_channels),
      channelMult: need("model.unet.channel_mult", unet.channel_mult),
      numResBlocks: need("model.unet.num_res_blocks", unet.num_res_blocks),
      attentionResolutions: need("model.unet.attention_resolutions", unet.attention_resolutions),
      numHeadChannels: need("model.unet.num_head_channels", unet.num_head_channels),
      transformerDepth: unet.transformer_depth ?? 1,
      contextDim: need("model.unet.context_dim", unet.context_dim),
      admInChannels: need("model.unet.adm_in_channels", unet.adm_in_channels),
      videoKernelSize: kernel(unet.video_kernel_size),
    },
    vae: {
      ch: need("model.vae.ch", vae.ch),
      chMult: need("model.vae.ch_mult", vae.ch_mult),
      numResBlocks: need("model.vae.num_res_blocks", vae.num_res_blocks),
      zChannels: need("model.vae.z_channels", vae.z_channels),
      inChannels: vae.in_channels ?? 3,
      outCh: vae.out_ch ?? 3,
      embedDim: need("model.vae.embed_dim", vae.embed_dim),
      videoKernelSize: kernel(vae.video_kernel_size),
      decoder: need("model.vae.decoder", vae.decoder),
    },
    imageEncoder: {
      imageSize: need("model.image_encoder.image_size", clip.image_size),
      patchSize: need("model.image_encoder.patch_size", clip.patch_size),
      width: need("model.image_encoder.width", clip.width),
      layers: need("model.image_encoder.layers", clip.layers),
      headWidth: need("model.image_encoder.head_width", clip.head_width),
      mlpRatio: need("model.image_encoder.mlp_ratio", clip.mlp_ratio),
      embedDim: need("model.image_encoder.embed_dim", clip.embed_dim),
    },
    sampling: {
      // Each request field: the file, else the model family's default, else the declared one.
      ...Object.fromEntries(SAMPLING_NAMES.map((name) => {
        const field: { key: string; default?: unknown } = REQUEST_FIELDS[name];
        const written = (s as Record<string, unknown>)[field.key];
        return [name, written ?? (family as Record<string, unknown>)[name] ?? field.default];
      })) as Omit<SamplingDefaults, "sigmaMin" | "sigmaMax" | "rho">,
      sigmaMin: s.sigma_min ?? SCHEDULE.sigmaMin,
      sigmaMax: s.sigma_max ?? SCHEDULE.sigmaMax,
      rho: s.rho ?? SCHEDULE.rho,
    },
  };
}

function kernel(value: readonly number[] | undefined): readonly [number, number, number] {
  const [t, h, w] = value ?? VIDEO_KERNEL_SIZE;
  return [t, h, w];
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
