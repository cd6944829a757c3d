/**
 * One level of the 2-D Haar wavelet transform, approximation band only, in float64 exactly as
 * PyWavelets' `pywt.dwt2(x, "haar")[0]` computes it for an integer image: first along rows
 * (axis 0), then along columns (axis 1), each output the two-tap sum `s·x₀ + s·x₁` with
 * `s = 0.7071067811865476` (float64 1/√2). Two-term sums are order-free in IEEE arithmetic, so
 *
 * ```
 * LL[i][j] = s·(s·x[2i][2j] + s·x[2i+1][2j]) + s·(s·x[2i][2j+1] + s·x[2i+1][2j+1])
 * ```
 *
 * is bit-for-bit pywt's value (≈ the 2×2 sum / 2; `s·s` is 0.5000000000000001, so it can differ
 * from the exact half-sum in the last place, which decides bits that sit exactly on a boundary).
 *
 * The synthesis side is linear: moving `LL[i][j]` by Δ with the detail bands unchanged moves each
 * of its four pixels by Δ·s·s = Δ/2, which is all the embedder needs of the inverse transform.
 *
 * @module
 */

/** float64 1/√2, PyWavelets' Haar filter tap. */
export const HAAR_TAP = Math.SQRT1_2;

/**
 * The Haar approximation band of a plane.
 *
 * @param plane `[rows, cols]` samples, rows and cols even
 * @returns `[rows / 2, cols / 2]` float64 coefficients
 * @throws {RangeError} for odd sizes or a plane of the wrong length
 *
 * @example
 * ```ts
 * import { haarApproximation } from "./haar.ts";
 * haarApproximation(new Uint8Array([10, 20, 30, 40]), 2, 2); // Float64Array [50.00000000000001]
 * ```
 */
export function haarApproximation(
  plane: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  if (rows % 2 || cols % 2 || plane.length !== rows * cols) {
    throw new RangeError(
      `haarApproximation needs an even-sized plane of rows × cols samples, got ${rows} × ${cols} ` +
        `and ${plane.length} samples`,
    );
  }
  const s = HAAR_TAP;
  const halfCols = cols / 2;
  const ll = new Float64Array((rows / 2) * halfCols);
  for (let i = 0, o = 0; i < rows / 2; i++) {
    const top = 2 * i * cols;
    const bottom = top + cols;
    for (let j = 0; j < halfCols; j++, o++) {
      const left = s * plane[top + 2 * j] + s * plane[bottom + 2 * j];
      const right = s * plane[top + 2 * j + 1] + s * plane[bottom + 2 * j + 1];
      ll[o] = s * left + s * right;
    }
  }
  return ll;
}
