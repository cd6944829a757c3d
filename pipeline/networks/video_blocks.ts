/**
 * The two spatio-temporal blocks of sgm's `VideoUNet`: `VideoResBlock`
 * (`sgm/modules/diffusionmodules/video_model.py`) and `SpatialVideoTransformer`
 * (`sgm/modules/video_attention.py`), each a spatial layer, a temporal layer and an
 * `AlphaBlender` (`learned_with_images`) between them.
 * diffusers: `SpatioTemporalResBlock` and `TransformerSpatioTemporalModel`.
 *
 * Layouts: frames are folded into the batch, `N = B·T`, row `b·T + t` (einops `(b t)`). Temporal
 * layers see `[B, C, T, H·W]` (convolutions) or `[B, H·W, T, C]` (attention over frames).
 *
 * @module
 */

import {
  attention,
  constant,
  conv2d,
  feedForward,
  groupNorm,
  layerNorm,
  linear,
  type Net,
  silu,
  temporalConv,
  toCompute,
} from "./layers.ts";

/** Values every video block reads besides its input; made once per graph by the UNet. */
export interface VideoBlockInputs {
  /** `silu(emb)` [N, 4·model_channels]: every `emb_layers` starts with SiLU, computed once. */
  readonly embSilu: string;
  /** Width of `emb`: `time_embed_dim = 4·model_channels`. */
  readonly embDim: number;
  /** `[B, T]` int64, the shape of `image_only_indicator`. */
  readonly batchFrames: string;
  /** `[T]` int64 (1-D, one element). */
  readonly frames: string;
  /** `[B, T]` bool: true for video frames, false where `image_only_indicator` is set. */
  readonly isVideoFrame: string;
  /** `context` [N, 1, context_dim] in the compute type. */
  readonly context: string;
  /** `context[::T]` [B, context_dim]: the first frame's context of each video. */
  readonly firstFrameContext: string;
  /** Width of `context`. */
  readonly contextDim: number;
  /** `timestep_embedding(arange(T), channels)` [T, channels] float32, the frame position. */
  frameSinusoid(channels: number): string;
  /** `kt` of `video_kernel_size = [kt, 1, 1]`. */
  readonly kernelT: number;
}

const RESBLOCK_EPS = 1e-5; // GroupNorm32 of every openaimodel ResBlock (spatial and time_stack)
const TRANSFORMER_NORM_EPS = 1e-6; // sgm `Normalize(in_channels)` of the SpatialTransformer
const LAYER_NORM_EPS = 1e-5;

/**
 * The checkpoint keys no computation reads, per transformer block, with their shapes: the
 * cross-attention context is one token, so softmax over one key is exactly 1 and
 * `attn2(norm2(x), c) = to_out.0(to_v(c))` for every query; `norm2`, `to_q` and `to_k` only feed
 * the queries. Their shapes are still checked and they count as used (`WeightBinder.skip`).
 */
export function crossAttentionUnused(channels: number, contextDim: number): [string, number[]][] {
  return [
    ["norm2.weight", [channels]],
    ["norm2.bias", [channels]],
    ["attn2.to_q.weight", [channels, channels]],
    ["attn2.to_k.weight", [channels, contextDim]],
  ];
}

/**
 * `AlphaBlender(merge_strategy="learned_with_images")` weight of the temporal path:
 * `1 − α` with `α = where(image_only_indicator, 1, sigmoid(mix_factor))`, computed in float32
 * on the tiny `[B, T]` tensor and cast once, as sgm's `alpha.to(x.dtype)` under autocast.
 * Key `${key}.mix_factor` [1].
 *
 * @returns [B, T] in the compute type
 */
function temporalWeight(net: Net, io: VideoBlockInputs, key: string): string {
  const g = net.g;
  const mixFactor = net.w.take(`${key}.mix_factor`, [1], { type: "float32" });
  const alpha = g.op("Where", [io.isVideoFrame, g.op("Sigmoid", [mixFactor]), g.constFloat([1])]);
  return toCompute(net, g.op("Sub", [g.constFloat([1]), alpha]));
}

/**
 * sgm `VideoResBlock`: a 2-D `ResBlock` (S), then `time_stack`, a `ResBlock(dims=3)` with kernel
 * (kt, 1, 1) and identity skip (R = S + Δ), blended `α·S + (1−α)·R`, which is exactly
 * `S + (1−α)·Δ`. Keys under `key`: `in_layers.{0,2}`, `emb_layers.1`, `out_layers.{0,3}`,
 * `skip_connection` (when channels change), `time_stack.*` (same names), `time_mixer.mix_factor`.
 *
 * @param x [N, inChannels, H, W]
 * @returns [N, outChannels, H, W]
 */
export function videoResBlock(
  net: Net,
  io: VideoBlockInputs,
  x: string,
  key: string,
  inChannels: number,
  outChannels: number,
): string {
  const g = net.g;
  const c = outChannels;
  const ts = `${key}.time_stack`;
  const normSilu = (v: string, norm: string, channels: number) =>
    silu(net, groupNorm(net, v, norm, channels, RESBLOCK_EPS, 4));

  // Spatial ResBlock: S = skip(x) + out_layers(in_layers(x) + emb_layers(emb)).
  let h = normSilu(x, `${key}.in_layers.0`, inChannels);
  h = conv2d(net, h, `${key}.in_layers.2`, inChannels, c, 3);
  const emb = linear(net, io.embSilu, `${key}.emb_layers.1`, io.embDim, c);
  h = g.op("Add", [h, g.op("Unsqueeze", [emb, g.constInt([2, 3])])]); // [N, C] -> [N, C, 1, 1]
  h = conv2d(net, normSilu(h, `${key}.out_layers.0`, c), `${key}.out_layers.3`, c, c, 3);
  const skip = inChannels === c ? x : conv2d(net, x, `${key}.skip_connection`, inChannels, c, 1);
  const spatial = g.op("Add", [skip, h]);

  // time_stack over [B, C, T, H·W]; GroupNorm statistics span all frames, as torch's on 5-D.
  const videoDims = g.op("Concat", [io.batchFrames, g.constInt([c, -1])], { axis: 0 });
  let d = g.op("Reshape", [spatial, videoDims]); // [N, C, H, W] -> [B, T, C, H·W]
  d = g.op("Transpose", [d], { perm: [0, 2, 1, 3] }); // -> [B, C, T, H·W]
  d = normSilu(d, `${ts}.in_layers.0`, c);
  d = temporalConv(net, d, `${ts}.in_layers.2`, c, c, io.kernelT);
  // exchange_temb_dims: emb_layers(emb) is added per frame.
  const frameDims = g.op("Concat", [io.batchFrames, g.constInt([c])], { axis: 0 });
  let frameEmb = linear(net, io.embSilu, `${ts}.emb_layers.1`, io.embDim, c);
  frameEmb = g.op("Reshape", [frameEmb, frameDims]); // [N, C] -> [B, T, C]
  frameEmb = g.op("Transpose", [frameEmb], { perm: [0, 2, 1] }); // -> [B, C, T]
  d = g.op("Add", [d, g.op("Unsqueeze", [frameEmb, g.constInt([3])])]); // + [B, C, T, 1]
  d = normSilu(d, `${ts}.out_layers.0`, c);
  d = temporalConv(net, d, `${ts}.out_layers.3`, c, c, io.kernelT);

  // time_mixer (pattern `b t -> b 1 t 1 1`): S + (1−α)·Δ.
  const weight = temporalWeight(net, io, `${key}.time_mixer`);
  d = g.op("Mul", [d, g.op("Unsqueeze", [weight, g.constInt([1, 3])])]); // · [B, 1, T, 1]
  d = g.op("Transpose", [d], { perm: [0, 2, 1, 3] }); // [B, C, T, H·W] -> [B, T, C, H·W]
  d = g.op("Reshape", [d, g.op("Shape", [spatial])]); // -> [N, C, H, W]
  return g.op("Add", [spatial, d]);
}

/**
 * sgm `SpatialVideoTransformer` (depth `depth`, `use_linear=True`, `use_spatial_context=True`,
 * `extra_ff_mix_layer=True`): GroupNorm → `proj_in` → per depth a spatial `BasicTransformerBlock`
 * (h_s) and a temporal `VideoTransformerBlock` on `h_s + time_pos_embed(frame index)` (h_t),
 * blended `α·h_s + (1−α)·h_t` → `proj_out` → `+ x`.
 *
 * @param x [N, channels, H, W]
 * @returns [N, channels, H, W]
 */
export function spatialVideoTransformer(
  net: Net,
  io: VideoBlockInputs,
  x: string,
  key: string,
  channels: number,
  heads: number,
  depth: number,
): string {
  const g = net.g;
  const c = channels;
  let h = groupNorm(net, x, `${key}.norm`, c, TRANSFORMER_NORM_EPS, 4);
  h = g.op("Reshape", [h, g.constInt([0, c, -1])]); // [N, C, H, W] -> [N, C, H·W]
  h = g.op("Transpose", [h], { perm: [0, 2, 1] }); // -> [N, H·W, C]
  h = linear(net, h, `${key}.proj_in`, c, c);

  // Frame position time_pos_embed(timestep_embedding(arange(T), C)): [T, C]; first Linear fp32.
  const posKey = `${key}.time_pos_embed`;
  let pos = linear(net, io.frameSinusoid(c), `${posKey}.0`, c, 4 * c, { type: "float32" });
  pos = linear(net, toCompute(net, silu(net, pos)), `${posKey}.2`, 4 * c, c);

  // time_mixer (pattern `b t -> (b t) 1 1`): α for h_s, 1 − α for h_t, each [B, T] -> [N, 1, 1].
  const perFrame = (v: string) => g.op("Reshape", [v, g.constInt([-1, 1, 1])]);
  const temporal = temporalWeight(net, io, `${key}.time_mixer`);
  const spatial = perFrame(g.op("Sub", [constant(net, [1]), temporal]));
  const framesDims = g.op("Concat", [io.batchFrames, g.constInt([-1, c])], { axis: 0 });

  for (let i = 0; i < depth; i++) {
    const hs = basicTransformerBlock(net, io, h, `${key}.transformer_blocks.${i}`, c, heads);
    let z = g.op("Reshape", [hs, framesDims]); // [N, S, C] -> [B, T, S, C]
    z = g.op("Transpose", [z], { perm: [0, 2, 1, 3] }); // -> [B, S, T, C]
    z = g.op("Add", [z, pos]); // + [T, C]: h_t sees the frame position, h_s does not
    z = videoTransformerBlock(net, io, z, `${key}.time_stack.${i}`, c, heads);
    z = g.op("Transpose", [z], { perm: [0, 2, 1, 3] }); // [B, S, T, C] -> [B, T, S, C]
    const ht = g.op("Reshape", [z, g.op("Shape", [hs])]); // -> [N, S, C]
    h = g.op("Add", [g.op("Mul", [hs, spatial]), g.op("Mul", [ht, perFrame(temporal)])]);
  }

  h = linear(net, h, `${key}.proj_out`, c, c);
  h = g.op("Transpose", [h], { perm: [0, 2, 1] }); // [N, H·W, C] -> [N, C, H·W]
  h = g.op("Reshape", [h, g.op("Shape", [x])]); // -> [N, C, H, W]
  return g.op("Add", [h, x]);
}

/**
 * sgm `BasicTransformerBlock` over the H·W tokens of each frame: self-attention, cross-attention
 * to the frame's own context (one token, see {@linkcode crossAttentionUnused}), GEGLU FF.
 *
 * @param x [N, S, C]
 * @returns [N, S, C]
 */
function basicTransformerBlock(
  net: Net,
  io: VideoBlockInputs,
  x: string,
  key: string,
  c: number,
  heads: number,
): string {
  const g = net.g;
  const norm = (v: string, name: string) => layerNorm(net, v, `${key}.${name}`, c, LAYER_NORM_EPS);
  x = g.op("Add", [x, selfAttention(net, norm(x, "norm1"), `${key}.attn1`, c, heads)]);
  x = g.op("Add", [x, contextAttention(net, io, io.context, key, c)]); // + [N, 1, C]
  return g.op("Add", [x, feedForward(net, norm(x, "norm3"), `${key}.ff`, c)]);
}

/**
 * sgm `VideoTransformerBlock` (`ff_in`, `is_res`): attention over the T frames of each pixel of
 * each video, cross-attention to the video's first-frame context, GEGLU FF.
 *
 * @param z [B, S, T, C]
 * @returns [B, S, T, C]
 */
function videoTransformerBlock(
  net: Net,
  io: VideoBlockInputs,
  z: string,
  key: string,
  c: number,
  heads: number,
): string {
  const g = net.g;
  const norm = (v: string, name: string) => layerNorm(net, v, `${key}.${name}`, c, LAYER_NORM_EPS);
  z = g.op("Add", [z, feedForward(net, norm(z, "norm_in"), `${key}.ff_in`, c)]);
  const sequenceDims = g.op("Concat", [g.constInt([-1]), io.frames, g.constInt([c])], { axis: 0 });
  let a = g.op("Reshape", [norm(z, "norm1"), sequenceDims]); // [B, S, T, C] -> [B·S, T, C]
  a = selfAttention(net, a, `${key}.attn1`, c, heads);
  z = g.op("Add", [z, g.op("Reshape", [a, g.op("Shape", [z])])]); // [B·S, T, C] -> [B, S, T, C]
  const cross = contextAttention(net, io, io.firstFrameContext, key, c); // [B, C]
  z = g.op("Add", [z, g.op("Unsqueeze", [cross, g.constInt([1, 2])])]); // + [B, 1, 1, C]
  return g.op("Add", [z, feedForward(net, norm(z, "norm3"), `${key}.ff`, c)]);
}

/**
 * sgm `CrossAttention` used as self-attention: `to_out.0(softmax(q kᵀ/√d) v)`, q/k/v without bias.
 *
 * @param x [batch, S, C]
 * @returns [batch, S, C]
 */
function selfAttention(net: Net, x: string, key: string, c: number, heads: number): string {
  const project = (name: string) => linear(net, x, `${key}.${name}`, c, c, { bias: false });
  const attended = attention(net, project("to_q"), project("to_k"), project("to_v"), heads, c);
  return linear(net, attended, `${key}.to_out.0`, c, c);
}

/**
 * `attn2(norm2(x), context)` of the transformer block `key` when the context is a single token:
 * exactly `to_out.0(to_v(context))`, the same for every query.
 *
 * @param context [..., contextDim]
 * @returns [..., C]
 */
function contextAttention(
  net: Net,
  io: VideoBlockInputs,
  context: string,
  key: string,
  c: number,
): string {
  for (const [name, dims] of crossAttentionUnused(c, io.contextDim)) {
    net.w.skip(`${key}.${name}`, dims);
  }
  const value = linear(net, context, `${key}.attn2.to_v`, io.contextDim, c, { bias: false });
  return linear(net, value, `${key}.attn2.to_out.0`, c, c);
}
