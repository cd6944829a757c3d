/**
 * Stamps sgm's invisible watermark into an RGB frame: `imwatermark`'s `dwtDct` method with sgm's
 * settings (U channel, one Haar level, approximation band, 4×4 blocks, step 36, the 48-bit message
 * repeated over the blocks in row-major order), written so that `imwatermark`'s own decoder, and
 * therefore sgm's `detect.py`, reads every block.
 *
 * ## What the official decoder reads, and how we write exactly that
 *
 * The decoder (`read_watermark.ts`) takes an 8-bit frame, converts it with cv2's integer
 * BGR→YUV (`cv2_yuv.ts`), takes the Haar approximation band of U (`haar.ts`) and reads each
 * block's strongest coefficient modulo 36 (`block_code.ts`). The embedder computes that very band
 * from the frame it is given — same integer U, same float64 Haar sums — chooses each block's new
 * values (`markLevels`, `clipToLevel`) and moves the frame's pixels so that the decoder's band
 * follows:
 *
 * - A coefficient is the Haar sum of a 2×2 patch of U, so moving it by Δ means moving the patch's
 *   U sum by 2Δ (the detail bands may change; the decoder never looks at them).
 * - U moves by 0.492 per unit of blue when green moves against it (−0.194 per unit of blue) to
 *   hold the luma; red, and with it V, stays (cv2's own YUV→BGR with Y and V held moves blue and
 *   green by 2.032·ΔU and −0.395·ΔU, the same thing).
 * - The patch's pixels take equal shares of what is still missing, each share measured with the
 *   decoder's integer arithmetic after rounding, so rounding and a pixel whose blue (or green)
 *   is pinned at 0 or 255 are made up by the others; the patch lands within ±0.5 of its target.
 * - Each block is then read back as the decoder would read it; where pinned pixels kept it from
 *   its level, the next cheapest level is written instead.
 *
 * ## Where this differs from sgm's `WatermarkEmbedder`, and why
 *
 * 1. **Domain.** sgm calls `encoder.encode(frame, "dwtDct")` on **float32** frames in [0, 255]
 *    (before its `astype(uint8)`). For float input cv2's BGR→YUV adds 0.5, not 128, to U, so sgm
 *    embeds in a U plane centred on 0.5 while the decoder reads one centred on 128: the carrier sgm
 *    picks (largest |U − 0.5|) is the decoder's (largest U) only where the block's extreme chroma
 *    is bluish, the 36-grid is shifted by 255 (≡ 3), and negative carriers read inverted. sgm
 *    also writes the detail bands back swapped (`idwt2((ca, (v, h, d)))`), which transposes every
 *    2×2 patch of U. We embed in the decoder's own domain and touch only the coefficients written.
 * 2. **Level.** The reference always takes `⌊|v|/36⌋`, which mostly moves the carrier *down*, and
 *    in smooth blocks a neighbour then overtakes it. `markBlock` picks the cheapest of that level
 *    and the ones a step below and above, and clips any coefficient that would stand above it.
 *    The decoder is the same; only which block values it finds differs.
 *
 * Measured (`deno task bench watermark`, README): on a smooth 1024×576 clip sgm's own embedder
 * (run through OpenCV 4.6.0 and PyWavelets) is read as 27 of 48 bits — not detected — while ours
 * reads 48 of 48, also after our default mp4 encode; on a textured clip both read 48 of 48
 * losslessly, at about the same PSNR (40–41.5 dB).
 *
 * Frames below 256×256 pixels are refused by `imwatermark` ("image too small"); the algorithm
 * itself only needs a block per bit, so frames with at least 48 blocks (⌊H/8⌋·⌊W/8⌋ ≥ 48, e.g.
 * 56×56 or the demo's 128×64) are marked, and only our detector reads those.
 *
 * @module
 */

import { clipToLevel, markLevels, readBlock } from "./block_code.ts";
import { G_PER_B, U_PER_B, uOfPixel } from "./cv2_yuv.ts";
import { HAAR_TAP } from "./haar.ts";
import { SGM_WATERMARK_BITS } from "./message.ts";
import { checkFrame, forEachBlock, watermarkBlocks } from "./read_watermark.ts";

/**
 * Embeds `bits` (default sgm's message) into an RGB frame, **in place**.
 *
 * @param rgb `[height, width, 3]` RGB bytes, row-major; changed in place
 * @returns the number of blocks marked: ⌊H/8⌋·⌊W/8⌋, or 0 when that is fewer than the bits (the
 *   frame is then left as it was)
 * @throws {RangeError} when `rgb` does not hold width × height pixels
 *
 * @example
 * ```ts
 * import { embedWatermark } from "./embed_watermark.ts";
 * const frame = new Uint8Array(576 * 1024 * 3).fill(128);
 * embedWatermark(frame, 1024, 576); // 9216 blocks, 192 per bit
 * ```
 */
export function embedWatermark(
  rgb: Uint8Array,
  width: number,
  height: number,
  bits: readonly (0 | 1)[] = SGM_WATERMARK_BITS,
): number {
  checkFrame(rgb, width, height);
  if (watermarkBlocks(width, height) < bits.length) return 0;
  return embedBlockRows(rgb, width, height, [0, Math.floor(height / 8)], bits);
}

/**
 * {@linkcode embedWatermark} for the blocks of some block rows only (8 pixel rows each), so that
 * a frame can be marked a strip at a time; marking all strips in any order equals marking the
 * frame. The caller checks the frame's size.
 *
 * @param blockRows `[start, end)`, within `[0, ⌊height / 8⌋)`
 * @returns the number of blocks marked
 */
export function embedBlockRows(
  rgb: Uint8Array,
  width: number,
  height: number,
  blockRows: readonly [start: number, end: number],
  bits: readonly (0 | 1)[] = SGM_WATERMARK_BITS,
): number {
  // The strip's band is computed before any pixel moves; each block owns its own 8×8 pixels.
  const marked = new Float64Array(16);
  const values = new Float64Array(16);
  const undo = { pixel: new Int32Array(64), green: new Uint8Array(64), blue: new Uint8Array(64) };
  return forEachBlock(rgb, width, height, (block, n, top, left) => {
    const bit = bits[n % bits.length];
    const levels = markLevels(block, bit);
    // The cheapest level nearly always reads back; where blue is pinned at 0 or 255 it may not,
    // and the next level is tried (failing all, the cheapest is written and left).
    for (let attempt = 0; attempt <= levels.length; attempt++) {
      const last = attempt === levels.length;
      clipToLevel(block, levels[last ? 0 : attempt], marked);
      let undone = 0;
      for (let p = 0; p < 16; p++) {
        values[p] = block[p];
        if (marked[p] === block[p]) continue;
        const row = top + 2 * (p >> 2);
        const col = left + 2 * (p & 3);
        for (let k = 0; k < 4; k++, undone++) {
          const i = 3 * ((row + (k >> 1)) * width + col + (k & 1));
          undo.pixel[undone] = i;
          undo.green[undone] = rgb[i + 1];
          undo.blue[undone] = rgb[i + 2];
        }
        movePatchU(rgb, width, row, col, 2 * (marked[p] - block[p]));
        values[p] = patchValue(rgb, width, row, col);
      }
      if (last || readBlock(values) === bit) break;
      for (let k = 0; k < undone; k++) {
        rgb[undo.pixel[k] + 1] = undo.green[k];
        rgb[undo.pixel[k] + 2] = undo.blue[k];
      }
    }
  }, blockRows);
}

/** The band value the decoder computes from the 2×2 patch at (`row`, `col`) (pywt's order). */
function patchValue(rgb: Uint8Array, width: number, row: number, col: number): number {
  const s = HAAR_TAP;
  const i = (row * width + col) * 3;
  const j = i + width * 3;
  const topLeft = uOfPixel(rgb[i], rgb[i + 1], rgb[i + 2]);
  const topRight = uOfPixel(rgb[i + 3], rgb[i + 4], rgb[i + 5]);
  const bottomLeft = uOfPixel(rgb[j], rgb[j + 1], rgb[j + 2]);
  const bottomRight = uOfPixel(rgb[j + 3], rgb[j + 4], rgb[j + 5]);
  return s * (s * topLeft + s * bottomLeft) + s * (s * topRight + s * bottomRight);
}

/**
 * Moves the sum of the decoder's U over the 2×2 patch at (`row`, `col`) by `change` (a
 * coefficient's change Δ is a change of 2Δ in its patch's U sum). Each pixel takes an equal share
 * of what is left, measured with the decoder's own integer arithmetic after rounding, so rounding
 * and a pixel whose blue is already at 0 or 255 are made up by the pixels after it; a second pass
 * takes what remains.
 */
function movePatchU(rgb: Uint8Array, width: number, row: number, col: number, change: number) {
  let remaining = change;
  for (let pass = 0; pass < 2; pass++) {
    for (let k = 0; k < 4 && Math.abs(remaining) >= 0.5; k++) {
      const pixel = (row + (k >> 1)) * width + col + (k & 1);
      remaining -= moveU(rgb, 3 * pixel, remaining / (4 - k));
    }
  }
}

/**
 * Moves one pixel's U by about `want` holding its luma: blue moves, green moves against it. Blue
 * moves only as far as green can follow (green at 0 cannot take a rise in blue), so a pixel
 * that cannot hold its luma takes less and its patch's other pixels take the rest.
 *
 * @returns the change in U the decoder sees
 */
function moveU(rgb: Uint8Array, i: number, want: number): number {
  const before = uOfPixel(rgb[i], rgb[i + 1], rgb[i + 2]);
  const [green, blue] = [rgb[i + 1], rgb[i + 2]];
  const greenRoom = (want > 0 ? green + 0.5 : 255.5 - green) / -G_PER_B;
  const dB = Math.sign(want) * Math.min(Math.abs(want) / U_PER_B, greenRoom);
  rgb[i + 2] = toByte(blue + dB);
  rgb[i + 1] = toByte(green + (rgb[i + 2] - blue) * G_PER_B); // for the blue it got
  return uOfPixel(rgb[i], rgb[i + 1], rgb[i + 2]) - before;
}

function toByte(value: number): number {
  const rounded = Math.round(value);
  return rounded < 0 ? 0 : rounded > 255 ? 255 : rounded;
}
