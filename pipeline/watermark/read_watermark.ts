/**
 * Reads the 48 bits back from one frame the way `imwatermark`'s `WatermarkDecoder("bits", 48)
 * .decode(bgr, "dwtDct")` does (what sgm's `scripts/demo/detect.py` runs):
 *
 * 1. cv2's 8-bit BGR→YUV (`cv2_yuv.ts`), U plane only, cropped to multiples of 4 pixels.
 * 2. The Haar approximation band of U in float64 (`haar.ts`).
 * 3. Its 4×4 blocks in row-major order; block `n` votes for bit `n mod 48` with its carrier's
 *    reading (`block_code.ts`).
 * 4. Bit k is 1 when `mean(votes) · 255 > 127`; a bit no block voted for reads 0 (numpy's mean of
 *    an empty list is NaN, and NaN > 127 is false).
 *
 * Checked against OpenCV 4.6.0 and PyWavelets 1.1.1 (sgm's pins): on 150 frames of 1024×576 the
 * per-bit vote shares came out identical to the last digit.
 *
 * @module
 */

import { readBlock, WATERMARK_BLOCK } from "./block_code.ts";
import { uPlane } from "./cv2_yuv.ts";
import { haarApproximation } from "./haar.ts";

/** What {@linkcode readWatermark} found in one frame. */
export interface WatermarkReading {
  /** The decoded bits, `length` of them. */
  readonly bits: (0 | 1)[];
  /** Per bit, the share of its blocks that read 1 (NaN where no block carried it). */
  readonly ones: number[];
  /** Per bit, how many blocks carried it. */
  readonly votes: number[];
  /** Number of 4×4 blocks read (⌊H/8⌋·⌊W/8⌋). */
  readonly blocks: number;
}

/**
 * Blocks a frame offers: `⌊height / 8⌋ · ⌊width / 8⌋` (the band of the ×4-cropped frame is half
 * its size, cut into 4×4 blocks).
 */
export function watermarkBlocks(width: number, height: number): number {
  return Math.floor(height / 8) * Math.floor(width / 8);
}

/**
 * Reads a watermark of `length` bits from an RGB frame.
 *
 * @param rgb `[height, width, 3]` RGB bytes, row-major
 * @throws {RangeError} when `rgb` does not hold width × height pixels
 *
 * @example
 * ```ts
 * import { embedWatermark, readWatermark } from "./mod.ts";
 * const frame = new Uint8Array(256 * 256 * 3).fill(100);
 * embedWatermark(frame, 256, 256);
 * readWatermark(frame, 256, 256).bits; // SGM_WATERMARK_BITS
 * ```
 */
export function readWatermark(
  rgb: Uint8Array,
  width: number,
  height: number,
  length = 48,
): WatermarkReading {
  checkFrame(rgb, width, height);
  const votes = new Array<number>(length).fill(0);
  const ones = new Array<number>(length).fill(0);
  const blocks = forEachBlock(rgb, width, height, (block, n) => {
    votes[n % length]++;
    ones[n % length] += readBlock(block);
  });
  const shares = ones.map((count, k) => count / votes[k]);
  const bits = shares.map((share) => (share * 255 > 127 ? 1 : 0) as 0 | 1);
  return { bits, ones: shares, votes, blocks };
}

/**
 * Calls `visit` with each 4×4 block of the frame's U approximation band, in the decoder's order:
 * `block` is a scratch array (16 values, row-major) reused between calls, `n` the block's number,
 * (`top`, `left`) the first pixel of the 8×8 pixels it is computed from. Value `p` of a block comes
 * from the 2×2 pixels at (`top + 2·⌊p/4⌋`, `left + 2·(p mod 4)`).
 *
 * @param blockRows visit only the blocks of these block rows, `[start, end)` (default all,
 *   `[0, ⌊height/8⌋)`); only their pixels are read
 * @returns the number of blocks visited
 */
export function forEachBlock(
  rgb: Uint8Array,
  width: number,
  height: number,
  visit: (block: Float64Array, n: number, top: number, left: number) => void,
  blockRows: readonly [start: number, end: number] = [0, Math.floor(height / 8)],
): number {
  const [first, end] = blockRows;
  const perRow = Math.floor(width / 8);
  const rows = 8 * (end - first); // pixel rows of the strip
  const cols = 8 * perRow;
  if (rows <= 0 || cols === 0) return 0;
  const strip = rgb.subarray(8 * first * width * 3);
  const band = haarApproximation(uPlane(strip, width, rows, cols), rows, cols); // [rows/2, cols/2]
  const bandCols = cols / 2;
  const block = new Float64Array(WATERMARK_BLOCK * WATERMARK_BLOCK);
  let visited = 0;
  for (let row = first; row < end; row++) {
    for (let column = 0; column < perRow; column++, visited++) {
      const origin = 4 * (row - first) * bandCols + 4 * column;
      for (let p = 0; p < block.length; p++) {
        block[p] = band[origin + (p >> 2) * bandCols + (p & 3)];
      }
      visit(block, row * perRow + column, 8 * row, 8 * column);
    }
  }
  return visited;
}

/** @throws {RangeError} when `rgb` is not `[height, width, 3]` */
export function checkFrame(rgb: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`A frame needs a positive whole width and height, got ${width}×${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `A ${width}×${height} RGB frame has ${width * height * 3} bytes, got ${rgb.length}`,
    );
  }
}
