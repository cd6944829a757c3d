/**
 * The KL-f8 VAE encoder as an ONNX graph: sgm `Encoder` (`sgm/modules/diffusionmodules/model.py`)
 * followed by `quant_conv`, i.e. `AutoencoderKLModeOnly.encode` up to the Gaussian posterior
 * (diffusers `AutoencoderKLTemporalDecoder.encode` → `latent_dist`).
 *
 * SVD encodes the (noise-augmented) conditioning image with the conditioner's own copy,
 * `conditioner.embedders.3.encoder.{encoder,quant_conv}.*`, and uses the posterior mode (= `mean`)
 * **unscaled** as the concat latent (SVD_REFERENCE.md §4.1). The first stage's encoder
 * (`first_stage_model.encoder.*`, an `AutoencodingEngine` without `quant_conv`) is built by the same
 * function with `{ prefix: "first_stage_model.", quantConv: false }`.
 *
 * @module
 */

import type { VaeConfig } from "../config/network_configs.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { type BuildOptions, type BuiltNetwork, startNetwork } from "./built_network.ts";
import { conv2d, groupNorm, silu, toCompute, toFloat32 } from "./layers.ts";
import { attnBlock, downsample, resnetBlock, VAE_NORM_EPS } from "./vae_blocks.ts";

/** Checkpoint prefix of the conditioning encoder SVD uses (keys `<prefix>encoder.*`, `<prefix>quant_conv.*`). */
export const VAE_ENCODER_PREFIX = "conditioner.embedders.3.encoder.";

/** Options of {@linkcode buildVaeEncoder}. */
export interface VaeEncoderOptions extends BuildOptions {
  /** Prefix of `encoder.*` and `quant_conv.*` (default {@linkcode VAE_ENCODER_PREFIX}). */
  readonly prefix?: string;
  /** Apply `quant_conv` (default true; false for `first_stage_model.`, which has none). */
  readonly quantConv?: boolean;
}

/**
 * Builds the VAE encoder.
 *
 * Graph input `image` float32 [N, 3, H, W] in [-1, 1]; outputs `mean` and `logvar` float32
 * [N, 4, H/8, W/8] with `logvar = clamp(moments[:, 4:], -30, 20)` as sgm's
 * `DiagonalGaussianDistribution`. The latent is **not** multiplied by the 0.18215 scale factor
 * (the concat conditioning is used unscaled).
 *
 * @example
 * ```ts
 * using weights = await CheckpointWeights.open(["svd.safetensors"]);
 * const { graph } = buildVaeEncoder(FULL.vae, weights);
 * await writeOnnxModel(graph, "models/vae_encoder.onnx");
 * ```
 */
export function buildVaeEncoder(
  config: VaeConfig,
  source: WeightSource,
  options: VaeEncoderOptions = {},
): BuiltNetwork {
  const prefix = options.prefix ?? VAE_ENCODER_PREFIX;
  const quantConv = options.quantConv ?? true;
  const net = startNetwork("vae_encoder", source, options);
  const g = net.g;
  const key = `${prefix}encoder`;
  const levels = config.chMult.length;

  const image = g.input("image", "float32", ["batch", config.inChannels, "height", "width"]);

  // 1. conv_in, then per level num_res_blocks ResnetBlocks and (except at the last) a Downsample
  let channels = config.ch;
  let h = conv2d(net, toCompute(net, image), `${key}.conv_in`, config.inChannels, channels, 3);
  for (let level = 0; level < levels; level++) {
    const out = config.ch * config.chMult[level];
    for (let i = 0; i < config.numResBlocks; i++) {
      h = resnetBlock(net, h, `${key}.down.${level}.block.${i}`, channels, out);
      channels = out;
    }
    if (level !== levels - 1) h = downsample(net, h, `${key}.down.${level}.downsample`, channels);
  }

  // 2. mid: ResnetBlock, single-head attention over h·w, ResnetBlock
  h = resnetBlock(net, h, `${key}.mid.block_1`, channels, channels);
  h = attnBlock(net, h, `${key}.mid.attn_1`, channels);
  h = resnetBlock(net, h, `${key}.mid.block_2`, channels, channels);

  // 3. norm_out → SiLU → conv_out to 2·z_channels (double_z: mean and logvar)
  h = silu(net, groupNorm(net, h, `${key}.norm_out`, channels, VAE_NORM_EPS, 4));
  h = conv2d(net, h, `${key}.conv_out`, channels, 2 * config.zChannels, 3);

  // 4. quant_conv (1×1, 2·z_channels → 2·embed_dim), absent from AutoencodingEngine
  let latentChannels = config.zChannels;
  if (quantConv) {
    h = conv2d(net, h, `${prefix}quant_conv`, 2 * config.zChannels, 2 * config.embedDim, 1);
    latentChannels = config.embedDim;
  }

  // 5. DiagonalGaussianDistribution: moments [N, 2e, h, w] -> mean, logvar [N, e, h, w]
  const moments = toFloat32(net, h);
  const [mean, rawLogvar] = g.node(
    "Split",
    [moments, g.constInt([latentChannels, latentChannels])],
    {
      axis: 1,
    },
    { outputs: 2 },
  );
  const logvar = g.op("Clip", [rawLogvar, g.constFloat([-30], []), g.constFloat([20], [])]);
  const latentDims = ["batch", latentChannels, "latent_height", "latent_width"];
  g.output("mean", mean, "float32", latentDims);
  g.output("logvar", logvar, "float32", latentDims);

  net.w.assertAllUsed(quantConv ? [`${key}.`, `${prefix}quant_conv.`] : [`${key}.`]);
  return { graph: g, weights: net.w };
}
