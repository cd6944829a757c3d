/**
 * The per-frame 2-D VAE decoder of the `svd_image_decoder` / `svd_xt_image_decoder` checkpoints as
 * an ONNX graph: their first stage is a legacy `AutoencoderKL` whose `decode` is `post_quant_conv`
 * (1×1, embed_dim → z_channels) then sgm's plain 2-D `Decoder`
 * (`sgm/modules/diffusionmodules/model.py`): no `time_stack`, no `mix_factor`, no `time_mix_conv`
 * (SVD_REFERENCE.md §4.4). diffusers `AutoencoderKL.decode`.
 *
 * Frames are decoded independently, so any number of frames per call gives the same result.
 *
 * @module
 */

import type { VaeConfig } from "../config/network_configs.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { type BuildOptions, type BuiltNetwork, startNetwork } from "./built_network.ts";
import { conv2d, groupNorm, silu, toCompute, toFloat32 } from "./layers.ts";
import { attnBlock, resnetBlock, upsample, VAE_NORM_EPS } from "./vae_blocks.ts";

/** Checkpoint prefix of the 2-D first stage (keys `<prefix>post_quant_conv.*`, `<prefix>decoder.*`). */
export const IMAGE_DECODER_PREFIX = "first_stage_model.";

/** Options of {@linkcode buildImageDecoder}. */
export interface ImageDecoderOptions extends BuildOptions {
  /** Prefix of `post_quant_conv.*` and `decoder.*` (default {@linkcode IMAGE_DECODER_PREFIX}). */
  readonly prefix?: string;
}

/**
 * Builds the 2-D image decoder.
 *
 * Graph input `z` float32 [T, 4, h, w], **already divided by the scale factor**
 * (`z * float32(1 / 0.18215)`); output `image` float32 [T, 3, 8h, 8w], roughly in [-1, 1]: the
 * same interface as the temporal decoder's graph (`buildVaeDecoder`).
 *
 * Throws `WeightsMismatchError` on a checkpoint with a temporal decoder (its
 * `post_quant_conv` is missing and its `time_stack` keys would stay unused).
 *
 * @example
 * ```ts
 * using weights = await CheckpointWeights.open(["svd_image_decoder.safetensors"]);
 * const { graph } = buildImageDecoder(FULL.vae, weights);
 * await writeOnnxModel(graph, "models/image_decoder.onnx");
 * ```
 */
export function buildImageDecoder(
  config: VaeConfig,
  source: WeightSource,
  options: ImageDecoderOptions = {},
): BuiltNetwork {
  const prefix = options.prefix ?? IMAGE_DECODER_PREFIX;
  const net = startNetwork("image_decoder", source, options);
  const g = net.g;
  const key = `${prefix}decoder`;
  const levels = config.chMult.length;

  const z = g.input("z", "float32", ["frames", config.embedDim, "latent_height", "latent_width"]);

  // 1. post_quant_conv (1×1, embed_dim → z_channels), then conv_in
  const latent = toCompute(net, z);
  let h = conv2d(net, latent, `${prefix}post_quant_conv`, config.embedDim, config.zChannels, 1);
  let channels = config.ch * config.chMult[levels - 1];
  h = conv2d(net, h, `${key}.conv_in`, config.zChannels, channels, 3);

  // 2. mid: ResnetBlock, single-head attention over h·w, ResnetBlock
  h = resnetBlock(net, h, `${key}.mid.block_1`, channels, channels);
  h = attnBlock(net, h, `${key}.mid.attn_1`, channels);
  h = resnetBlock(net, h, `${key}.mid.block_2`, channels, channels);

  // 3. up levels, deepest first: num_res_blocks + 1 ResnetBlocks, then (except level 0) nearest ×2
  //    upsample + conv
  for (let level = levels - 1; level >= 0; level--) {
    const out = config.ch * config.chMult[level];
    for (let i = 0; i <= config.numResBlocks; i++) {
      h = resnetBlock(net, h, `${key}.up.${level}.block.${i}`, channels, out);
      channels = out;
    }
    if (level !== 0) h = upsample(net, h, `${key}.up.${level}.upsample`, channels);
  }

  // 4. norm_out → SiLU → conv_out
  h = silu(net, groupNorm(net, h, `${key}.norm_out`, channels, VAE_NORM_EPS, 4));
  h = conv2d(net, h, `${key}.conv_out`, channels, config.outCh, 3);

  g.output("image", toFloat32(net, h), "float32", ["frames", config.outCh, "height", "width"]);
  net.w.assertAllUsed([`${key}.`, `${prefix}post_quant_conv.`]);
  return { graph: g, weights: net.w };
}
