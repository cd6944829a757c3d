/**
 * How an input image of any size becomes the model's input size: a crop rectangle in source
 * pixels and an output size whose sides are multiples of 64 (the VAE downsamples by 8 and the
 * UNet by 8 more). SVD was trained at 1024 × 576 (width × height).
 *
 * | policy | does | reference |
 * |---|---|---|
 * | `cover` (default) | scale to cover the target, centre-crop to exactly the target | sgm streamlit demo |
 * | `contain` | scale to fit inside the target, sides rounded down to multiples of 64 | — |
 * | `stretch` | resize to the target, aspect ignored | diffusers |
 * | `native` | keep the size (scaled down to the limits if over them), sides rounded down to multiples of 64 by resizing | sgm `simple_video_sample.py` |
 *
 * Every policy's output lies within the generation limits: each side 64..{@linkcode MAX_SIDE}
 * (`width` and `height`'s allowed range) and at most `maxPixels`. The targets of `cover`,
 * `contain` and `stretch` are checked where requests are resolved; `native` takes its size from
 * the image, so it is bounded here (a 4000×4000 upload once became a 3968×3968 generation).
 *
 * @module
 */

/** The largest side of a generation: `width` and `height`'s limit (`SAMPLING_LIMITS`). */
export const MAX_SIDE = 2048;

/** Names of the size policies; see {@linkcode planResize}. */
export const SIZE_POLICIES = ["cover", "contain", "stretch", "native"] as const;

/** A size policy; see {@linkcode planResize}. */
export type SizePolicy = (typeof SIZE_POLICIES)[number];

/** A rectangle of whole source pixels. */
export interface CropRect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** Take `crop` from the source and resize it to `width` × `height` (multiples of 64, ≥ 64). */
export interface ResizePlan {
  readonly crop: CropRect;
  readonly width: number;
  readonly height: number;
}

/** Options of {@linkcode planResize}. */
export interface SizePolicyOptions {
  /** Multiple of 64; default 1024. Ignored by `native`. */
  readonly targetWidth?: number;
  /** Multiple of 64; default 576. Ignored by `native`. */
  readonly targetHeight?: number;
  /** Default `"cover"`. */
  readonly policy?: SizePolicy;
  /** Largest output side for `native`, a multiple of 64 (default {@linkcode MAX_SIDE}). */
  readonly maxSide?: number;
  /** Largest output width × height for `native` (default `maxSide`²). */
  readonly maxPixels?: number;
}

/**
 * Plans the crop and resize from an image's size to the model's.
 *
 * - `cover`: the output is the target, exactly. The source is centre-cropped to the target's
 *   aspect ratio (a wider image loses its left and right edges, a taller one its top and
 *   bottom; the crop is rounded to whole pixels), then scaled, up or down, to the target. This
 *   is the streamlit demo's area-resize + centre-crop to 1024 × 576. **Orientation follows the
 *   input**: a portrait source (height > width) with a landscape target gets the target
 *   swapped to portrait (576 × 1024), and a landscape source with a portrait target the
 *   reverse; a square source or target keeps the target as given.
 * - `contain`: orientation as in `cover`. The source is scaled, up or down, to the largest size
 *   that fits inside the target with its aspect ratio; each side is then rounded DOWN to a
 *   multiple of 64 (at least 64). The rounding is absorbed by centre-cropping the source to the
 *   rounded size's aspect ratio, so nothing is distorted: less than 64 output pixels' worth is
 *   cut from the rounded axis (a 10 : 1 panorama in 1024 × 576 fits as 1024 × 102.4, becomes
 *   1024 × 64 and keeps its central 16 : 1 band). Where the fitted side is under 64 it is
 *   lifted to 64 and the crop cuts the long axis instead (a 100 : 1 strip keeps its central
 *   16 : 1 part).
 * - `stretch`: the whole source resized to exactly the target as given (no orientation swap),
 *   aspect ratio ignored: what diffusers' pipeline does with 1024 × 576.
 * - `native`: the whole source, each side rounded DOWN to a multiple of 64 (at least 64) by
 *   resizing, aspect ratio distorted by the rounding (up to 63 pixels per side): sgm's
 *   `simple_video_sample.py`. The target is ignored; a source with a side over `maxSide` (2048)
 *   or more than `maxPixels` pixels is first scaled down, aspect kept, to the largest size within
 *   both (sgm would try to generate at the upload's size).
 *
 * @param source size of the decoded image, positive integers
 * @throws {RangeError} for a non-integer or non-positive source size, a target side that is
 *   not a positive multiple of 64, or an unknown policy
 *
 * @example
 * ```ts
 * import { planResize } from "./size_policy.ts";
 * planResize({ width: 1920, height: 1080 });
 * // { crop: { x: 0, y: 0, width: 1920, height: 1080 }, width: 1024, height: 576 }
 * planResize({ width: 1000, height: 1000 }, { policy: "cover" });
 * // { crop: { x: 0, y: 218, width: 1000, height: 563 }, width: 1024, height: 576 }
 * planResize({ width: 600, height: 800 }, { policy: "native" });
 * // { crop: { x: 0, y: 0, width: 600, height: 800 }, width: 576, height: 768 }
 * ```
 */
export function planResize(
  source: { readonly width: number; readonly height: number },
  options: SizePolicyOptions = {},
): ResizePlan {
  const { width, height } = source;
  if (!isPositiveInteger(width) || !isPositiveInteger(height)) {
    throw new RangeError(`Image size must be positive integers, got ${width}×${height}`);
  }
  const policy = options.policy ?? "cover";
  const targetWidth = options.targetWidth ?? 1024;
  const targetHeight = options.targetHeight ?? 576;
  const targets: [string, number][] = [["targetWidth", targetWidth], [
    "targetHeight",
    targetHeight,
  ]];
  for (const [name, value] of targets) {
    if (!isPositiveInteger(value) || value % 64 !== 0) {
      throw new RangeError(`${name} must be a positive multiple of 64, got ${value}`);
    }
  }
  const whole: CropRect = { x: 0, y: 0, width, height };
  switch (policy) {
    case "stretch":
      return { crop: whole, width: targetWidth, height: targetHeight };
    case "native": {
      const maxSide = options.maxSide ?? MAX_SIDE;
      const maxPixels = options.maxPixels ?? maxSide * maxSide;
      if (!isPositiveInteger(maxSide) || maxSide % 64 !== 0) {
        throw new RangeError(`maxSide must be a positive multiple of 64, got ${maxSide}`);
      }
      if (!(maxPixels >= 64 * 64)) {
        throw new RangeError(`maxPixels must be at least 4096 (64×64), got ${maxPixels}`);
      }
      // Scaled down (never up) to fit both limits, aspect kept, then rounded down to 64.
      const scale = Math.min(
        1,
        maxSide / width,
        maxSide / height,
        Math.sqrt(maxPixels / (width * height)),
      );
      let [outWidth, outHeight] = [roundDown64(width * scale), roundDown64(height * scale)];
      // The lift to 64 of a very thin image may push the other side's product over maxPixels.
      while (outWidth * outHeight > maxPixels) {
        if (outWidth >= outHeight) outWidth -= 64;
        else outHeight -= 64;
      }
      return { crop: whole, width: outWidth, height: outHeight };
    }
    case "cover": {
      const [tw, th] = followOrientation(width, height, targetWidth, targetHeight);
      return { crop: centreCrop(width, height, tw, th), width: tw, height: th };
    }
    case "contain": {
      const [tw, th] = followOrientation(width, height, targetWidth, targetHeight);
      // integer comparison of aspect ratios: is the source relatively wider than the target?
      const [outWidth, outHeight] = width * th >= height * tw
        ? [tw, roundDown64((height * tw) / width)]
        : [roundDown64((width * th) / height), th];
      return {
        crop: centreCrop(width, height, outWidth, outHeight),
        width: outWidth,
        height: outHeight,
      };
    }
    default:
      throw new RangeError(
        `Unknown size policy ${JSON.stringify(policy)}; expected one of ${
          SIZE_POLICIES.join(", ")
        }`,
      );
  }
}

/** Swaps the target when source and target orientations are strictly opposite. */
function followOrientation(
  width: number,
  height: number,
  targetWidth: number,
  targetHeight: number,
): [number, number] {
  const opposite = (height > width && targetWidth > targetHeight) ||
    (width > height && targetHeight > targetWidth);
  return opposite ? [targetHeight, targetWidth] : [targetWidth, targetHeight];
}

/** The largest centred rectangle of whole pixels with the aspect ratio `aspectW : aspectH`. */
function centreCrop(width: number, height: number, aspectW: number, aspectH: number): CropRect {
  let cropWidth = width;
  let cropHeight = height;
  if (width * aspectH > height * aspectW) { // source wider: cut left and right
    cropWidth = clamp(Math.round((height * aspectW) / aspectH), 1, width);
  } else { // source taller (or the same): cut top and bottom
    cropHeight = clamp(Math.round((width * aspectH) / aspectW), 1, height);
  }
  return {
    x: Math.floor((width - cropWidth) / 2),
    y: Math.floor((height - cropHeight) / 2),
    width: cropWidth,
    height: cropHeight,
  };
}

function roundDown64(size: number): number {
  return Math.max(64, Math.floor(size / 64) * 64);
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

function isPositiveInteger(value: number): boolean {
  return Number.isInteger(value) && value > 0;
}
