/**
 * sgm's `EulerEDMSampler` (Karras et al. 2022, Algorithm 2 without the Heun correction), with the
 * optional "churn" that re-noises the state before a step.
 *
 * diffusers: `EulerDiscreteScheduler.step` with `s_churn`, `s_tmin`, `s_tmax`, `s_noise`, driven by
 * the pipeline's denoising loop; `initialLatent` is `latents * scheduler.init_noise_sigma`.
 *
 * @module
 */

import { GenerationCancelledError } from "../errors.ts";
import { formatDims, type Tensor, tensor } from "../tensor.ts";

const f32 = Math.fround;

/**
 * The denoiser as the sampler sees it: the (guided) estimate of the clean sample.
 *
 * The pipeline composes it from the CFG batch, the UNet call, the denoiser scaling and the guider.
 *
 * @param x `[T, 4, h, w]` current state, at noise level `sigma`
 * @param sigma noise level of `x` (sgm's `sigma_hat`)
 * @param step index of the sampler step, 0-based
 * @returns `[T, 4, h, w]` denoised estimate D(x; sigma)
 */
export type DenoiseFn = (x: Tensor, sigma: number, step: number) => Tensor | Promise<Tensor>;

/** What {@linkcode sampleEulerEdm} reports after every step. */
export interface EulerEdmStep {
  /** Index of the step just done, 0-based. */
  readonly step: number;
  /** Number of steps of the run (`sigmas.length - 1`). */
  readonly total: number;
  /** Noise level the step started from (`sigmas[step]`). */
  readonly sigma: number;
  /** Noise level the step moved to (`sigmas[step + 1]`). */
  readonly nextSigma: number;
  /** `[T, 4, h, w]` state after the step. */
  readonly x: Tensor;
  /** `[T, 4, h, w]` the denoised estimate of this step (a preview of the result). */
  readonly denoised: Tensor;
  /** Milliseconds since the sampler started (so `elapsedMs / (step + 1)` is the mean step time). */
  readonly elapsedMs: number;
}

/** Options of {@linkcode sampleEulerEdm}; the churn defaults are SVD's (no churn). */
export interface EulerEdmOptions {
  /** Called after every step. */
  readonly onStep?: (progress: EulerEdmStep) => void;
  /** Checked before every step; when aborted the sampler throws `GenerationCancelledError`. */
  readonly signal?: AbortSignal;
  /** Total churn over the run (default 0): gamma = min(sChurn / steps, sqrt(2) - 1). */
  readonly sChurn?: number;
  /** Churn applies only where `sTmin <= sigma <= sTmax` (defaults 0 and Infinity). */
  readonly sTmin?: number;
  /** See `sTmin`. */
  readonly sTmax?: number;
  /** Scale of the churn noise (default 1). */
  readonly sNoise?: number;
  /**
   * Source of the standard-normal churn noise for step `step`, shaped `dims`. Required when a
   * step churns (gamma > 0); e.g. `(dims, step) => randomNormal(seed, dims, { stream: 1 + step })`.
   */
  readonly noise?: (dims: readonly number[], step: number) => Tensor;
}

/**
 * The sampler's starting state: unit noise scaled to the first noise level,
 * `x = noise * sqrt(1 + sigmas[0]^2)` (sgm's `prepare_sampling_loop`), in float32.
 *
 * @param noise `[T, 4, h, w]` standard-normal noise
 * @param sigmaMax `sigmas[0]`
 * @returns `[T, 4, h, w]` initial state
 */
export function initialLatent(noise: Tensor, sigmaMax: number): Tensor {
  const s = f32(sigmaMax);
  const factor = f32(Math.sqrt(f32(1 + f32(s * s))));
  return tensor(noise.dims, noise.data.map((v) => f32(v * factor)));
}

/**
 * Runs Euler steps down the noise levels `sigmas` (descending, ending in 0 for a clean result):
 *
 * 1. gamma = min(sChurn / steps, sqrt(2) - 1) if sTmin <= sigma_i <= sTmax, else 0;
 *    sigma_hat = sigma_i * (1 + gamma).
 * 2. If gamma > 0: x += eps * sNoise * sqrt(sigma_hat^2 - sigma_i^2) (raise the noise to sigma_hat).
 * 3. D = denoise(x, sigma_hat, i).
 * 4. d = (x - D) / sigma_hat; x += (sigma_{i+1} - sigma_hat) * d. With sigma_{i+1} = 0 this is x = D.
 *
 * Float32 throughout, rounding after every operation as sgm's float32 tensors do.
 *
 * @param denoise the (guided) denoiser; may be async (an ONNX call)
 * @param x `[T, 4, h, w]` state at `sigmas[0]` (see {@linkcode initialLatent}); not modified
 * @param sigmas `[steps + 1]` noise levels, e.g. from `edmSigmas`
 * @returns `[T, 4, h, w]` the sample at `sigmas[steps]`
 * @throws {GenerationCancelledError} when `signal` is aborted before a step (cause: its reason)
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { sampleEulerEdm } from "./euler_edm.ts";
 * const x = tensor([1], new Float32Array([8]));
 * // With D = 0 every step scales x by sigma_{i+1} / sigma_i: 8 * 2/4 * 1/2 = 2.
 * const out = await sampleEulerEdm((v) => tensor(v.dims), x, [4, 2, 1]);
 * out.data; // [2]
 * ```
 */
export async function sampleEulerEdm(
  denoise: DenoiseFn,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: EulerEdmOptions = {},
): Promise<Tensor> {
  const { onStep, signal, sChurn = 0, sTmin = 0, sTmax = Infinity, sNoise = 1, noise } = options;
  const total = sigmas.length - 1;
  if (total < 1) {
    throw new RangeError(`sampleEulerEdm needs at least 2 sigmas, got ${sigmas.length}`);
  }
  const started = performance.now();
  let state = x;
  for (let i = 0; i < total; i++) {
    if (signal?.aborted) {
      throw new GenerationCancelledError(`Generation cancelled before step ${i + 1} of ${total}`, {
        cause: signal.reason,
      });
    }
    const sigma = f32(sigmas[i]);
    const nextSigma = f32(sigmas[i + 1]);
    const gamma = sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / total, Math.SQRT2 - 1) : 0;
    const sigmaHat = f32(sigma * (gamma + 1));
    if (gamma > 0) state = churn(state, sigma, sigmaHat, sNoise, noise, i);

    const denoised = await denoise(state, sigmaHat, i);
    if (denoised.data.length !== state.data.length) {
      throw new RangeError(
        `denoise returned ${formatDims(denoised.dims)} for a state of ${formatDims(state.dims)}`,
      );
    }
    const dt = f32(nextSigma - sigmaHat);
    const next = new Float32Array(state.data.length);
    for (let k = 0; k < next.length; k++) {
      const v = state.data[k];
      const d = f32(f32(v - denoised.data[k]) / sigmaHat); // to_d: the ODE's dx/dsigma
      next[k] = f32(v + f32(dt * d));
    }
    state = tensor(state.dims, next);
    onStep?.({
      step: i,
      total,
      sigma,
      nextSigma,
      x: state,
      denoised,
      elapsedMs: performance.now() - started,
    });
  }
  return state;
}

/** Raises the noise of `x` from `sigma` to `sigmaHat` with fresh noise (churn). */
function churn(
  x: Tensor,
  sigma: number,
  sigmaHat: number,
  sNoise: number,
  noise: EulerEdmOptions["noise"],
  step: number,
): Tensor {
  if (!noise) {
    throw new TypeError(
      `sampleEulerEdm: step ${step} churns (sChurn > 0) but no noise source was given`,
    );
  }
  const eps = noise(x.dims, step);
  if (eps.data.length !== x.data.length) {
    throw new RangeError(
      `Churn noise ${formatDims(eps.dims)} does not match the state ${formatDims(x.dims)}`,
    );
  }
  const extra = f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))));
  const sn = f32(sNoise);
  return tensor(x.dims, x.data.map((v, k) => f32(v + f32(f32(eps.data[k] * sn) * extra))));
}
