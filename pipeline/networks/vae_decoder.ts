/**
 * SVD's temporal VAE decoder as an ONNX graph: sgm `VideoDecoder` with `time_mode="conv-only"`
 * (`sgm/modules/autoencoding/temporal_ae.py`); diffusers `TemporalDecoder` of
 * `AutoencoderKLTemporalDecoder`. Keys `first_stage_model.decoder.*`; there is no
 * `post_quant_conv` (`AutoencodingEngine.decode` calls the decoder directly).
 *
 * One call of the graph decodes one chunk of frames (`decoding_t` in sgm, `decode_chunk_size` in
 * diffusers): its temporal convolutions zero-pad at the first and last frame of the call, so they
 * mix only frames of that call. Split the frames into consecutive, non-overlapping chunks and
 * concatenate the outputs, as `DiffusionEngine.decode_first_stage` does (SVD_REFERENCE.md §4.3).
 *
 * @module
 */

import type { VaeConfig } from "../config/network_configs.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { type BuildOptions, type BuiltNetwork, startNetwork } from "./built_network.ts";
import { conv2d, groupNorm, type Net, silu, temporalConv, toCompute, toFloat32 } from "./layers.ts";
import { attnBlock, resnetBlock, upsample, VAE_NORM_EPS } from "./vae_blocks.ts";

/** Checkpoint prefix of the temporal decoder. */
export const VAE_DECODER_PREFIX = "first_stage_model.decoder.";

/** `openaimodel.ResBlock`'s GroupNorm32 eps, used by the decoder's `time_stack` blocks. */
const TIME_STACK_NORM_EPS = 1e-5;

/** Options of {@linkcode buildVaeDecoder}. */
export interface VaeDecoderOptions extends BuildOptions {
  /** Prefix of the decoder's keys (default {@linkcode VAE_DECODER_PREFIX}). */
  readonly prefix?: string;
}

/**
 * Builds the temporal VAE decoder.
 *
 * Graph input `z` float32 [T, 4, h, w]: the latents of the T frames of one chunk, **already
 * divided by the scale factor** (`z * float32(1 / 0.18215)`); output `image` float32
 * [T, 3, 8h, 8w], roughly in [-1, 1].
 *
 * @example
 * ```ts
 * using weights = await CheckpointWeights.open(["svd.safetensors"]);
 * const { graph } = buildVaeDecoder(FULL.vae, weights);
 * await writeOnnxModel(graph, "models/vae_decoder.onnx");
 * ```
 */
export function buildVaeDecoder(
  config: VaeConfig,
  source: WeightSource,
  options: VaeDecoderOptions = {},
): BuiltNetwork {
  const prefix = options.prefix ?? VAE_DECODER_PREFIX;
  const [kernelT, kernelH, kernelW] = config.videoKernelSize;
  if (kernelH !== 1 || kernelW !== 1 || kernelT % 2 !== 1) {
    throw new RangeError(
      `videoKernelSize [${config.videoKernelSize}] is not supported: expected [odd, 1, 1]`,
    );
  }
  const net = startNetwork("vae_decoder", source, options);
  const g = net.g;
  const levels = config.chMult.length;
  const block = (x: string, key: string, inChannels: number, outChannels: number) =>
    videoResBlock(net, x, `${prefix}${key}`, inChannels, outChannels, kernelT);

  const z = g.input("z", "float32", ["frames", config.zChannels, "latent_height", "latent_width"]);

  // 1. conv_in (2-D)
  let channels = config.ch * config.chMult[levels - 1];
  let h = conv2d(net, toCompute(net, z), `${prefix}conv_in`, config.zChannels, channels, 3);

  // 2. mid: VideoResBlock, spatial-only single-head attention, VideoResBlock
  h = block(h, "mid.block_1", channels, channels);
  h = attnBlock(net, h, `${prefix}mid.attn_1`, channels);
  h = block(h, "mid.block_2", channels, channels);

  // 3. up levels, deepest first: num_res_blocks + 1 VideoResBlocks, then (except level 0) a 2-D
  //    nearest ×2 upsample + conv
  for (let level = levels - 1; level >= 0; level--) {
    const out = config.ch * config.chMult[level];
    for (let i = 0; i <= config.numResBlocks; i++) {
      h = block(h, `up.${level}.block.${i}`, channels, out);
      channels = out;
    }
    if (level !== 0) h = upsample(net, h, `${prefix}up.${level}.upsample`, channels);
  }

  // 4. norm_out → SiLU → conv_out = AE3DConv: Conv2d, then Conv3d (kt, 1, 1) over the chunk's
  //    frames, with no residual around it
  h = silu(net, groupNorm(net, h, `${prefix}norm_out`, channels, VAE_NORM_EPS, 4));
  h = conv2d(net, h, `${prefix}conv_out`, channels, config.outCh, 3);
  const mixed = temporalConv(
    net,
    framesToVideo(net, h),
    `${prefix}conv_out.time_mix_conv`,
    config.outCh,
    config.outCh,
    kernelT,
  );
  h = videoToFrames(net, mixed, h);

  g.output("image", toFloat32(net, h), "float32", ["frames", config.outCh, "height", "width"]);
  net.w.assertAllUsed([prefix]);
  return { graph: g, weights: net.w };
}

/**
 * sgm `VideoResBlock` of the VAE: `x_s = ResnetBlock(x)` (2-D, GN eps 1e-6), `x_t = time_stack(x_s)`
 * over the chunk's frames, `out = α·x_t + (1 − α)·x_s` with `α = sigmoid(mix_factor)`. Here α
 * weights the **temporal** path: the opposite of the UNet's `AlphaBlender`. diffusers
 * `SpatioTemporalResBlock` with `TemporalResnetBlock` and `AlphaBlender(switch_spatial_to_temporal_mix=True)`.
 *
 * @param x [T, inChannels, H, W]
 * @returns [T, outChannels, H, W]
 */
function videoResBlock(
  net: Net,
  x: string,
  key: string,
  inChannels: number,
  outChannels: number,
  kernelT: number,
): string {
  const g = net.g;
  const spatial = resnetBlock(net, x, key, inChannels, outChannels);
  const mix = framesToVideo(net, spatial);
  const temporal = timeStack(net, mix, `${key}.time_stack`, outChannels, kernelT);
  // α and 1 − α in float32 (ORT folds them into constants at load, also for fp16 graphs)
  const alpha = g.op("Sigmoid", [net.w.take(`${key}.mix_factor`, [1], { type: "float32" })]);
  const oneMinusAlpha = g.op("Sub", [g.constFloat([1], []), alpha]);
  const blended = g.op("Add", [
    g.op("Mul", [toCompute(net, alpha), temporal]),
    g.op("Mul", [toCompute(net, oneMinusAlpha), mix]),
  ]);
  return videoToFrames(net, blended, spatial);
}

/**
 * The decoder's `time_stack`: sgm `openaimodel.ResBlock(dims=3, kernel_size=(kt, 1, 1),
 * skip_t_emb=True)`: GN(eps 1e-5) → SiLU → Conv3d → GN → SiLU → (dropout) → Conv3d, plus the
 * input (identity skip, no timestep embedding). The GroupNorms span all frames of the chunk, as
 * torch's GroupNorm on the 5-D `[b, c, t, h, w]` tensor does.
 *
 * @param x [1, C, T, H·W]
 * @returns [1, C, T, H·W]
 */
function timeStack(net: Net, x: string, key: string, channels: number, kernelT: number): string {
  let h = silu(net, groupNorm(net, x, `${key}.in_layers.0`, channels, TIME_STACK_NORM_EPS, 4));
  h = temporalConv(net, h, `${key}.in_layers.2`, channels, channels, kernelT);
  h = silu(net, groupNorm(net, h, `${key}.out_layers.0`, channels, TIME_STACK_NORM_EPS, 4));
  h = temporalConv(net, h, `${key}.out_layers.3`, channels, channels, kernelT);
  return net.g.op("Add", [x, h]);
}

/**
 * The frames of one chunk as one video, laid out for {@linkcode temporalConv}
 * (einops `(b t) c h w -> b c t (h w)` with b = 1).
 *
 * @param x [T, C, H, W]
 * @returns [1, C, T, H·W]
 */
function framesToVideo(net: Net, x: string): string {
  const g = net.g;
  // [T, C, H, W] -> [T, C, H·W] -> [C, T, H·W] -> [1, C, T, H·W]
  const flat = g.op("Reshape", [x, g.constInt([0, 0, -1])]);
  const channelsFirst = g.op("Transpose", [flat], { perm: [1, 0, 2] });
  return g.op("Unsqueeze", [channelsFirst, g.constInt([0])]);
}

/**
 * Inverse of {@linkcode framesToVideo}: `b c t (h w) -> (b t) c h w`, taking H and W from `like`.
 *
 * @param x [1, C, T, H·W]
 * @param like [T, C, H, W]
 * @returns [T, C, H, W]
 */
function videoToFrames(net: Net, x: string, like: string): string {
  const g = net.g;
  // [1, C, T, H·W] -> [C, T, H·W] -> [T, C, H·W] -> [T, C, H, W]
  const squeezed = g.op("Squeeze", [x, g.constInt([0])]);
  const framesFirst = g.op("Transpose", [squeezed], { perm: [1, 0, 2] });
  return g.op("Reshape", [framesFirst, g.op("Shape", [like])]);
}
