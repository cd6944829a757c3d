/**
 * The UNet feeds of one classifier-free-guidance step: sgm's `LinearPredictionGuider.prepare_inputs`
 * (stack `[uncond; cond]`), `Denoiser` (`x * c_in`, `c_noise`) and `OpenAIWrapper` (concat the
 * image latent to the channels) in one place.
 *
 * diffusers: `StableVideoDiffusionPipeline.__call__` builds `latent_model_input =
 * cat([scale_model_input(cat([latents] * 2)), image_latents], dim=2)` with the same
 * `[negative; positive]` order.
 *
 * @module
 */

import { formatDims, type Tensor, tensor } from "../tensor.ts";
import { vScalingEdmCNoise } from "../sampling/denoiser_scaling.ts";

const f32 = Math.fround;

/** How a step's CFG batch reaches the UNet (the sampler's `unetBatch` option). */
export const UNET_BATCHES = ["cfg", "split"] as const;

/**
 * `cfg`: one UNet call on `[uncond; cond]` (2T rows, as sgm and diffusers do); `split`: two calls
 * of one video each ({@linkcode splitCfgFeeds}), about half the UNet's activation memory.
 */
export type UnetBatch = (typeof UNET_BATCHES)[number];

/** The conditioner's output for one video (sgm's `c`). */
export interface VideoConditioning {
  /** `[1, 1, D]` CLIP image embedding of the clean image (or `[T, 1, D]`, one row per frame). */
  readonly crossattn: Tensor;
  /** `[1, 4, h, w]` VAE latent of the noise-augmented image (or `[T, 4, h, w]`). */
  readonly concat: Tensor;
  /** `[T, 3·outdim]` micro-conditioning (`microConditioningVector`; 768 wide in SVD). */
  readonly vector: Tensor;
}

/** The inputs of one UNet call, named as the UNet graph's inputs (N = 2T). */
export interface UnetFeeds {
  /** `[2T, 8, h, w]`: channels 0-3 `c_in * x`, channels 4-7 the concat latent. */
  readonly x: Tensor;
  /** `[2T]` `c_noise = ln(sigma) / 4`. */
  readonly timesteps: Tensor;
  /** `[2T, 1, D]` CLIP embedding per frame. */
  readonly context: Tensor;
  /** `[2T, 3·outdim]` micro-conditioning. */
  readonly y: Tensor;
  /** `[2, T]` zeros: both videos are videos, so every blend uses the learned mix factor. */
  readonly imageOnlyIndicator: Tensor;
}

/**
 * Builds the batch of one CFG step: rows `0..T-1` are the unconditional video, rows `T..2T-1` the
 * conditional one.
 *
 * The unconditional branch zeroes the CLIP context and the concat latent (sgm's
 * `force_uc_zero_embeddings`, after embedding: zeros, not the embedding of a black image) and
 * keeps the same `vector`. The concat latent is not scaled by `c_in`: it is not noisy.
 *
 * @param x `[T, 4, h, w]` sampler state at noise level `sigma`
 * @param sigma noise level of this step
 * @param c conditioning of the video
 * @returns the five feeds of the UNet
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { cfgUnetFeeds } from "./cfg_batch.ts";
 * const feeds = cfgUnetFeeds(tensor([2, 4, 1, 1]), 1, {
 *   crossattn: tensor([1, 1, 3]),
 *   concat: tensor([1, 4, 1, 1]),
 *   vector: tensor([2, 768]),
 * });
 * feeds.x.dims; // [4, 8, 1, 1]
 * ```
 */
export function cfgUnetFeeds(x: Tensor, sigma: number, c: VideoConditioning): UnetFeeds {
  const [frames, channels, h, w] = x.dims;
  if (x.dims.length !== 4) {
    throw new RangeError(`cfgUnetFeeds needs x as [T, c, h, w], got ${formatDims(x.dims)}`);
  }
  if (c.concat.dims.length !== 4 || c.concat.dims[2] !== h || c.concat.dims[3] !== w) {
    throw new RangeError(
      `concat ${formatDims(c.concat.dims)} does not match the latent ${formatDims(x.dims)}`,
    );
  }
  if (c.vector.dims.length !== 2 || c.vector.dims[0] !== frames) {
    throw new RangeError(`vector ${formatDims(c.vector.dims)} is not [${frames}, width]`);
  }
  const concat = perFrame(c.concat, frames, "concat");
  const context = perFrame(c.crossattn, frames, "crossattn");
  const concatChannels = c.concat.dims[1];
  const { cIn, cNoise } = vScalingEdmCNoise(sigma);

  // x: [T, c, h, w] twice -> [2T, c + concatChannels, h, w]; uncond rows get a zero concat
  const plane = h * w;
  const inChannels = channels + concatChannels;
  const unetX = new Float32Array(2 * frames * inChannels * plane);
  for (let half = 0; half < 2; half++) {
    for (let t = 0; t < frames; t++) {
      const row = (half * frames + t) * inChannels * plane;
      const source = t * channels * plane;
      for (let i = 0; i < channels * plane; i++) unetX[row + i] = f32(x.data[source + i] * cIn);
      if (half === 1) {
        unetX.set(
          concat.subarray(t * concatChannels * plane, (t + 1) * concatChannels * plane),
          row + channels * plane,
        );
      }
    }
  }

  // context: uncond zeros, then [T, 1, D] -> [2T, 1, D]
  const contextData = new Float32Array(2 * context.length);
  contextData.set(context, context.length);

  // y: the same vector for both halves -> [2T, width]
  const yData = new Float32Array(2 * c.vector.data.length);
  yData.set(c.vector.data);
  yData.set(c.vector.data, c.vector.data.length);

  return {
    x: tensor([2 * frames, inChannels, h, w], unetX),
    timesteps: tensor([2 * frames], new Float32Array(2 * frames).fill(cNoise)),
    context: tensor([2 * frames, ...c.crossattn.dims.slice(1)], contextData),
    y: tensor([2 * frames, c.vector.dims[1]], yData),
    imageOnlyIndicator: tensor([2, frames]),
  };
}

/** `[1, ...]` repeated to `[T, ...]` (sgm's `repeat(..., "b ... -> b t ...")`), or `[T, ...]` as is. */
function perFrame(value: Tensor, frames: number, name: string): Float32Array {
  const rows = value.dims[0];
  if (rows === frames) return value.data;
  if (rows !== 1) {
    throw new RangeError(
      `${name} ${formatDims(value.dims)} has ${rows} rows; expected 1 or ${frames}`,
    );
  }
  const out = new Float32Array(frames * value.data.length);
  for (let t = 0; t < frames; t++) out.set(value.data, t * value.data.length); // [1, ...] -> [T, ...]
  return out;
}

/**
 * The CFG batch as two UNet calls of one video each: `[uncond, cond]`, every feed cut at row T and
 * `image_only_indicator` `[1, T]`. The UNet treats the two videos of a batch independently
 * (spatial layers per frame, temporal layers per video), so the two halves give the batched
 * call's output; each call needs about half the activation memory. diffusers has no such switch
 * (it always batches); sgm neither.
 *
 * @param feeds one step's feeds from {@linkcode cfgUnetFeeds} (N = 2T)
 * @returns the unconditional and the conditional video's feeds (N = T each)
 */
export function splitCfgFeeds(feeds: UnetFeeds): [UnetFeeds, UnetFeeds] {
  const frames = feeds.imageOnlyIndicator.dims[1];
  const half = (t: Tensor, which: 0 | 1): Tensor => {
    if (t.dims[0] !== 2 * frames) {
      throw new RangeError(`splitCfgFeeds needs ${2 * frames} rows, got ${formatDims(t.dims)}`);
    }
    const rows = t.data.length / t.dims[0];
    // [2T, ...] -> [T, ...], rows 0..T-1 or T..2T-1 (a view, no copy)
    return tensor(
      [frames, ...t.dims.slice(1)],
      t.data.subarray(which * frames * rows, (which + 1) * frames * rows),
    );
  };
  const video = (which: 0 | 1): UnetFeeds => ({
    x: half(feeds.x, which),
    timesteps: half(feeds.timesteps, which),
    context: half(feeds.context, which),
    y: half(feeds.y, which),
    imageOnlyIndicator: tensor([1, frames]),
  });
  return [video(0), video(1)];
}
