/**
 * EDM (Karras et al. 2022) noise levels, as sgm's `EDMDiscretization` with `do_append_zero`.
 *
 * diffusers: `EulerDiscreteScheduler(use_karras_sigmas=True, final_sigmas_type="zero")` computes
 * the same formula in float64; sgm (and this module) compute it in float32, which moves
 * `sigmas[0]` from 700 to 700.00012.
 *
 * @module
 */

import { linspaceFloat32 } from "./_linspace.ts";

const f32 = Math.fround;

/** Options of {@linkcode edmSigmas}; the defaults are SVD's (`svd.yaml` sampler config). */
export interface EdmSigmasOptions {
  /** Smallest noise level before the appended zero (default 0.002). */
  readonly sigmaMin?: number;
  /** Largest noise level (default 700). */
  readonly sigmaMax?: number;
  /** Karras rho (default 7). */
  readonly rho?: number;
}

/**
 * The `steps + 1` descending noise levels
 * `(sigmaMax^(1/rho) + ramp * (sigmaMin^(1/rho) - sigmaMax^(1/rho)))^rho`, `ramp = linspace(0, 1,
 * steps)`, followed by an appended 0 (the sampler's last step lands on the clean sample).
 *
 * Rounded like torch float32: the two `^(1/rho)` terms and their difference are Python floats
 * (float64) cast to float32 when they meet the float32 `ramp`; every tensor op rounds to float32.
 *
 * @param steps number of sampler steps (25 for SVD, 30 for SVD-XT), at least 1
 * @returns `Float32Array` of length `steps + 1`, `[sigmaMax', ..., sigmaMin', 0]`
 *
 * @example
 * ```ts
 * import { edmSigmas } from "./discretization.ts";
 * edmSigmas(3); // Float32Array [700.00012, 15.589973, 0.0020000036, 0]
 * ```
 */
export function edmSigmas(steps: number, options: EdmSigmasOptions = {}): Float32Array {
  const { sigmaMin = 0.002, sigmaMax = 700, rho = 7 } = options;
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`edmSigmas needs a whole number of steps >= 1, got ${steps}`);
  }
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin && rho > 0)) {
    throw new RangeError(
      `edmSigmas needs 0 < sigmaMin < sigmaMax and rho > 0, got sigmaMin ${sigmaMin}, sigmaMax ${sigmaMax}, rho ${rho}`,
    );
  }
  const maxInvRho = sigmaMax ** (1 / rho);
  const minInvRho = sigmaMin ** (1 / rho);
  const span = f32(minInvRho - maxInvRho); // float64 difference, cast once (torch scalar operand)
  const start = f32(maxInvRho);
  const ramp = linspaceFloat32(0, 1, steps);
  const sigmas = new Float32Array(steps + 1); // last entry stays 0: the appended zero
  for (let i = 0; i < steps; i++) sigmas[i] = f32(f32(start + f32(ramp[i] * span)) ** rho);
  return sigmas;
}
