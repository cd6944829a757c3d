/**
 * SVD image-to-video, end to end, as sgm's `simple_video_sample.py` does it: conditioning, the EDM
 * sampler with per-frame classifier-free guidance, chunked temporal decoding. The networks run
 * behind a {@linkcode NetworkRunner} (an inference process in production), so this function only
 * orchestrates; every step reads like the reference.
 *
 * diffusers: `StableVideoDiffusionPipeline.__call__`.
 *
 * @module
 */

import type { SamplingParams, SvdConfig } from "./config/mod.ts";
import {
  cfgUnetFeeds,
  splitCfgFeeds,
  type UnetBatch,
  type UnetFeeds,
  type VideoConditioning,
} from "./conditioning/cfg_batch.ts";

export type { UnetBatch } from "./conditioning/cfg_batch.ts";
import { microConditioningVector } from "./conditioning/micro_conditioning.ts";
import type { GraphName } from "./model_json/mod.ts";
import { chunkFrames, toUint8Frames } from "./decode/frames.ts";
import { GenerationCancelledError } from "./errors.ts";
import { clipPreprocess } from "./image/clip_preprocess.ts";
import { encodePreviewFrames } from "./preview/preview_images.ts";
import { randomNormal } from "./random.ts";
import {
  applyGuidance,
  denoiserOutput,
  edmSigmas,
  initialLatent,
  linearFrameGuidance,
  sampleEulerEdm,
  triangleFrameGuidance,
} from "./sampling/mod.ts";
import { formatDims, type Tensor, tensor } from "./tensor.ts";

/** Runs one of the four graphs (the inference process's client implements it). */
export interface NetworkRunner {
  run(graph: GraphName, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
}

/** Explicit noise instead of the seeded draws (for reproduction and tests; the CLI's `--noise`). */
export interface ExplicitNoise {
  /** `[T, 4, h, w]` the initial N(0,1) draw, before scaling by √(1+σ₀²). */
  readonly noise: Tensor;
  /** `[1, 3, H, W]` the N(0,1) draw of the conditioning augmentation. */
  readonly condAugNoise: Tensor;
}

/** The model constants a generation needs (from the resolved config: {@linkcode modelConstants}). */
export interface ModelConstants {
  /** Latent scale factor, 0.18215. */
  readonly scaleFactor: number;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  readonly rho: number;
  /**
   * Width of each micro-conditioning embedding: the `outdim` of sgm's `ConcatTimestepEmbedderND`
   * embedders, 256 in SVD. The UNet's `y` is 3 × this wide (`adm_in_channels`).
   */
  readonly microConditioningOutdim: number;
}

/** The {@linkcode ModelConstants} of a resolved config. */
export function modelConstants(
  config: Pick<SvdConfig, "scaleFactor" | "unet" | "sampling">,
): ModelConstants {
  const { sigmaMin, sigmaMax, rho } = config.sampling;
  return {
    scaleFactor: config.scaleFactor,
    sigmaMin,
    sigmaMax,
    rho,
    // The vector is [emb(fps_id) | emb(motion_bucket_id) | emb(cond_aug)], all equally wide.
    microConditioningOutdim: config.unet.admInChannels / 3,
  };
}

/** What {@linkcode generateVideo} reports while it runs. */
export type GenerationEvent =
  | {
    readonly type: "started";
    readonly seed: number;
    readonly frames: number;
    readonly steps: number;
    readonly width: number;
    readonly height: number;
  }
  | {
    readonly type: "step";
    /** 1-based. */
    readonly step: number;
    readonly total: number;
    readonly sigma: number;
    readonly elapsedMs: number;
    readonly etaMs: number;
    /** One small `data:image/png` URL per frame (absent when previews are off). */
    readonly frames?: readonly string[];
  }
  | { readonly type: "decoding"; /** 1-based. */ readonly chunk: number; readonly total: number };

/** Options of {@linkcode generateVideo}. */
export interface GenerateOptions {
  /** `[1, 3, H, W]` the conditioning image in [-1, 1], H and W multiples of 64 (or of 8). */
  readonly image: Tensor;
  readonly params: SamplingParams;
  readonly model: ModelConstants;
  readonly networks: NetworkRunner;
  /** Replaces the seeded draws. */
  readonly noise?: ExplicitNoise;
  /** Latent previews of every step (default true). */
  readonly previews?: boolean;
  readonly onEvent?: (event: GenerationEvent) => void;
  /** Checked between sampler steps and between decode chunks. */
  readonly signal?: AbortSignal;
  /**
   * How each step's CFG batch reaches the UNet: `cfg` (default) one call on `[uncond; cond]`
   * (2T rows, as sgm and diffusers do), `split` two calls of one video each, in that order: the
   * same result within float32 rounding, about half the UNet's activation memory, a little slower
   * on a GPU that the batch of 2T fills better. See {@linkcode UnetBatch}.
   */
  readonly unetBatch?: UnetBatch;
}

/** Wall-clock split of a generation, in milliseconds. */
export interface GenerationTimings {
  readonly conditioningMs: number;
  readonly samplingMs: number;
  readonly decodingMs: number;
  readonly totalMs: number;
}

/** The result of {@linkcode generateVideo}. */
export interface GeneratedVideo {
  /** `[H, W, 3]` RGB per frame, truncated to uint8 as sgm does. */
  readonly frames: Uint8Array[];
  /** `[T, 4, h, w]` the sampler's final latent (diffusion space, before ÷ scale factor). */
  readonly latent: Tensor;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
  readonly timings: GenerationTimings;
}

/** The conditioner's output (sgm's `c`; `uc` is derived from it in the CFG batch). */
export interface Conditioning extends VideoConditioning {}

/**
 * sgm's `GeneralConditioner` for SVD: CLIP embedding of the clean image, VAE posterior mean of the
 * noise-augmented image (unscaled: the embedder's scale_factor is 1), and the micro-conditioning
 * vector `[emb(fps_id) | emb(motion_bucket_id) | emb(cond_aug)]`.
 *
 * @param image `[1, 3, H, W]` in [-1, 1]
 * @param condAugNoise `[1, 3, H, W]` standard normal
 * @param outdim width of each micro-conditioning embedding (256 in SVD)
 */
export async function condition(
  networks: NetworkRunner,
  image: Tensor,
  condAugNoise: Tensor,
  params: Pick<SamplingParams, "numFrames" | "fps" | "motionBucketId" | "condAug">,
  outdim: number,
): Promise<Conditioning> {
  // CLIP sees the clean image, resized to 224 with kornia's antialiased bicubic.
  const { image_embeds } = await networks.run("image_encoder", {
    pixel_values: clipPreprocess(image),
  });
  const crossattn = tensor([1, 1, image_embeds.dims[1]], image_embeds.data); // [1, D] -> [1, 1, D]
  // The concat latent is encoded from the *noised* image: cond_frames = image + cond_aug·ε.
  const condFrames = tensor(
    image.dims,
    image.data.map((v, i) => Math.fround(v + Math.fround(params.condAug * condAugNoise.data[i]))),
  );
  const { mean } = await networks.run("vae_encoder", { image: condFrames });
  const vector = microConditioningVector(
    // SVD was conditioned on fps - 1 (sgm's fps_id).
    { fpsId: params.fps - 1, motionBucketId: params.motionBucketId, condAug: params.condAug },
    params.numFrames,
    outdim,
  );
  return { crossattn, concat: mean, vector };
}

/** Generates a video; see the module doc. Throws `GenerationCancelledError` when aborted. */
export async function generateVideo(options: GenerateOptions): Promise<GeneratedVideo> {
  const { image, params, model, networks, signal } = options;
  const emit = options.onEvent ?? (() => {});
  const started = performance.now();
  const [, , height, width] = image.dims;
  const [frames, h, w] = [params.numFrames, height / 8, width / 8];
  if (
    image.dims.length !== 4 || image.dims[0] !== 1 || image.dims[1] !== 3 || height % 8 || width % 8
  ) {
    throw new RangeError(
      `image must be [1, 3, H, W] with H, W multiples of 8, got ${formatDims(image.dims)}`,
    );
  }

  // 1. Noise: seeded draws (stream 0 the latent, stream 1 the conditioning augmentation) or given.
  const noise = options.noise?.noise ?? randomNormal(params.seed, [frames, 4, h, w], { stream: 0 });
  const condAugNoise = options.noise?.condAugNoise ??
    randomNormal(params.seed, [1, 3, height, width], { stream: 1 });
  checkDims(noise, [frames, 4, h, w], "noise");
  checkDims(condAugNoise, [1, 3, height, width], "cond_aug_noise");
  emit({ type: "started", seed: params.seed, frames, steps: params.numSteps, width, height });

  // 2. Conditioning (c); the unconditional branch zeroes crossattn and concat in the CFG batch.
  throwIfAborted(signal);
  const c = await condition(networks, image, condAugNoise, params, model.microConditioningOutdim);
  const conditioned = performance.now();

  // 3. EDM sampling with per-frame guidance, one batched [uncond; cond] UNet call per step (or
  //    one per video with unetBatch "split": the same result, half the UNet's memory).
  const sigmas = edmSigmas(params.numSteps, model);
  const guidance = params.guider === "triangle"
    ? triangleFrameGuidance(frames, { minScale: params.minGuidance, maxScale: params.maxGuidance })
    : linearFrameGuidance(frames, { minScale: params.minGuidance, maxScale: params.maxGuidance });
  const unet = async (feeds: UnetFeeds) =>
    (await networks.run("unet", {
      x: feeds.x,
      timesteps: feeds.timesteps,
      context: feeds.context,
      y: feeds.y,
      image_only_indicator: feeds.imageOnlyIndicator,
    })).out;
  const denoise = async (x: Tensor, sigma: number) => {
    const feeds = cfgUnetFeeds(x, sigma, c);
    let out: Tensor;
    if (options.unetBatch === "split") {
      const [uncond, cond] = splitCfgFeeds(feeds);
      const [outUncond, outCond] = [await unet(uncond), await unet(cond)];
      out = tensor([2 * frames, ...outCond.dims.slice(1)]); // [T, 4, h, w] twice -> [2T, 4, h, w]
      out.data.set(outUncond.data);
      out.data.set(outCond.data, outUncond.data.length);
    } else {
      out = await unet(feeds);
    }
    return applyGuidance(denoiserOutput(out, x, sigma), guidance);
  };
  // Previews are encoded while the next UNet call runs in the inference process, in step order.
  let previews: Promise<void> = Promise.resolve();
  const latent = await sampleEulerEdm(denoise, initialLatent(noise, sigmas[0]), sigmas, {
    signal,
    onStep: ({ step, total, sigma, denoised, elapsedMs }) => {
      const event = {
        type: "step" as const,
        step: step + 1,
        total,
        sigma,
        elapsedMs: Math.round(elapsedMs),
        etaMs: Math.round((elapsedMs / (step + 1)) * (total - step - 1)),
      };
      if (options.previews === false) return emit(event);
      previews = previews.then(() => nextTask()).then(() =>
        emit({ ...event, frames: encodePreviewFrames(denoised) })
      );
    },
  });
  await previews;
  const sampled = performance.now();

  // 4. Decode in non-overlapping chunks of decoding_t frames (chunking changes the result:
  //    the temporal convolutions zero-pad at chunk edges). The decoder input is z · float32(1/0.18215).
  const inverseScale = Math.fround(1 / model.scaleFactor);
  const z = latent.data.map((v) => Math.fround(v * inverseScale));
  const frameSize = 4 * h * w;
  const chunks = chunkFrames(frames, params.decodingT);
  const decoded = tensor([frames, 3, height, width]);
  for (const [i, [start, end]] of chunks.entries()) {
    throwIfAborted(signal);
    emit({ type: "decoding", chunk: i + 1, total: chunks.length });
    const chunk = tensor([end - start, 4, h, w], z.slice(start * frameSize, end * frameSize)); // [t, 4, h, w]
    const { image: rgb } = await networks.run("vae_decoder", { z: chunk });
    decoded.data.set(rgb.data, start * 3 * height * width);
  }
  const done = performance.now();

  return {
    frames: toUint8Frames(decoded),
    latent,
    seed: params.seed,
    width,
    height,
    timings: {
      conditioningMs: Math.round(conditioned - started),
      samplingMs: Math.round(sampled - conditioned),
      decodingMs: Math.round(done - sampled),
      totalMs: Math.round(done - started),
    },
  };
}

function checkDims(t: Tensor, dims: number[], name: string): void {
  if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
    throw new RangeError(`${name} must be ${formatDims(dims)}, got ${formatDims(t.dims)}`);
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new GenerationCancelledError("Generation cancelled", { cause: signal.reason });
  }
}

/** Resolves after pending I/O callbacks (so a queued inference request is sent first). */
function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
