/**
 * Seeded standard-normal noise that is bit-identical on every machine.
 *
 * Algorithm (fixed; changing it changes every seed's video):
 *
 * 1. **Philox4x32-10** (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; the
 *    counter-based generator of Random123, cuRAND and PyTorch's CUDA RNG), with the standard
 *    constants (multipliers `0xD2511F53`, `0xCD9E8D57`; Weyl key increments `0x9E3779B9`,
 *    `0xBB67AE85`) and 10 rounds. Key = `[seed mod 2^32, floor(seed / 2^32)]`; counter of block j =
 *    `[j mod 2^32, floor(j / 2^32), stream, 0]`. Only integer arithmetic: exactly reproducible.
 * 2. Each block's four 32-bit words `w0..w3` give two values (element `2j` from `w0, w1`, element
 *    `2j + 1` from `w2, w3`) by the cosine half of **Box–Muller**:
 *    `u1 = (w0 + 0.5) / 2^32` (in (0, 1), so the log is finite), `u2 = w1 / 2^32`,
 *    `z = sqrt(-2 * ln(u1)) * cos(2 * pi * u2)`, computed in float64 with only `+ * Math.log
 *    Math.sqrt Math.cos`, then rounded to float32.
 *
 * Math.sqrt is correctly rounded; V8's Math.log and Math.cos are its own ports of fdlibm, not the
 * platform's libm, so Deno produces the same bits on every OS and CPU.
 *
 * Not PyTorch's CPU generator (Mersenne Twister): the same seed does not give sgm's noise. The
 * fixtures store sgm's noise instead.
 *
 * @module
 */

import { numel, type Tensor, tensor } from "./tensor.ts";

const TWO_POW_32 = 4294967296;
const TWO_PI = 2 * Math.PI;

/** Options of {@linkcode randomNormal}. */
export interface RandomNormalOptions {
  /**
   * Independent sequence under the same seed (Philox counter word 2), 0..2^32-1, default 0; e.g.
   * stream 0 for the initial latent, 1 for the conditioning-augmentation noise.
   */
  readonly stream?: number;
}

/**
 * A tensor of independent N(0, 1) float32 values, a pure function of `(seed, stream)`: element i is
 * the same whatever `dims` is, so a larger request extends a smaller one.
 *
 * @param seed integer 0..2^53-1
 * @param dims shape of the result
 * @returns float32 tensor of shape `dims`
 *
 * @example
 * ```ts
 * import { randomNormal } from "./random.ts";
 * const noise = randomNormal(23, [14, 4, 72, 128]); // initial latent noise of a 576x1024 SVD run
 * ```
 */
export function randomNormal(
  seed: number,
  dims: readonly number[],
  options: RandomNormalOptions = {},
): Tensor {
  const { stream = 0 } = options;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Seed must be an integer from 0 to 2^53-1, got ${seed}`);
  }
  if (!Number.isInteger(stream) || stream < 0 || stream >= TWO_POW_32) {
    throw new RangeError(`Stream must be an integer from 0 to 2^32-1, got ${stream}`);
  }
  const n = numel(dims);
  const out = new Float32Array(n);
  const key0 = seed % TWO_POW_32;
  const key1 = Math.floor(seed / TWO_POW_32);
  const words = new Uint32Array(4);
  for (let block = 0; 2 * block < n; block++) {
    philox4x32(block % TWO_POW_32, Math.floor(block / TWO_POW_32), stream, 0, key0, key1, words);
    out[2 * block] = boxMullerCos(words[0], words[1]);
    if (2 * block + 1 < n) out[2 * block + 1] = boxMullerCos(words[2], words[3]);
  }
  return tensor(dims, out);
}

/**
 * Philox4x32-10 of counter `[c0, c1, c2, c3]` under key `[k0, k1]` into `out` (four uint32).
 * Exported for the known-answer test against Random123's published vectors.
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): Uint32Array {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = c2 >>> 0, x3 = c3 >>> 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      key0 = (key0 + 0x9e3779b9) >>> 0;
      key1 = (key1 + 0xbb67ae85) >>> 0;
    }
    const lo0 = Math.imul(0xd2511f53, x0) >>> 0;
    const hi0 = mulHigh(0xd2511f53, x0);
    const lo1 = Math.imul(0xcd9e8d57, x2) >>> 0;
    const hi1 = mulHigh(0xcd9e8d57, x2);
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
  return out;
}

/** High 32 bits of the 64-bit product of two uint32, exactly (every partial sum stays < 2^53). */
function mulHigh(a: number, b: number): number {
  const aHigh = a >>> 16;
  const aLow = a & 0xffff;
  const high = aHigh * b; // < 2^48, weight 2^16
  const low = aLow * b; // < 2^48, weight 1
  const mid = (high % 65536) * 65536 + low; // < 2^49: the part below bit 48 of high's weight
  return (Math.floor(high / 65536) + Math.floor(mid / TWO_POW_32)) >>> 0;
}

/** One N(0, 1) value from two uint32 words (cosine half of Box–Muller). */
function boxMullerCos(w0: number, w1: number): number {
  const u1 = (w0 + 0.5) / TWO_POW_32;
  const u2 = w1 / TWO_POW_32;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(TWO_PI * u2);
}
