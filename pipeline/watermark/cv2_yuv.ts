/**
 * OpenCV's `cvtColor(bgr, COLOR_BGR2YUV)` for 8-bit images, in integers exactly as OpenCV 4.x
 * computes it (`RGB2YCrCb_i` in `color_yuv.simd.hpp`; IPP is disabled for this conversion), which
 * is what `imwatermark`'s decoder sees after `cv2.imread`:
 *
 * ```
 * Y = (1868·B + 9617·G + 4899·R + 2^13) >> 14          0.114, 0.587, 0.299 in Q14
 * U = ((B − Y)·8061  + 128·2^14 + 2^13) >> 14, clamped  0.492 in Q14
 * V = ((R − Y)·14369 + 128·2^14 + 2^13) >> 14, clamped  0.877 in Q14
 * ```
 *
 * (cv2's *float* conversion adds 0.5 instead of 128; sgm's embedder runs on float frames, see
 * `embed.ts` for why that matters.) Only the luma and U planes are needed: sgm's settings never
 * touch V.
 *
 * @module
 */

const SHIFT = 14;
const ROUND = 1 << (SHIFT - 1);
const B_TO_Y = 1868;
const G_TO_Y = 9617;
const R_TO_Y = 4899;
const B_TO_U = 8061;
const R_TO_V = 14369;
const HALF = 128 << SHIFT;

/**
 * `U` change per unit change of `B` with Y held: d(B − Y)/dB · 0.492, where keeping Y needs
 * `dG = −(1868 / 9617) dB` (R untouched). Its inverse is what the embedder adds to B per unit of U.
 */
export const U_PER_B = B_TO_U / (1 << SHIFT);
/** G change per unit change of B that keeps Y (the luma) where it was. */
export const G_PER_B = -B_TO_Y / G_TO_Y;

/**
 * One pixel through cv2's 8-bit BGR→YUV.
 *
 * @example
 * ```ts
 * import { yuvOfPixel } from "./cv2_yuv.ts";
 * yuvOfPixel(30, 200, 10); // [128, 70, 42], as cv2.cvtColor gives for BGR (10, 200, 30)
 * ```
 */
export function yuvOfPixel(r: number, g: number, b: number): [y: number, u: number, v: number] {
  const y = (B_TO_Y * b + G_TO_Y * g + R_TO_Y * r + ROUND) >> SHIFT;
  const u = ((b - y) * B_TO_U + HALF + ROUND) >> SHIFT;
  const v = ((r - y) * R_TO_V + HALF + ROUND) >> SHIFT;
  return [y, clampByte(u), clampByte(v)];
}

/**
 * One pixel's U through cv2's 8-bit BGR→YUV.
 *
 * @example
 * ```ts
 * import { uOfPixel } from "./cv2_yuv.ts";
 * uOfPixel(30, 200, 10); // 70
 * ```
 */
export function uOfPixel(r: number, g: number, b: number): number {
  const y = (B_TO_Y * b + G_TO_Y * g + R_TO_Y * r + ROUND) >> SHIFT;
  // (B − Y)·8061 + 128·2^14 ≥ −255·8061 + 2^21 > 0 and ≤ 255·8061 + 2^21 < 254·2^14: the shift is
  // a floor of a positive number and never leaves 0..253, so no clamp is needed.
  return ((b - y) * B_TO_U + HALF + ROUND) >> SHIFT;
}

/**
 * The U plane of the top-left `rows` × `cols` pixels, as cv2 computes it.
 *
 * @param rgb `[height, width, 3]` RGB bytes, row-major
 * @returns `[rows, cols]` U values 0..255
 */
export function uPlane(rgb: Uint8Array, width: number, rows: number, cols: number): Uint8Array {
  const u = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0, p = r * width * 3, o = r * cols; c < cols; c++, p += 3, o++) {
      u[o] = uOfPixel(rgb[p], rgb[p + 1], rgb[p + 2]);
    }
  }
  return u;
}

function clampByte(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : value;
}
