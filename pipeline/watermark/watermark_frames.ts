/**
 * The watermark step of a generation: every output frame marked before it is saved or encoded,
 * as sgm's sampling script does, a strip of 64 pixel rows at a time with the event loop served
 * between strips, so a service stays responsive while it marks (`deno task bench watermark`
 * measures the cost and the longest stall).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { GenerationCancelledError } from "../errors.ts";
import { embedBlockRows } from "./embed_watermark.ts";
import { SGM_WATERMARK_BITS } from "./message.ts";
import { checkFrame, watermarkBlocks } from "./read_watermark.ts";

/** Block rows marked between two yields: 64 pixel rows, about 1/9 of a 1024×576 frame. */
const STRIP_BLOCK_ROWS = 8;

/**
 * Embeds sgm's watermark into each frame, **in place**, yielding to the event loop between
 * strips of 8 block rows (64 pixel rows).
 *
 * @param frames `[height, width, 3]` RGB bytes each
 * @returns false when the frames are too small to carry the 48 bits (fewer than 48 blocks of 8×8
 *   pixels) and were left as they were, else true
 * @throws {GenerationCancelledError} when `signal` fires (checked between strips)
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
  const blockRows = Math.floor(height / 8);
  for (const frame of frames) checkFrame(frame, width, height);
  for (const frame of frames) {
    for (let start = 0; start < blockRows; start += STRIP_BLOCK_ROWS) {
      if (options.signal?.aborted) {
        throw new GenerationCancelledError("Cancelled while watermarking", {
          cause: options.signal.reason,
        });
      }
      embedBlockRows(frame, width, height, [start, Math.min(start + STRIP_BLOCK_ROWS, blockRows)]);
      // setImmediate, not setTimeout(0): nested timeouts are clamped to 4 ms, which would add
      // ~0.9 s to a 25-frame 1024×576 clip for nothing.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return true;
}
