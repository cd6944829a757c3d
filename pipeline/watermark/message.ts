/**
 * The message sgm stamps into every frame, and how sgm's detector judges a read-back.
 *
 * sgm (`sgm/inference/helpers.py`, `scripts/demo/detect.py`): "a fixed 48-bit message that was
 * chosen at random", `0xB3EC907BB19E`, embedded as the bits of `bin(message)[2:]`, most
 * significant first (the leading bit is 1, so `bin` drops no zero). `imwatermark` is told the
 * bits directly (`set_watermark("bits", …)`), so no byte packing is involved.
 *
 * @module
 */

/** sgm's watermark message, `0xB3EC907BB19E`. */
export const SGM_WATERMARK_MESSAGE = 0xB3EC907BB19En;

/** The 48 message bits in embedding order, most significant first (bit 0 of the list is 1). */
export const SGM_WATERMARK_BITS: readonly (0 | 1)[] = Object.freeze(
  Array.from({ length: 48 }, (_, i) => Number((SGM_WATERMARK_MESSAGE >> BigInt(47 - i)) & 1n)) as (
    | 0
    | 1
  )[],
);

/** sgm's verdict for a number of matching bits (`detect.py`'s `MATCH_VALUES`). */
export type WatermarkVerdict = "none" | "partial" | "likely" | "very likely";

/**
 * The verdict `scripts/demo/detect.py` prints for `matched` of 48 bits: at most 27 "No watermark
 * detected", 28–33 "Partial watermark match", 34–35 "Likely watermarked" (0.02 % of their 10,000
 * real images), 36–48 "Very likely watermarked" (none of them).
 *
 * @example
 * ```ts
 * import { sgmVerdict } from "./message.ts";
 * sgmVerdict(48); // "very likely"
 * sgmVerdict(24); // "none"
 * ```
 */
export function sgmVerdict(matched: number): WatermarkVerdict {
  if (matched <= 27) return "none";
  if (matched <= 33) return "partial";
  if (matched <= 35) return "likely";
  return "very likely";
}

/** Bits matching sgm's message, at least this many: sgm's "very likely" (no false positive in their test). */
export const FOUND_MATCHING_BITS = 36;

/**
 * How many of `bits` equal the message's bit at the same position.
 *
 * @throws {RangeError} when the lengths differ
 */
export function matchingBits(
  bits: ArrayLike<number>,
  message: readonly number[] = SGM_WATERMARK_BITS,
): number {
  if (bits.length !== message.length) {
    throw new RangeError(`Expected ${message.length} bits to compare, got ${bits.length}`);
  }
  let matched = 0;
  for (let i = 0; i < bits.length; i++) if (bits[i] === message[i]) matched++;
  return matched;
}
