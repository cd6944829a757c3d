/**
 * An uploaded or local image file → the model's input tensor: header check, decode, size policy,
 * `[1, 3, H, W]` in [-1, 1].
 *
 * @module
 */

import type { Tensor } from "../tensor.ts";
import { decodeImage } from "./decode_image.ts";
import { imageToTensor } from "./image_tensor.ts";
import { planResize, type SizePolicy } from "./size_policy.ts";

/** Options of {@linkcode prepareImage}. */
export interface PrepareImageOptions {
  /** Target width and height (multiples of 64; `native` ignores them). */
  readonly width: number;
  readonly height: number;
  readonly policy: SizePolicy;
  /** Refuse images with more pixels than this, before decoding. */
  readonly maxPixels: number;
  /** ffmpeg executable for WebP input; default `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
  /** Stops a WebP decode (kills ffmpeg). */
  readonly signal?: AbortSignal;
}

/** A prepared image. */
export interface PreparedImage {
  /** `[1, 3, H, W]` in [-1, 1]. */
  readonly tensor: Tensor;
  readonly width: number;
  readonly height: number;
  /** Size of the file's image before the size policy. */
  readonly sourceWidth: number;
  readonly sourceHeight: number;
}

/**
 * Validates and decodes `bytes` (PNG, JPEG, WebP), applies the size policy and makes the tensor,
 * on the calling thread. `ImagePool.prepare` runs exactly this in a worker.
 *
 * @throws {ImageTooLargeError | CorruptImageError | UnsupportedImageError} as `decodeImage`
 * @throws {RangeError} for a target size that is not a positive multiple of 64
 *
 * @example
 * ```ts
 * import { prepareImage } from "./prepare_image.ts";
 * const bytes = Deno.readFileSync("tests/fixtures/tiny/input.png");
 * const prepared = await prepareImage(bytes, {
 *   width: 128,
 *   height: 64,
 *   policy: "cover",
 *   maxPixels: 16e6,
 * });
 * prepared.tensor.dims; // [1, 3, 64, 128]
 * ```
 */
export async function prepareImage(
  bytes: Uint8Array,
  options: PrepareImageOptions,
): Promise<PreparedImage> {
  const image = await decodeImage(bytes, {
    maxPixels: options.maxPixels,
    ffmpegPath: options.ffmpegPath,
    signal: options.signal,
  });
  const plan = planResize(image, {
    targetWidth: options.width,
    targetHeight: options.height,
    policy: options.policy,
  });
  return {
    tensor: imageToTensor(image.rgb, image.width, image.height, plan),
    width: plan.width,
    height: plan.height,
    sourceWidth: image.width,
    sourceHeight: image.height,
  };
}
