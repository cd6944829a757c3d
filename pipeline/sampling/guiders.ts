/**
 * Classifier-free guidance with a per-frame scale, sgm's `LinearPredictionGuider` (SVD's guider)
 * and `TrianglePredictionGuider` (added after the SVD release, used by SV3D/SV4D).
 *
 * diffusers: `StableVideoDiffusionPipeline` builds the same per-frame `guidance_scale` with
 * `torch.linspace(min_guidance_scale, max_guidance_scale, num_frames)` and applies it to the raw
 * v-prediction instead of the denoised estimate; both are affine in F with the same `c_skip * x`
 * term on each half, so the results agree.
 *
 * @module
 */

import { formatDims, type Tensor, tensor } from "../tensor.ts";
import { linspaceFloat32 } from "./_linspace.ts";

const f32 = Math.fround;

/** The range of a per-frame guidance scale. */
export interface FrameGuidanceOptions {
  /** Scale of the lowest point (frame 0 for the linear ramp). SVD 1.0, SVD-XT 1.5. */
  readonly minScale: number;
  /** Scale of the highest point (last frame for the linear ramp). SVD 2.5, SVD-XT 3.0. */
  readonly maxScale: number;
}

/** Options of {@linkcode triangleFrameGuidance}. */
export interface TriangleFrameGuidanceOptions extends FrameGuidanceOptions {
  /** Period(s) of the triangle wave over `linspace(0, 1, frames)` (default 1). */
  readonly period?: number | readonly number[];
  /** How several periods combine (default `"max"`, as sgm). */
  readonly periodFusing?: "mean" | "multiply" | "max";
}

/**
 * The per-frame scale `linspace(minScale, maxScale, frames)` of `LinearPredictionGuider`: guidance
 * ramps up over the clip because later frames drift further from the conditioning image.
 *
 * @param frames number of frames T
 * @returns `[T]` float32 scales
 *
 * @example
 * ```ts
 * import { linearFrameGuidance } from "./guiders.ts";
 * linearFrameGuidance(4, { minScale: 1, maxScale: 2.5 }); // Float32Array [1, 1.5, 2, 2.5]
 * ```
 */
export function linearFrameGuidance(frames: number, options: FrameGuidanceOptions): Float32Array {
  checkFrames(frames);
  return linspaceFloat32(options.minScale, options.maxScale, frames);
}

/**
 * The per-frame scale of `TrianglePredictionGuider`: with `v = linspace(0, 1, frames)`, each
 * period p gives the triangle wave `2 * |v/p - floor(v/p + 0.5)|` (0 at the ends, 1 in the middle
 * for p = 1); the waves are fused, then mapped to `wave * (maxScale - minScale) + minScale`.
 *
 * @param frames number of frames T
 * @returns `[T]` float32 scales
 *
 * @example
 * ```ts
 * import { triangleFrameGuidance } from "./guiders.ts";
 * triangleFrameGuidance(5, { minScale: 1, maxScale: 2.5 }); // Float32Array [1, 1.75, 2.5, 1.75, 1]
 * ```
 */
export function triangleFrameGuidance(
  frames: number,
  options: TriangleFrameGuidanceOptions,
): Float32Array {
  checkFrames(frames);
  const { minScale, maxScale, period = 1, periodFusing = "max" } = options;
  const periods = typeof period === "number" ? [period] : period;
  if (periods.length === 0 || !periods.every((p) => p > 0)) {
    throw new RangeError(`triangleFrameGuidance needs periods > 0, got [${periods}]`);
  }
  const values = linspaceFloat32(0, 1, frames);
  const waves = periods.map((p) =>
    values.map((v) => {
      const phase = f32(v / f32(p));
      return f32(2 * Math.abs(f32(phase - Math.floor(f32(phase + 0.5)))));
    })
  );
  const fused = values.map((_, t) => {
    const at = waves.map((wave) => wave[t]);
    switch (periodFusing) {
      case "mean":
        return f32(at.reduce((sum, w) => f32(sum + w), 0) / periods.length);
      case "multiply":
        return at.reduce((product, w) => f32(product * w), 1);
      case "max":
        return Math.max(...at);
      default:
        throw new RangeError(
          `Unknown periodFusing "${periodFusing}": use "mean", "multiply" or "max"`,
        );
    }
  });
  const span = f32(maxScale - minScale);
  return fused.map((w) => f32(f32(w * span) + minScale));
}

/**
 * Combines a CFG batch of denoised estimates: `D = D_u + scale[t] * (D_c - D_u)` for frame t.
 *
 * The batch is `[uncond videos; cond videos]`, each video T consecutive frames (`(b t)` order),
 * so row `r` of either half is frame `r mod T`.
 *
 * @param denoisedBatch `[2*b*T, c, h, w]` denoised estimates, unconditional half first
 * @param scale `[T]` per-frame guidance scale
 * @returns `[b*T, c, h, w]` guided estimate
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { applyGuidance } from "./guiders.ts";
 * const batch = tensor([4, 1], new Float32Array([0, 0, 1, 1])); // uncond 0, cond 1, T = 2
 * applyGuidance(batch, new Float32Array([1, 2])).data; // [1, 2]
 * ```
 */
export function applyGuidance(denoisedBatch: Tensor, scale: Float32Array): Tensor {
  const frames = scale.length;
  const rows = denoisedBatch.dims[0];
  if (frames === 0 || rows === undefined || rows % (2 * frames) !== 0) {
    throw new RangeError(
      `Cannot guide: batch ${
        formatDims(denoisedBatch.dims)
      } is not [uncond; cond] of ${frames}-frame videos`,
    );
  }
  const half = denoisedBatch.data.length / 2;
  const rowSize = (2 * half) / rows;
  const data = denoisedBatch.data;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const s = scale[Math.floor(i / rowSize) % frames];
    const u = data[i];
    out[i] = f32(u + f32(s * f32(data[half + i] - u)));
  }
  // [2*b*T, c, h, w] -> [b*T, c, h, w]
  return tensor([rows / 2, ...denoisedBatch.dims.slice(1)], out);
}

function checkFrames(frames: number): void {
  if (!Number.isInteger(frames) || frames < 1) {
    throw new RangeError(`Frame guidance needs a whole number of frames >= 1, got ${frames}`);
  }
}
