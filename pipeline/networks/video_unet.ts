/**
 * SVD's denoising network, sgm `VideoUNet` (`sgm/modules/diffusionmodules/video_model.py`;
 * diffusers `UNetSpatioTemporalConditionModel`), as an ONNX graph whose initializers are the
 * checkpoint's `model.diffusion_model.*` tensors under their own names.
 *
 * Graph I/O (float32 at every precision; N = B·T frames, video-major `(b t)`):
 * - `x` [N, in_channels, h, w]: noisy latent × c_in, then the concat latent
 * - `timesteps` [N]: c_noise = ¼·ln σ
 * - `context` [N, 1, context_dim]: CLIP image embedding per frame
 * - `y` [N, adm_in_channels]: the `vector` conditioning (fps_id, motion_bucket_id, cond_aug)
 * - `image_only_indicator` [B, T]: 1 forces a frame to the purely spatial path; gives B and T
 * - `out` [N, out_channels, h, w]: the raw network output F (before c_out / c_skip)
 *
 * @module
 */

import type { VideoUnetConfig } from "../config/network_configs.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { type BuildOptions, type BuiltNetwork, startNetwork } from "./built_network.ts";
import {
  conv2d,
  groupNorm,
  linear,
  silu,
  timestepEmbedding,
  toCompute,
  toFloat32,
} from "./layers.ts";
import { spatialVideoTransformer, type VideoBlockInputs, videoResBlock } from "./video_blocks.ts";

/** Prefix of the UNet's keys in an sgm checkpoint. */
export const VIDEO_UNET_PREFIX = "model.diffusion_model.";

const OUT_NORM_EPS = 1e-5;

/**
 * Builds the VideoUNet graph for `config` over `source` (keys `model.diffusion_model.*`). Every key
 * under the prefix is shape-checked and used exactly once (the q/k side of the one-token
 * cross-attentions is checked and skipped, see `crossAttentionUnused`).
 *
 * @throws {WeightsMismatchError} naming the key that is missing, has another shape, or is unused.
 *
 * @example
 * ```ts
 * using weights = await CheckpointWeights.open(["svd.safetensors"]);
 * const { graph } = buildVideoUnet(FULL.unet, weights, { precision: "fp16" });
 * await writeOnnxModel(graph, "models/unet.onnx");
 * ```
 */
export function buildVideoUnet(
  config: VideoUnetConfig,
  source: WeightSource,
  options: BuildOptions = {},
): BuiltNetwork {
  const [kernelT, kernelH, kernelW] = config.videoKernelSize;
  if (kernelH !== 1 || kernelW !== 1 || kernelT % 2 !== 1) {
    throw new RangeError(
      `video_kernel_size [${config.videoKernelSize}] is not supported: expected [odd, 1, 1]`,
    );
  }
  const net = startNetwork("video_unet", source, options);
  const { g } = net;
  const p = VIDEO_UNET_PREFIX;
  const mc = config.modelChannels;
  const embDim = 4 * mc; // time_embed_dim

  const x = g.input("x", "float32", ["N", config.inChannels, "h", "w"]);
  const timesteps = g.input("timesteps", "float32", ["N"]);
  const contextIn = g.input("context", "float32", ["N", 1, config.contextDim]);
  const y = g.input("y", "float32", ["N", config.admInChannels]);
  const imageOnly = g.input("image_only_indicator", "float32", ["B", "T"]);

  // emb = time_embed(timestep_embedding(t, mc)) + label_emb(y); sinusoids and first Linears fp32.
  const f32 = { type: "float32" } as const;
  const sinusoid = timestepEmbedding(net, timesteps, mc); // [N, mc]
  let timeEmb = linear(net, sinusoid, `${p}time_embed.0`, mc, embDim, f32);
  timeEmb = linear(net, silu(net, toCompute(net, timeEmb)), `${p}time_embed.2`, embDim, embDim);
  let labelEmb = linear(net, y, `${p}label_emb.0.0`, config.admInChannels, embDim, f32);
  labelEmb = linear(net, silu(net, toCompute(net, labelEmb)), `${p}label_emb.0.2`, embDim, embDim);
  const emb = g.op("Add", [timeEmb, labelEmb]);

  // B and T come from image_only_indicator [B, T].
  const batchFrames = g.op("Shape", [imageOnly]); // [B, T] int64
  const frames = g.op("Slice", [batchFrames, g.constInt([1]), g.constInt([2])]); // [T]
  const frameCount = g.op("Squeeze", [g.op("Cast", [frames], { to: 1 })]); // scalar float32 T
  const frameIndex = g.op("Range", [g.constFloat([0], []), frameCount, g.constFloat([1], [])]);
  const frameSinusoids = new Map<number, string>(); // one per width, shared by the transformers
  const frameSinusoid = (channels: number) => {
    if (!frameSinusoids.has(channels)) {
      frameSinusoids.set(channels, timestepEmbedding(net, frameIndex, channels));
    }
    return frameSinusoids.get(channels)!;
  };
  const context = toCompute(net, contextIn);
  const contextDims = g.op("Concat", [batchFrames, g.constInt([config.contextDim])], { axis: 0 });
  const videoContext = g.op("Reshape", [context, contextDims]); // [N, 1, D] -> [B, T, D]
  const io: VideoBlockInputs = {
    embSilu: silu(net, emb),
    embDim,
    batchFrames,
    frames,
    isVideoFrame: g.op("Equal", [imageOnly, g.constFloat([0])]),
    context,
    firstFrameContext: g.op("Gather", [videoContext, g.constInt([0], [])], { axis: 1 }), // [B, D]
    contextDim: config.contextDim,
    frameSinusoid,
    kernelT,
  };

  const heads = (channels: number) => {
    if (channels % config.numHeadChannels !== 0) {
      throw new RangeError(
        `${channels} channels do not split into heads of ${config.numHeadChannels}`,
      );
    }
    return channels / config.numHeadChannels;
  };
  const depth = config.transformerDepth;

  // input_blocks: conv, then per level numResBlocks × (VideoResBlock [+ SVT]) and a Downsample.
  let h = conv2d(net, toCompute(net, x), `${p}input_blocks.0.0`, config.inChannels, mc, 3);
  let ch = mc;
  const skips: { value: string; channels: number }[] = [{ value: h, channels: ch }];
  let block = 1;
  let ds = 1;
  config.channelMult.forEach((mult, level) => {
    for (let i = 0; i < config.numResBlocks; i++, block++) {
      const key = `${p}input_blocks.${block}`;
      h = videoResBlock(net, io, h, `${key}.0`, ch, mult * mc);
      ch = mult * mc;
      if (config.attentionResolutions.includes(ds)) {
        h = spatialVideoTransformer(net, io, h, `${key}.1`, ch, heads(ch), depth);
      }
      skips.push({ value: h, channels: ch });
    }
    if (level !== config.channelMult.length - 1) {
      // Downsample: 3×3 conv, stride 2, symmetric padding 1.
      h = conv2d(net, h, `${p}input_blocks.${block}.0.op`, ch, ch, 3, { stride: 2 });
      skips.push({ value: h, channels: ch });
      block++;
      ds *= 2;
    }
  });

  h = videoResBlock(net, io, h, `${p}middle_block.0`, ch, ch);
  h = spatialVideoTransformer(net, io, h, `${p}middle_block.1`, ch, heads(ch), depth);
  h = videoResBlock(net, io, h, `${p}middle_block.2`, ch, ch);

  // output_blocks: cat([h, skip], 1) → VideoResBlock [+ SVT] [+ Upsample at the end of a level].
  block = 0;
  [...config.channelMult].reverse().forEach((mult, reversed) => {
    const level = config.channelMult.length - 1 - reversed;
    for (let i = 0; i <= config.numResBlocks; i++, block++) {
      const key = `${p}output_blocks.${block}`;
      const skip = skips.pop()!;
      h = g.op("Concat", [h, skip.value], { axis: 1 }); // [N, ch + skip, H, W]
      h = videoResBlock(net, io, h, `${key}.0`, ch + skip.channels, mult * mc);
      ch = mult * mc;
      let layer = 1;
      if (config.attentionResolutions.includes(ds)) {
        h = spatialVideoTransformer(net, io, h, `${key}.${layer++}`, ch, heads(ch), depth);
      }
      if (level > 0 && i === config.numResBlocks) {
        // Upsample: nearest ×2 (bit-exact with torch in this mode), then 3×3 conv.
        h = g.op("Resize", [h, "", g.constFloat([1, 1, 2, 2])], {
          mode: "nearest",
          coordinate_transformation_mode: "asymmetric",
          nearest_mode: "floor",
        });
        h = conv2d(net, h, `${key}.${layer}.conv`, ch, ch, 3);
        ds /= 2;
      }
    }
  });

  // out: GroupNorm32 → SiLU → 3×3 conv.
  h = silu(net, groupNorm(net, h, `${p}out.0`, ch, OUT_NORM_EPS, 4));
  h = conv2d(net, h, `${p}out.2`, ch, config.outChannels, 3);
  g.output("out", toFloat32(net, h), "float32", ["N", config.outChannels, "h", "w"]);

  net.w.assertAllUsed([VIDEO_UNET_PREFIX]);
  return { graph: g, weights: net.w };
}
