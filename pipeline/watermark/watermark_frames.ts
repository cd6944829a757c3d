/**
 * The watermark step of a generation: every output frame marked before it is saved or encoded,
 * as sgm's sampling script does, without holding the event loop for more than one frame at a time
 * (about 7 ms for 1024×576 on one CPU core; `deno task bench watermark`).
 *
 * @module
 */

import { GenerationCancelledError } from "../errors.ts";
import { embedWatermark } from "./embed_watermark.ts";
import { SGM_WATERMARK_BITS } from "./message.ts";
import { watermarkBlocks } from "./read_watermark.ts";

/**
 * Embeds sgm's watermark into each frame, **in place**, yielding to the event loop between
 * frames.
 *
 * @param frames `[height, width, 3]` RGB bytes each
 * @returns false when the frames are too small to carry the 48 bits (fewer than 48 blocks of 8×8
 *   pixels) and were left as they were, else true
 * @throws {GenerationCancelledError} when `signal` fires (checked between frames)
 * @throws {RangeError} for a frame of the wrong size
 *
 * @example
 * ```ts
 * import { watermarkFrames } from "./watermark_frames.ts";
 * const frames = Array.from({ length: 14 }, () => new Uint8Array(576 * 1024 * 3).fill(90));
 * await watermarkFrames(frames, 1024, 576); // true
 * ```
 */
export async function watermarkFrames(
  frames: readonly Uint8Array[],
  width: number,
  height: number,
  options: { readonly signal?: AbortSignal } = {},
): Promise<boolean> {
  if (watermarkBlocks(width, height) < SGM_WATERMARK_BITS.length) return false;
  for (const frame of frames) {
    if (options.signal?.aborted) {
      throw new GenerationCancelledError("Cancelled while watermarking", {
        cause: options.signal.reason,
      });
    }
    embedWatermark(frame, width, height);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return true;
}
