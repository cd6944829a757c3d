/**
 * sgm's `Denoiser.forward` after the network call: the denoised estimate
 * `D = F * c_out + x * c_skip` of every row of a classifier-free-guidance batch.
 *
 * diffusers: the `pred_original_sample` of `EulerDiscreteScheduler.step` for `v_prediction`.
 *
 * @module
 */

import { formatDims, numel, type Tensor, tensor } from "../tensor.ts";
import { vScalingEdmCNoise } from "./denoiser_scaling.ts";

const f32 = Math.fround;

/**
 * Turns the raw network output of a batch of `copies` stacked inputs into denoised estimates.
 *
 * The network saw `cat([x] * copies) * c_in` (two copies for CFG: uncond rows first), so row `r`
 * of the output pairs with row `r mod n` of `x`.
 *
 * @param networkOutput `[copies*n, c, h, w]` raw UNet output F (v-prediction)
 * @param x `[n, c, h, w]` sampler state the network was fed (before `c_in`)
 * @param sigma the noise level of this call
 * @returns `[copies*n, c, h, w]` `F * c_out + x * c_skip`
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { denoiserOutput } from "./denoiser.ts";
 * const d = denoiserOutput(tensor([2, 1], new Float32Array([0, 0])), tensor([1, 1], new Float32Array([2])), 1);
 * // d.data = [1, 1]: with F = 0 only c_skip * x = 0.5 * 2 remains
 * ```
 */
export function denoiserOutput(networkOutput: Tensor, x: Tensor, sigma: number): Tensor {
  const perCopy = x.data.length;
  const out = networkOutput.data;
  if (
    perCopy === 0 || out.length % perCopy !== 0 ||
    networkOutput.dims.slice(1).join() !== x.dims.slice(1).join()
  ) {
    throw new RangeError(
      `Cannot denoise: network output ${formatDims(networkOutput.dims)} is not a stack of inputs ${
        formatDims(x.dims)
      }`,
    );
  }
  const { cSkip, cOut } = vScalingEdmCNoise(sigma);
  const result = new Float32Array(numel(networkOutput.dims));
  for (let i = 0; i < out.length; i++) {
    result[i] = f32(f32(out[i] * cOut) + f32(x.data[i % perCopy] * cSkip));
  }
  return tensor(networkOutput.dims, result);
}
