/**
 * Judging frames and whole clips for sgm's watermark: each frame read as `imwatermark` reads it
 * and scored as sgm's `detect.py` scores it, plus a clip-level reading that pools every frame's
 * block votes (a codec may blur the mark out of some frames but rarely out of all of them).
 *
 * The clip-level reading uses the same 36-of-48 threshold as a single image. That is sound: an
 * unmarked clip's frames are alike, so its pooled bits are no more likely to match the message
 * than one frame's (sgm found no unmarked image at 36 or more in 10,000).
 *
 * @module
 */

import {
  FOUND_MATCHING_BITS,
  matchingBits,
  SGM_WATERMARK_BITS,
  sgmVerdict,
  type WatermarkVerdict,
} from "./message.ts";
import { readWatermark } from "./read_watermark.ts";

/** One frame's reading. */
export interface FrameDetection {
  /** 0-based position among the frames given. */
  readonly index: number;
  readonly width: number;
  readonly height: number;
  /** Bits equal to sgm's message, 0..48. */
  readonly matched: number;
  readonly verdict: WatermarkVerdict;
  /** Fewer than 48 blocks: some bits have no block and read 0. */
  readonly tooSmall: boolean;
}

/** A clip's (or a set of frames') reading. */
export interface ClipDetection {
  readonly frames: readonly FrameDetection[];
  /** Bits of the pooled reading. */
  readonly bits: readonly (0 | 1)[];
  /** Pooled bits equal to sgm's message. */
  readonly matched: number;
  readonly verdict: WatermarkVerdict;
  /** The pooled reading matches at least {@linkcode FOUND_MATCHING_BITS} bits. */
  readonly found: boolean;
}

/**
 * Reads frames one at a time and pools their votes.
 *
 * @example
 * ```ts
 * import { embedWatermark, WatermarkDetector } from "./mod.ts";
 * const detector = new WatermarkDetector();
 * const frame = new Uint8Array(256 * 256 * 3).fill(100);
 * embedWatermark(frame, 256, 256);
 * detector.add(frame, 256, 256).matched; // 48
 * detector.result().found; // true
 * ```
 */
export class WatermarkDetector {
  readonly #frames: FrameDetection[] = [];
  readonly #ones = new Array<number>(SGM_WATERMARK_BITS.length).fill(0);
  readonly #votes = new Array<number>(SGM_WATERMARK_BITS.length).fill(0);

  /**
   * Reads one frame.
   *
   * @param rgb `[height, width, 3]` RGB bytes
   * @throws {RangeError} when `rgb` does not hold width × height pixels
   */
  add(rgb: Uint8Array, width: number, height: number): FrameDetection {
    const reading = readWatermark(rgb, width, height, SGM_WATERMARK_BITS.length);
    reading.votes.forEach((votes, k) => {
      if (votes === 0) return;
      this.#votes[k] += votes;
      this.#ones[k] += reading.ones[k] * votes;
    });
    const matched = matchingBits(reading.bits);
    const frame: FrameDetection = {
      index: this.#frames.length,
      width,
      height,
      matched,
      verdict: sgmVerdict(matched),
      tooSmall: reading.votes.some((votes) => votes === 0),
    };
    this.#frames.push(frame);
    return frame;
  }

  /** The frames so far, and their pooled reading. */
  result(): ClipDetection {
    const bits = this.#ones.map((ones, k) =>
      ((ones / this.#votes[k]) * 255 > 127 ? 1 : 0) as 0 | 1
    );
    const matched = matchingBits(bits);
    return {
      frames: [...this.#frames],
      bits,
      matched,
      verdict: sgmVerdict(matched),
      found: this.#frames.length > 0 && matched >= FOUND_MATCHING_BITS,
    };
  }
}
