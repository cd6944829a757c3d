/**
 * A cheap RGB preview of a latent, for progress updates while sampling: a fixed linear map from
 * the 4 latent channels to RGB instead of a VAE decode (an approximation fitted for Stable
 * Diffusion's KL-f8 latent space, which SVD's VAE shares; used by ComfyUI and A1111 as
 * "latent2rgb").
 *
 * @module
 */

import { formatDims, type Tensor } from "../tensor.ts";

/**
 * Row k = contribution of latent channel k to (R, G, B). Applied to latents in the diffusion
 * ("scaled", x 0.18215) space the UNet works in; no bias.
 */
export const LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.3250, 0.4974, 0.2350],
  [-0.2829, 0.1762, 0.2721],
  [-0.2120, -0.2616, -0.7177],
];

/**
 * Maps each frame of a latent to an RGB image: `rgb = sum_k latent[k] * LATENT_RGB_FACTORS[k]`,
 * clamped to [-1, 1], then to bytes by `round((v + 1) / 2 * 255)` (so -1 -> 0, 0 -> 128, 1 -> 255).
 *
 * @param x0 `[T, 4, h, w]` latent (e.g. the sampler's denoised estimate)
 * @returns T buffers, each `[h, w, 3]` RGB bytes, row-major (no alpha)
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { latentToRgb } from "./latent_preview.ts";
 * const [frame] = latentToRgb(tensor([1, 4, 1, 1], new Float32Array([1, 0, 0, 0])));
 * frame; // Uint8Array [172, 157, 169]: round((0.3512 + 1) / 2 * 255), ...
 * ```
 */
export function latentToRgb(x0: Tensor): Uint8Array[] {
  const [frames, channels, h, w] = x0.dims;
  if (x0.dims.length !== 4 || channels !== LATENT_RGB_FACTORS.length) {
    throw new RangeError(`latentToRgb needs a latent [T, 4, h, w], got ${formatDims(x0.dims)}`);
  }
  const plane = h * w;
  const result: Uint8Array[] = [];
  for (let t = 0; t < frames; t++) {
    const base = t * channels * plane;
    const rgb = new Uint8Array(plane * 3); // [4, h, w] -> [h, w, 3]
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < channels; k++) {
          v += x0.data[base + k * plane + p] * LATENT_RGB_FACTORS[k][c];
        }
        rgb[p * 3 + c] = Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
      }
    }
    result.push(rgb);
  }
  return result;
}
