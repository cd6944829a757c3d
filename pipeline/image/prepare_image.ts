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
  /** ffmpeg binary for WebP input. */
  readonly ffmpeg?: string;
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

/** Decodes `bytes` (PNG, JPEG, WebP) and applies the size policy. */
export async function prepareImage(
  bytes: Uint8Array,
  options: PrepareImageOptions,
): Promise<PreparedImage> {
  const image = await decodeImage(bytes, { maxPixels: options.maxPixels, ffmpeg: options.ffmpeg });
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
