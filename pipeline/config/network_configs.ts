/**
 * Resolved (validated, defaults filled) configurations of SVD's four networks. The config loader
 * (`pipeline/config/`) is the only code that fills them from YAML; graph builders only read them.
 *
 * Field names are sgm's, in camelCase; the sgm YAML key is given on each field.
 *
 * @module
 */

/** sgm `VideoUNet` (`model.params.network_config.params`). */
export interface VideoUnetConfig {
  /** `in_channels`: 8 = 4 noisy latent + 4 concat latent. */
  readonly inChannels: number;
  /** `out_channels`: 4. */
  readonly outChannels: number;
  /** `model_channels`: 320 (tiny: 32). */
  readonly modelChannels: number;
  /** `channel_mult`: [1, 2, 4, 4] (tiny: [1, 1, 1, 2]). */
  readonly channelMult: readonly number[];
  /** `num_res_blocks`: 2. */
  readonly numResBlocks: number;
  /** `attention_resolutions`: downsample factors with transformers, [4, 2, 1]. */
  readonly attentionResolutions: readonly number[];
  /** `num_head_channels`: 64 (tiny: 16); heads = channels / numHeadChannels. */
  readonly numHeadChannels: number;
  /** `transformer_depth`: 1. */
  readonly transformerDepth: number;
  /** `context_dim`: 1024 (tiny: 64) = CLIP embedding width. */
  readonly contextDim: number;
  /**
   * `adm_in_channels`: width of the `vector` conditioning, 3 × the `outdim` of the three
   * micro-conditioning embeddings (fps_id, motion_bucket_id, cond_aug): 768 = 3 × 256 in SVD.
   */
  readonly admInChannels: number;
  /** `video_kernel_size`: [3, 1, 1]. */
  readonly videoKernelSize: readonly [number, number, number];
}

/** sgm `Encoder`/`Decoder` `ddconfig` of the KL-f8 autoencoder. */
export interface VaeConfig {
  /** `ch`: 128 (tiny: 32). */
  readonly ch: number;
  /** `ch_mult`: [1, 2, 4, 4] (tiny: [1, 1, 1, 2]). */
  readonly chMult: readonly number[];
  /** `num_res_blocks`: 2. */
  readonly numResBlocks: number;
  /** `z_channels`: 4. */
  readonly zChannels: number;
  /** `in_channels`: 3. */
  readonly inChannels: number;
  /** `out_ch`: 3. */
  readonly outCh: number;
  /** `embed_dim` of the autoencoder (quant_conv width / 2): 4. */
  readonly embedDim: number;
  /** `video_kernel_size` of the temporal decoder: [3, 1, 1]. */
  readonly videoKernelSize: readonly [number, number, number];
}

/** open_clip `VisionTransformer` + projection (`open_clip_model_configs[arch]`, ViT-H-14 for SVD). */
export interface ImageEncoderConfig {
  /** `vision_cfg.image_size`: 224. */
  readonly imageSize: number;
  /** `vision_cfg.patch_size`: 14. */
  readonly patchSize: number;
  /** `vision_cfg.width`: 1280 (tiny: 64). */
  readonly width: number;
  /** `vision_cfg.layers`: 32 (tiny: 2). */
  readonly layers: number;
  /** `vision_cfg.head_width`: 80 (tiny: 32); heads = width / headWidth. */
  readonly headWidth: number;
  /** `vision_cfg.mlp_ratio`: 4.0. */
  readonly mlpRatio: number;
  /** `embed_dim`: 1024 (tiny: 64) = projection width = UNet context_dim. */
  readonly embedDim: number;
}

/** Precision of a built graph: weights and activations; graph I/O is always float32. */
export type Precision = "fp32" | "fp16";

/** The tiny fixture configuration (tests/fixtures/tiny/config.yaml), for tests. */
export const TINY = {
  unet: {
    inChannels: 8,
    outChannels: 4,
    modelChannels: 32,
    channelMult: [1, 1, 1, 2],
    numResBlocks: 2,
    attentionResolutions: [4, 2, 1],
    numHeadChannels: 16,
    transformerDepth: 1,
    contextDim: 64,
    admInChannels: 768,
    videoKernelSize: [3, 1, 1],
  } satisfies VideoUnetConfig,
  vae: {
    ch: 32,
    chMult: [1, 1, 1, 2],
    numResBlocks: 2,
    zChannels: 4,
    inChannels: 3,
    outCh: 3,
    embedDim: 4,
    videoKernelSize: [3, 1, 1],
  } satisfies VaeConfig,
  imageEncoder: {
    imageSize: 224,
    patchSize: 14,
    width: 64,
    layers: 2,
    headWidth: 32,
    mlpRatio: 4,
    embedDim: 64,
  } satisfies ImageEncoderConfig,
} as const;

/** The real SVD / SVD-XT networks (SVD_REFERENCE.md §1.2, §3, §4). */
export const FULL = {
  unet: {
    ...TINY.unet,
    modelChannels: 320,
    channelMult: [1, 2, 4, 4],
    numHeadChannels: 64,
    contextDim: 1024,
  } satisfies VideoUnetConfig,
  vae: { ...TINY.vae, ch: 128, chMult: [1, 2, 4, 4] } satisfies VaeConfig,
  imageEncoder: {
    imageSize: 224,
    patchSize: 14,
    width: 1280,
    layers: 32,
    headWidth: 80,
    mlpRatio: 4,
    embedDim: 1024,
  } satisfies ImageEncoderConfig,
} as const;
