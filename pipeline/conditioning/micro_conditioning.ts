/**
 * SVD's micro-conditioning `vector` (the UNet's `y`, fed to `label_emb`): the sinusoidal embeddings
 * of `fps_id`, `motion_bucket_id` and `cond_aug`, concatenated in that order (sgm's conditioner
 * embedders 1, 2 and 4, each a `ConcatTimestepEmbedderND(outdim)`, outdim 256 in SVD: any width
 * works, as long as the UNet's `adm_in_channels` is 3 × outdim).
 *
 * diffusers: `StableVideoDiffusionPipeline._get_add_time_ids` passes `[fps - 1, motion_bucket_id,
 * noise_aug_strength]` to the UNet, whose `add_time_proj = Timesteps(256, True, 0)` embeds them.
 *
 * @module
 */

import { sinusoidFrequencies } from "../networks/layers.ts";
import { type Tensor, tensor } from "../tensor.ts";

const f32 = Math.fround;

/** The three micro-conditioning values of a video. */
export interface MicroConditioning {
  /**
   * Frame-rate id, **fps - 1** (SVD was trained on `fps - 1`; sgm's script takes the id directly,
   * default 6, diffusers takes fps, default 7). Used as given here.
   */
  readonly fpsId: number;
  /** Amount of motion: the request field `motion_bucket_id` (any integer embeds; see its range). */
  readonly motionBucketId: number;
  /** Noise-augmentation strength of the conditioning frame (default 0.02). */
  readonly condAug: number;
}

/**
 * sgm's `timestep_embedding(t, dim)` in float32: `[cos(t * f), sin(t * f)]` (cosine first) with
 * `f_k = exp(-ln(maxPeriod) * k / (dim/2))`; an odd `dim` gets a trailing zero column.
 *
 * @param values `[n]` timesteps (rounded to float32 first, as `t.float()`)
 * @param dim embedding width
 * @returns `[n, dim]`
 *
 * @example
 * ```ts
 * import { timestepEmbedding } from "./micro_conditioning.ts";
 * timestepEmbedding([0], 4).data; // [1, 1, 0, 0]: cos(0) twice, then sin(0) twice
 * ```
 */
export function timestepEmbedding(
  values: ArrayLike<number>,
  dim: number,
  maxPeriod = 10000,
): Tensor {
  if (!Number.isInteger(dim) || dim < 1) {
    throw new RangeError(`timestepEmbedding needs a whole dim >= 1, got ${dim}`);
  }
  const freqs = sinusoidFrequencies(dim, maxPeriod);
  const half = freqs.length;
  const out = new Float32Array(values.length * dim);
  for (let i = 0; i < values.length; i++) {
    const t = f32(values[i]);
    const row = i * dim;
    for (let k = 0; k < half; k++) {
      const arg = f32(t * freqs[k]);
      out[row + k] = Math.cos(arg);
      out[row + half + k] = Math.sin(arg);
    }
  }
  // [n, dim], columns [cos | sin | (zero if dim is odd)]
  return tensor([values.length, dim], out);
}

/**
 * The `vector` conditioning of a T-frame video: each frame's row is
 * `[emb(fpsId) | emb(motionBucketId) | emb(condAug)]`, every embedding `outdim` wide. The rows are
 * identical (sgm repeats each scalar per frame), and the unconditional branch uses the same vector.
 *
 * @param frames number of frames T
 * @param outdim width of each embedding (256 in SVD, so `y` is 768 wide), ≥ 1
 * @returns `[T, 3*outdim]`
 *
 * @example
 * ```ts
 * import { microConditioningVector } from "./micro_conditioning.ts";
 * const y = microConditioningVector({ fpsId: 6, motionBucketId: 127, condAug: 0.02 }, 14, 256);
 * y.dims; // [14, 768]
 * ```
 */
export function microConditioningVector(
  conditioning: MicroConditioning,
  frames: number,
  outdim: number,
): Tensor {
  if (!Number.isInteger(frames) || frames < 1) {
    throw new RangeError(
      `microConditioningVector needs a whole number of frames >= 1, got ${frames}`,
    );
  }
  const { fpsId, motionBucketId, condAug } = conditioning;
  for (const [name, value] of Object.entries({ fpsId, motionBucketId, condAug })) {
    if (!Number.isFinite(value)) {
      throw new RangeError(`Micro-conditioning ${name} must be finite, got ${value}`);
    }
  }
  // [3, outdim]: one embedding per value, in the conditioner's order
  const parts = timestepEmbedding([fpsId, motionBucketId, condAug], outdim).data;
  const width = 3 * outdim;
  const out = new Float32Array(frames * width);
  for (let t = 0; t < frames; t++) out.set(parts, t * width); // [3, outdim] -> row t of [T, 3*outdim]
  return tensor([frames, width], out);
}
