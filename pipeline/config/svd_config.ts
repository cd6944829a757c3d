/**
 * The two shapes of a model config: `RawSvdConfig`, what a `configs/*.yaml` file may say (every
 * field optional, snake_case, as typed), and `SvdConfig`, what the rest of the program reads
 * (validated, defaults filled, nothing optional). `loadConfig` turns one into the other.
 *
 * @module
 */

import type { ImageEncoderConfig, VaeConfig, VideoUnetConfig } from "./network_configs.ts";
import type { SamplingFieldsByKey } from "../request/fields.ts";
import type { SamplingDefaults } from "./sampling_params.ts";

/** Which VAE decoder the checkpoint has: sgm's temporal `VideoDecoder`, or the per-frame 2-D `AutoencoderKL` decoder. */
export type DecoderKind = "temporal" | "image";

/** A resolved, validated model config. */
export interface SvdConfig {
  /** Display name: `svd_xt`. */
  readonly name: string;
  /** Entry of the checkpoint in weights.lock: `svd`, `svd_xt`, `svd_xt_1_1`, `svd_image_decoder`, `svd_xt_image_decoder`, `tiny`. */
  readonly checkpoint: string;
  /** The file it came from and its format: ours, or sgm's own (`model.target` / `model.params`). */
  readonly source: { readonly path: string; readonly format: "svd-stream" | "sgm" };
  /** Latent scale of the first stage: latents are multiplied by it after encoding, 0.18215. */
  readonly scaleFactor: number;
  readonly unet: VideoUnetConfig;
  readonly vae: VaeConfig & { readonly decoder: DecoderKind };
  readonly imageEncoder: ImageEncoderConfig;
  readonly sampling: SamplingDefaults;
}

/** `model.unet` of our YAML format (sgm's `VideoUNet` parameter names). */
export interface RawUnetConfig {
  in_channels?: number;
  out_channels?: number;
  model_channels?: number;
  channel_mult?: number[];
  num_res_blocks?: number;
  attention_resolutions?: number[];
  num_head_channels?: number;
  /** Default 1. */
  transformer_depth?: number;
  context_dim?: number;
  adm_in_channels?: number;
  /** Default [3, 1, 1]. */
  video_kernel_size?: number[];
}

/** `model.vae` of our YAML format (sgm's `ddconfig` names, plus `embed_dim` and the decoder kind). */
export interface RawVaeConfig {
  ch?: number;
  ch_mult?: number[];
  num_res_blocks?: number;
  z_channels?: number;
  embed_dim?: number;
  decoder?: DecoderKind;
  /** Default 3. */
  in_channels?: number;
  /** Default 3. */
  out_ch?: number;
  /** Of the temporal decoder; default [3, 1, 1]. */
  video_kernel_size?: number[];
}

/** `model.image_encoder` of our YAML format (open_clip `vision_cfg` names, plus `embed_dim`). */
export interface RawImageEncoderConfig {
  image_size?: number;
  patch_size?: number;
  width?: number;
  layers?: number;
  head_width?: number;
  mlp_ratio?: number;
  embed_dim?: number;
}

/**
 * `sampling` of our YAML format: the request's sampling fields under their keys (declared in
 * `pipeline/request/fields.ts`) and the noise schedule; every field has a default (see
 * `loadConfig`).
 */
export type RawSamplingConfig = Partial<SamplingFieldsByKey> & {
  sigma_min?: number;
  sigma_max?: number;
  rho?: number;
};

/** A config file as written, after type and range checks, before defaults. */
export interface RawSvdConfig {
  name?: string;
  checkpoint?: string;
  model?: {
    /** Default 0.18215. */
    scale_factor?: number;
    unet?: RawUnetConfig;
    vae?: RawVaeConfig;
    image_encoder?: RawImageEncoderConfig;
  };
  sampling?: RawSamplingConfig;
}
