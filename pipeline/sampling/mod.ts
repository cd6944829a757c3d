/**
 * SVD's sampling maths in sgm's vocabulary: *discretization* (noise levels), *denoiser* +
 * *scaling* (preconditioning), *guider* (per-frame classifier-free guidance) and *sampler*
 * (Euler EDM). Plain float32 maths, no ONNX: the pipeline passes the UNet call in as a closure.
 *
 * @example
 * ```ts
 * import { type Tensor, tensor } from "../tensor.ts";
 * import { applyGuidance, denoiserOutput, edmSigmas, initialLatent, linearFrameGuidance, sampleEulerEdm } from "./mod.ts";
 * const noise = tensor([14, 4, 8, 16]); // stands in for randomNormal(seed, dims)
 * const callUnet = (x: Tensor, _sigma: number) => tensor([2 * x.dims[0], ...x.dims.slice(1)]); // stands in for the UNet
 * const progress: number[] = []; // steps done, for a progress bar
 * const sigmas = edmSigmas(25);
 * const scale = linearFrameGuidance(14, { minScale: 1, maxScale: 2.5 });
 * const latent = await sampleEulerEdm(
 *   async (x, sigma) => applyGuidance(denoiserOutput(await callUnet(x, sigma), x, sigma), scale),
 *   initialLatent(noise, sigmas[0]),
 *   sigmas,
 *   { onStep: (p) => progress.push(p.step + 1), signal: new AbortController().signal },
 * );
 * ```
 *
 * @module
 */

export { edmSigmas, type EdmSigmasOptions } from "./discretization.ts";
export { type DenoiserScaling, vScalingEdmCNoise } from "./denoiser_scaling.ts";
export { denoiserOutput } from "./denoiser.ts";
export {
  applyGuidance,
  type FrameGuidanceOptions,
  linearFrameGuidance,
  triangleFrameGuidance,
  type TriangleFrameGuidanceOptions,
} from "./guiders.ts";
export {
  type DenoiseFn,
  type EulerEdmOptions,
  type EulerEdmStep,
  initialLatent,
  sampleEulerEdm,
} from "./euler_edm.ts";
