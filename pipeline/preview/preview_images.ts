/**
 * Progress previews as small PNG data URLs: each frame of a latent through
 * {@linkcode latentToRgb} (one RGB pixel per latent pixel, 72 × 128 at 576 × 1024), encoded with
 * {@linkcode encodePng}, halved with a 2 × 2 box filter until it fits a byte budget.
 *
 * Why PNG and halving rather than JPEG: on a 72 × 128 frame a smooth latent encodes to a few
 * kilobytes, and white-noise latents (the worst case) to ~27.7 KB, which one halving brings to
 * ~6.8 KB; encoding takes ~1.5 ms a frame. `jpeg-js` at quality 75 keeps the full size of noise
 * at ~11 KB but takes ~9 ms a frame (≈ 0.2 s a step for 25 frames, on the event loop), and is
 * lossy where the previews are already coarse.
 *
 * @module
 */

import { encodePng } from "../image/png_encode.ts";
import { type Tensor } from "../tensor.ts";
import { latentToRgb } from "./latent_preview.ts";

/** Options of {@linkcode encodePreviewFrames}. */
export interface PreviewOptions {
  /** Largest PNG (bytes, before base64) per frame; default 16384, at least 256. */
  readonly maxBytes?: number;
  /** Halve a frame first until its longer side is at most this; default: no limit. */
  readonly maxSide?: number;
}

/**
 * One `data:image/png;base64,…` URL per frame of a latent. A frame is kept at the latent's
 * resolution unless it breaks `maxSide` or its PNG exceeds `maxBytes`; then it is halved
 * (2 × 2 box average, odd sides rounded down) and re-encoded until it fits. Frames are sized
 * independently, so a noisy frame may come out smaller than its neighbours.
 *
 * @param x0 `[T, 4, h, w]` latent in the UNet's (scaled) space, e.g. the denoised estimate
 * @returns T data URLs, frame order
 * @throws {RangeError} for a latent that is not `[T, 4, h, w]`, `maxBytes` < 256 or a
 *   `maxSide` that is not a positive integer
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { encodePreviewFrames } from "./preview_images.ts";
 * const [url] = encodePreviewFrames(tensor([1, 4, 72, 128]));
 * url.startsWith("data:image/png;base64,"); // true (a grey 128×72 PNG)
 * ```
 */
export function encodePreviewFrames(x0: Tensor, options: PreviewOptions = {}): string[] {
  const maxBytes = options.maxBytes ?? 16384;
  const maxSide = options.maxSide ?? Infinity;
  if (!(maxBytes >= 256)) {
    throw new RangeError(`maxBytes must be at least 256, got ${maxBytes}`);
  }
  if (!(maxSide === Infinity || (Number.isInteger(maxSide) && maxSide >= 1))) {
    throw new RangeError(`maxSide must be a positive integer, got ${maxSide}`);
  }
  const [, , h, w] = x0.dims;
  return latentToRgb(x0).map((rgb) => {
    let frame = { rgb, width: w, height: h };
    while (Math.max(frame.width, frame.height) > maxSide) frame = halve(frame);
    let png = encodePng(frame.rgb, frame.width, frame.height);
    // a 1×1 PNG is 69 bytes, so this ends below the 256-byte floor
    while (png.length > maxBytes && (frame.width > 1 || frame.height > 1)) {
      frame = halve(frame);
      png = encodePng(frame.rgb, frame.width, frame.height);
    }
    return `data:image/png;base64,${base64(png)}`;
  });
}

interface Frame {
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** 2 × 2 box average to ⌊w/2⌋ × ⌊h/2⌋ (at least 1; a side of 1 stays 1). */
function halve({ rgb, width, height }: Frame): Frame {
  const w = Math.max(1, width >> 1);
  const h = Math.max(1, height >> 1);
  const dx = width > 1 ? 1 : 0;
  const dy = height > 1 ? 1 : 0;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const r0 = (y * (1 + dy)) * width; // [h, 2, w, 2, 3] -> [h, w, 3]
    const r1 = r0 + dy * width;
    for (let x = 0; x < w; x++) {
      const c0 = x * (1 + dx);
      const c1 = c0 + dx;
      for (let c = 0; c < 3; c++) {
        const sum = rgb[(r0 + c0) * 3 + c] + rgb[(r0 + c1) * 3 + c] + rgb[(r1 + c0) * 3 + c] +
          rgb[(r1 + c1) * 3 + c];
        out[(y * w + x) * 3 + c] = (sum + 2) >> 2;
      }
    }
  }
  return { rgb: out, width: w, height: h };
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
