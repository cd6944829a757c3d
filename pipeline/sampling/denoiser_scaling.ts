/**
 * SVD's preconditioning, sgm's `VScalingWithEDMcNoise`: v-prediction scalings with EDM's
 * continuous `c_noise = ln(sigma) / 4`.
 *
 * diffusers: `EulerDiscreteScheduler(prediction_type="v_prediction", timestep_type="continuous")`:
 * `scale_model_input` divides by `sqrt(sigma^2 + 1)` (= `cIn`), the timesteps are `0.25 * ln(sigma)`
 * (= `cNoise`) and `step` forms `pred_x0 = F * cOut + x * cSkip`.
 *
 * @module
 */

const f32 = Math.fround;

/** The four scalings of one noise level, each rounded to float32. */
export interface DenoiserScaling {
  /** Weight of the noisy input in the denoised estimate: `1 / (sigma^2 + 1)`. */
  readonly cSkip: number;
  /** Weight of the network output: `-sigma / sqrt(sigma^2 + 1)`. */
  readonly cOut: number;
  /** Scale of the noisy input fed to the network: `1 / sqrt(sigma^2 + 1)`. */
  readonly cIn: number;
  /** The network's continuous timestep: `ln(sigma) / 4`. */
  readonly cNoise: number;
}

/**
 * Scalings of noise level `sigma`, in float32 as sgm computes them on a float32 `sigma`.
 *
 * @param sigma noise level, > 0 (a float32 value from {@linkcode edmSigmas})
 *
 * @example
 * ```ts
 * import { vScalingEdmCNoise } from "./denoiser_scaling.ts";
 * const { cSkip, cOut, cIn, cNoise } = vScalingEdmCNoise(1);
 * // cSkip 0.5, cOut -0.70710677, cIn 0.70710677, cNoise 0
 * ```
 */
export function vScalingEdmCNoise(sigma: number): DenoiserScaling {
  if (!(sigma > 0) || !Number.isFinite(sigma)) {
    throw new RangeError(`vScalingEdmCNoise needs a finite sigma > 0, got ${sigma}`);
  }
  const s = f32(sigma);
  const variance = f32(f32(s * s) + 1); // sigma^2 + 1: total variance of the noisy input
  const std = f32(Math.sqrt(variance));
  return {
    cSkip: f32(1 / variance),
    cOut: f32(-s / std),
    cIn: f32(1 / std),
    cNoise: f32(0.25 * f32(Math.log(s))),
  };
}
