/**
 * One generation as a service runs it, without HTTP: uploaded image bytes and a validated request
 * (the `GenerationRequest` every surface produces) in, progress events and the encoded clip's
 * bytes out. Composes what `deno task i2v` composes — `prepareImage` (in an `ImagePool`'s worker,
 * off the main thread, so the event loop of the HTTP process stays free) → `generateVideo` →
 * `watermarkFrames` (sgm's invisible watermark, unless the request says `watermark: false`) →
 * `encodeVideo` — with the clip written to a temporary file (ffmpeg writes files atomically) and
 * read back.
 *
 * @example
 * ```ts
 * import { ImagePool } from "../image/image_pool.ts";
 * import { runVideoJob } from "./video_job.ts";
 * const request = parseRequest({ format: "mp4", preview: "none" }, { surface: "http", model, sampling });
 * const clip = await runVideoJob(png, request, {
 *   images: new ImagePool(),
 *   networks: client,
 *   model: modelConstants(config),
 *   maxPixels: 16e6,
 *   onEvent: (event) => console.log(event.type),
 * });
 * clip.contentType; // "video/mp4"
 * ```
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import {
  generateVideo,
  type GenerationEvent,
  type ModelConstants,
  type NetworkRunner,
} from "../generate.ts";
import type { ImageRequestOptions } from "../image/image_pool.ts";
import type { PreparedImage, PrepareImageOptions } from "../image/prepare_image.ts";
import type { ClipFormat, GenerationRequest } from "../request/mod.ts";
import { encodeVideo } from "../video/mod.ts";
import { watermarkFrames } from "../watermark/watermark_frames.ts";

export type { ClipFormat };

/** Content-Type of each clip format. */
export const CLIP_CONTENT_TYPES: Readonly<Record<ClipFormat, string>> = {
  mp4: "video/mp4",
  webm: "video/webm",
  gif: "image/gif",
};

/** Progress of a job: the generation's events, then `encoding`. */
export type VideoJobEvent = GenerationEvent | { readonly type: "encoding" };

/** Wall-clock split of a job, in milliseconds. */
export interface VideoJobTimings {
  readonly preparingMs: number;
  readonly conditioningMs: number;
  readonly samplingMs: number;
  readonly decodingMs: number;
  /** Watermarking and the ffmpeg encode. */
  readonly encodingMs: number;
  readonly totalMs: number;
}

/** The encoded clip. */
export interface VideoJobResult {
  readonly bytes: Uint8Array;
  readonly format: ClipFormat;
  readonly contentType: string;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  readonly fps: number;
  readonly timings: VideoJobTimings;
}

/** What a job needs of an `ImagePool`: `prepareImage` off the main thread. */
export interface ImagePreparer {
  prepare(
    bytes: Uint8Array,
    options: PrepareImageOptions & ImageRequestOptions,
  ): Promise<PreparedImage>;
}

/** Options of {@linkcode runVideoJob}. */
export interface VideoJobOptions {
  /** Decodes, sizes and tensorises the image off the main thread (the service's `ImagePool`). */
  readonly images: ImagePreparer;
  readonly networks: NetworkRunner;
  readonly model: ModelConstants;
  /** Largest width × height of the uploaded image, checked on its header before decoding. */
  readonly maxPixels: number;
  readonly onEvent?: (event: VideoJobEvent) => void;
  /** Stops the job between steps, between decode chunks and during the encode. */
  readonly signal?: AbortSignal;
  /** Where the temporary clip is written (default: the system's temporary directory). */
  readonly tempDir?: string;
  /**
   * How each step's CFG batch reaches the UNet (default `cfg`), or a function choosing it from
   * the size generated (the size policy may change it): see `jobCost`.
   */
  readonly unetBatch?: UnetBatch | ((shape: GeneratedShape) => UnetBatch);
  /** ffmpeg's time, in milliseconds (default scaled to the clip: `encodeTimeoutMs`). */
  readonly encodeTimeoutMs?: number;
}

/** The size of a generation as it runs (after the size policy). */
export interface GeneratedShape {
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly decodingT: number;
}

/**
 * Runs one job: decode and size the image, generate, encode, read the clip back.
 *
 * @param image the uploaded file (PNG, JPEG or WebP)
 * @throws {UnsupportedImageError | ImageTooLargeError} for an image that cannot be used
 * @throws {GenerationCancelledError} when `signal` aborts
 * @throws {InferenceWorkerError} when the inference worker dies
 * @throws {FfmpegError | FfmpegNotFoundError} when the encode fails
 * @throws {FfmpegTimeoutError} when ffmpeg hangs past its time and is killed
 */
export async function runVideoJob(
  image: Uint8Array,
  request: GenerationRequest,
  options: VideoJobOptions,
): Promise<VideoJobResult> {
  const { params, format } = request;
  const { signal } = options;
  const emit = options.onEvent ?? (() => {});
  const started = performance.now();

  // 1. The image at the model's size, in an image worker (the header's pixel count is checked
  //    before decoding; a 16 Mpx decode would stall every other request on this thread).
  const prepared = await options.images.prepare(image, {
    width: params.width,
    height: params.height,
    policy: request.size,
    maxPixels: options.maxPixels,
    signal,
  });
  const preparedAt = performance.now();

  // 2. The frames; `native`/`contain` may change the size, so the params follow the image.
  const shape: GeneratedShape = {
    frames: params.numFrames,
    width: prepared.width,
    height: prepared.height,
    steps: params.numSteps,
    decodingT: params.decodingT,
  };
  const video = await generateVideo({
    image: prepared.tensor,
    params: { ...params, width: prepared.width, height: prepared.height },
    model: options.model,
    networks: options.networks,
    previews: request.preview === "latent",
    onEvent: emit,
    signal,
    unetBatch: typeof options.unetBatch === "function"
      ? options.unetBatch(shape)
      : options.unetBatch,
  });

  // 3. sgm's invisible watermark in every frame (off the event loop between frames), then the
  //    clip, through a temporary file that is always removed.
  emit({ type: "encoding" });
  const encodeStarted = performance.now();
  if (request.watermark) {
    await watermarkFrames(video.frames, video.width, video.height, { signal });
  }
  const dir = await Deno.makeTempDir({ dir: options.tempDir, prefix: "svd_job_" });
  try {
    const encoded = await encodeVideo(video.frames, {
      width: video.width,
      height: video.height,
      fps: params.fps,
      format,
      out: `${dir}/clip.${format}`,
      crf: request.crf,
      signal,
      timeoutMs: options.encodeTimeoutMs,
    });
    const bytes = await Deno.readFile(encoded.path);
    const finished = performance.now();
    return {
      bytes,
      format,
      contentType: CLIP_CONTENT_TYPES[format],
      seed: video.seed,
      width: video.width,
      height: video.height,
      frames: encoded.frames,
      fps: encoded.fps,
      timings: {
        preparingMs: Math.round(preparedAt - started),
        conditioningMs: video.timings.conditioningMs,
        samplingMs: video.timings.samplingMs,
        decodingMs: video.timings.decodingMs,
        encodingMs: Math.round(finished - encodeStarted),
        totalMs: Math.round(finished - started),
      },
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs a job on whatever client is live when it starts (the service's worker loop calls it). */
export type VideoJobRunner = (
  image: Uint8Array,
  request: GenerationRequest,
  context: { readonly signal: AbortSignal; readonly onEvent: (event: VideoJobEvent) => void },
) => Promise<VideoJobResult>;

/** What {@linkcode videoJobRunner} needs of an `InferenceEngine`. */
export interface JobEngine {
  use<T>(
    job: (networks: NetworkRunner) => Promise<T>,
    options?: { readonly large?: () => boolean },
  ): Promise<T>;
}

/** Options of {@linkcode videoJobRunner}: where the networks come from, and each job's options. */
export type VideoJobRunnerOptions =
  & Pick<
    VideoJobOptions,
    "images" | "model" | "maxPixels" | "tempDir" | "unetBatch" | "encodeTimeoutMs"
  >
  & (
    | {
      /** The network runner for each job (e.g. an `InferenceEngine`'s `acquire`). */
      readonly networks: () => Promise<NetworkRunner>;
    }
    | {
      /**
       * Each job runs inside `engine.use` (which replaces a dead process, and recycles one that a
       * large job left holding memory).
       */
      readonly engine: JobEngine;
      /** Whether a job of this shape counts as large (see `InferenceEngine.use`). */
      readonly largeJob?: (shape: GeneratedShape) => boolean;
    }
  );

/**
 * A {@linkcode VideoJobRunner} that runs {@linkcode runVideoJob} on the network runner of
 * `options.networks()`, or inside `options.engine.use` for every job.
 */
export function videoJobRunner(options: VideoJobRunnerOptions): VideoJobRunner {
  return (image, spec, { signal, onEvent }) => {
    const run = (networks: NetworkRunner, onShape?: (shape: GeneratedShape) => void) =>
      runVideoJob(image, spec, {
        images: options.images,
        networks,
        model: options.model,
        maxPixels: options.maxPixels,
        tempDir: options.tempDir,
        unetBatch: options.unetBatch,
        encodeTimeoutMs: options.encodeTimeoutMs,
        signal,
        onEvent: (event) => {
          if (event.type === "started") {
            const { frames, width, height } = event;
            const { numSteps: steps, decodingT } = spec.params;
            onShape?.({ frames, width, height, steps, decodingT });
          }
          onEvent(event);
        },
      });
    if ("networks" in options) return options.networks().then((networks) => run(networks));
    let shape: GeneratedShape | undefined;
    const { largeJob } = options;
    return options.engine.use((networks) => run(networks, (s) => shape = s), {
      large: largeJob && (() => shape !== undefined && largeJob(shape)),
    });
  };
}
