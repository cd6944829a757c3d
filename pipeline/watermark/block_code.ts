/**
 * How `imwatermark`'s `dwtDct` method (`EmbedMaxDct` in `imwatermark/maxDct.py`, version 0.2.0,
 * what sgm installs) reads one bit from one 4×4 block of the Haar approximation band, with sgm's
 * settings (`scales=[0, 36, 36]`, `block=4`), and how we write a block so that it reads right.
 *
 * - The **carrier** is the block's strongest coefficient other than the first: `argmax |b|` over
 *   the row-major positions 1..15 (numpy's argmax: the first of equal maxima).
 * - **Read**: 1 when `|carrier| mod 36 > 18`, else 0 (Python's float `%`, equal to `fmod` here).
 * - **The reference's write**: `v ← sign(v) · (⌊|v| / 36⌋ + 0.25 + 0.5·bit) · 36`, i.e. |v|
 *   moves to 9 (bit 0) or 27 (bit 1) within its 36-wide step ({@linkcode writeBit}).
 *
 * Despite the method's name no DCT is applied: the released `maxDct.py` quantises the Haar
 * coefficients themselves (upstream issue ShieldMnt/invisible-watermark#39; the fix, PR #43, is
 * unmerged). A decoder that inserted a 4×4 DCT would read sgm's marks as noise, so neither side
 * does here.
 *
 * The reference's write moves the carrier *down* most of the time (for bit 0 whenever
 * `|v| mod 36 > 9`), and in a smooth block another coefficient then stands above it: the decoder
 * reads that one instead, unmarked. Written that way (in the decoder's domain), 16 % of the blocks
 * of the textured test clip read wrong before any compression, and frames of the smooth one lose
 * 11 of 48 bits on average. {@linkcode markBlock} writes what the same decoder reads reliably.
 *
 * @module
 */

/** Quantisation step (sgm's `scales[1]`). */
export const WATERMARK_SCALE = 36;
/** Block side in the approximation band (`block=4`). */
export const WATERMARK_BLOCK = 4;

const CELLS = WATERMARK_BLOCK * WATERMARK_BLOCK;

/**
 * The position (1..15, row-major) of a block's carrier: the first maximum of |v| past position 0.
 *
 * @param block 16 coefficients, row-major
 *
 * @example
 * ```ts
 * import { carrierOf } from "./block_code.ts";
 * carrierOf([99, 1, -7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 2: |−7| first, position 0 skipped
 * ```
 */
export function carrierOf(block: ArrayLike<number>): number {
  let best = -1;
  let position = 1;
  for (let p = 1; p < CELLS; p++) {
    const magnitude = Math.abs(block[p]);
    if (magnitude > best) { // strict: the first maximum wins, as numpy's argmax
      best = magnitude;
      position = p;
    }
  }
  return position;
}

/**
 * The reference's carrier value for `bit`: `sign(v) · (⌊|v| / 36⌋ + 0.25 + 0.5·bit) · 36`.
 *
 * @example
 * ```ts
 * import { writeBit } from "./block_code.ts";
 * writeBit(100, 0); // 81 = (2 + 0.25) · 36
 * writeBit(100, 1); // 99 = (2 + 0.75) · 36
 * writeBit(-100, 1); // -99
 * ```
 */
export function writeBit(value: number, bit: 0 | 1): number {
  const magnitude = (Math.floor(Math.abs(value) / WATERMARK_SCALE) + 0.25 + 0.5 * bit) *
    WATERMARK_SCALE;
  return value >= 0 ? magnitude : -magnitude;
}

/**
 * The bit a carrier value reads as.
 *
 * @example
 * ```ts
 * import { readBit } from "./block_code.ts";
 * readBit(81); // 0
 * readBit(99); // 1
 * readBit(90); // 0: 90 mod 36 = 18 is not above 18
 * ```
 */
export function readBit(value: number): 0 | 1 {
  return Math.abs(value) % WATERMARK_SCALE > 0.5 * WATERMARK_SCALE ? 1 : 0;
}

/** The bit the decoder reads from a block: its carrier's. */
export function readBlock(block: ArrayLike<number>): 0 | 1 {
  return readBit(block[carrierOf(block)]);
}

/**
 * The levels a block's carrier can be moved to so that it reads `bit`, cheapest first: the
 * reference's level and the ones a step of 36 below and above it (magnitudes, > 0), each costed as
 * the total squared change of {@linkcode clipToLevel} (the reference's level wins a tie).
 *
 * @param block 16 coefficients, row-major
 *
 * @example
 * ```ts
 * import { markLevels } from "./block_code.ts";
 * // A smooth block, carrier 275 at position 1. The reference's bit-0 level, 261, would leave the
 * // 274s and 270s above it; clipping them all costs 14² + 2·13² + 12·9² = 1506. The level above,
 * // 297, costs 22² = 484 and clips nothing.
 * markLevels([270, 275, 274, 274, 270, 270, 270, 270, 270, 270, 270, 270, 270, 270, 270, 270], 0);
 * // [297, 261, 225]
 * ```
 */
export function markLevels(block: ArrayLike<number>, bit: 0 | 1): number[] {
  const carrier = carrierOf(block);
  const magnitude = Math.abs(block[carrier]);
  const reference = Math.abs(writeBit(magnitude, bit));
  const levels: number[] = [];
  const costs: number[] = [];
  for (const level of [reference, reference - WATERMARK_SCALE, reference + WATERMARK_SCALE]) {
    if (level <= 0) continue;
    let cost = (level - magnitude) ** 2;
    for (let p = 1; p < CELLS; p++) {
      const other = Math.abs(block[p]);
      if (p !== carrier && other > level) cost += (other - level) ** 2;
    }
    // insertion in cost order; an equal cost goes after, so the reference's level wins a tie
    let at = levels.length;
    while (at > 0 && costs[at - 1] > cost) at--;
    levels.splice(at, 0, level);
    costs.splice(at, 0, cost);
  }
  return levels;
}

/**
 * The block with its carrier moved to magnitude `level` and every other coefficient of magnitude
 * above `level` (positions 1..15) clipped to it, signs kept; position 0 is never read and never
 * changed. Whichever of the clipped coefficients the decoder then takes as the carrier, it sits at
 * `level` and reads the same bit, and so does anything within ±9 of it, which is what lets the
 * mark survive a codec's rounding.
 *
 * @param block 16 coefficients, row-major
 * @param out where to write the 16 results (may be a reused scratch array; not `block`)
 * @returns `out`
 *
 * @example
 * ```ts
 * import { clipToLevel } from "./block_code.ts";
 * clipToLevel([0, 50, 40, 30, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 45, new Float64Array(16));
 * // [0, 45, 40, 30, 20, 0, …]: the carrier 50 is moved, nothing stood above 45
 * clipToLevel([0, 50, 40, 30, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 27, new Float64Array(16));
 * // [0, 27, 27, 27, 20, 0, …]
 * ```
 */
export function clipToLevel(
  block: ArrayLike<number>,
  level: number,
  out: Float64Array = new Float64Array(CELLS),
): Float64Array {
  const carrier = carrierOf(block);
  for (let p = 0; p < CELLS; p++) {
    const clipped = p > 0 && (p === carrier || Math.abs(block[p]) > level);
    out[p] = clipped ? (block[p] < 0 ? -level : level) : block[p];
  }
  return out;
}

/**
 * The block rewritten at the cheapest of {@linkcode markLevels}: what the decoder reads as `bit`.
 *
 * @example
 * ```ts
 * import { markBlock, readBlock } from "./block_code.ts";
 * readBlock(markBlock([0, 50, 40, 30, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1)); // 1
 * ```
 */
export function markBlock(
  block: ArrayLike<number>,
  bit: 0 | 1,
  out: Float64Array = new Float64Array(CELLS),
): Float64Array {
  return clipToLevel(block, markLevels(block, bit)[0], out);
}
