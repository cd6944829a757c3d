/**
 * Run-time sampling parameters: the one place of their allowed ranges, used by the config loader
 * (for the defaults in `configs/*.yaml`), the CLI and the HTTP API alike.
 *
 * Ranges and why:
 * - `width`, `height`: 64..2048, multiples of 64. The latent is 1/8 of the image and the UNet
 *   halves it three times (SVD_REFERENCE §5.1: sgm rounds images down to multiples of 64).
 * - `num_frames` 1..64 and `decoding_t` 1..64: SVD is trained on 14, SVD-XT on 25; the temporal
 *   layers accept other counts, memory grows linearly. `decoding_t` may exceed `num_frames`
 *   (the last chunk is simply shorter).
 * - `num_steps` 1..200: EDM Euler steps; 25 / 30 are the references.
 * - `min_guidance`, `max_guidance` 0..30, min ≤ max: per-frame CFG scales (sgm's
 *   `LinearPredictionGuider` min_scale / max_scale).
 * - `fps` 1..60: the video's frame rate; the model sees `fps_id = fps − 1` (as diffusers).
 * - `motion_bucket_id` 0..1023: a sinusoidal embedding, any integer works; 127 is the default
 *   and sgm's demo offers 0..511.
 * - `cond_aug` 0..1: noise added to the conditioning frame, in [−1, 1] image units (0.02).
 * - `seed` 0..2³²−1: an unsigned 32-bit integer, like sgm's and diffusers' generators take.
 *
 * @module
 */

import { checkLimit, describeLimit, type IntegerLimit, type Limit, showValue } from "./limits.ts";

/** How the CFG scale varies over the frames (sgm `LinearPredictionGuider` / `TrianglePredictionGuider`). */
export type GuiderKind = "linear" | "triangle";

/** Sampling defaults of a model, as resolved from its config (every field filled). */
export interface SamplingDefaults {
  /** `num_frames`: 14 (SVD) / 25 (SVD-XT). */
  readonly numFrames: number;
  /** `num_steps`: 25 (SVD) / 30 (SVD-XT), as sgm's `simple_video_sample.py`. */
  readonly numSteps: number;
  /** `min_guidance`: CFG scale of the first frame, 1.0 (SVD) / 1.5 (SVD-XT). */
  readonly minGuidance: number;
  /** `max_guidance`: CFG scale of the last frame, 2.5 (SVD) / 3.0 (SVD-XT). */
  readonly maxGuidance: number;
  /** `guider`: "linear" (SVD's) or "triangle". */
  readonly guider: GuiderKind;
  /** `fps`: frame rate of the video, 7; the model is conditioned on `fps_id = fps − 1 = 6`. */
  readonly fps: number;
  /** `motion_bucket_id`: 127. */
  readonly motionBucketId: number;
  /** `cond_aug`: 0.02 (diffusers' `noise_aug_strength`). */
  readonly condAug: number;
  /** `decoding_t`: frames decoded per VAE call, 14. */
  readonly decodingT: number;
  /** `width` of the video in pixels, 1024. */
  readonly width: number;
  /** `height` of the video in pixels, 576. */
  readonly height: number;
  /** `sigma_min` of the EDM discretization, 0.002. */
  readonly sigmaMin: number;
  /** `sigma_max` of the EDM discretization, 700. */
  readonly sigmaMax: number;
  /** `rho` of the EDM discretization, 7. */
  readonly rho: number;
  /** `seed`, or `null` for a fresh random seed per run (sgm's script fixes 23). */
  readonly seed: number | null;
}

/**
 * Parameters of one generation, after overrides were checked and defaults filled. The noise
 * schedule (`sigmaMin`, `sigmaMax`, `rho`) is a property of the model and stays in
 * `SamplingDefaults`.
 */
export interface SamplingParams {
  readonly numFrames: number;
  readonly numSteps: number;
  readonly minGuidance: number;
  readonly maxGuidance: number;
  readonly guider: GuiderKind;
  readonly fps: number;
  readonly motionBucketId: number;
  readonly condAug: number;
  readonly decodingT: number;
  readonly width: number;
  readonly height: number;
  readonly seed: number;
}

/** A limit and the snake_case name users type (`num_steps`, YAML key and API field). */
export type FieldLimit = Limit & { readonly key: string };

const MAX_GUIDANCE = 30;
const IMAGE_SIDE: IntegerLimit = {
  kind: "integer",
  min: 64,
  max: 2048,
  multipleOf: 64,
};

/** Allowed values of every run-time sampling parameter, by camelCase field. */
export const SAMPLING_LIMITS: { readonly [K in keyof SamplingParams]: FieldLimit } = {
  numFrames: { key: "num_frames", kind: "integer", min: 1, max: 64 },
  // "steps", as the CLI flag and the HTTP field are named (sgm: num_steps).
  numSteps: { key: "steps", kind: "integer", min: 1, max: 200 },
  minGuidance: { key: "min_guidance", kind: "number", min: 0, max: MAX_GUIDANCE },
  maxGuidance: { key: "max_guidance", kind: "number", min: 0, max: MAX_GUIDANCE },
  guider: { key: "guider", kind: "choice", values: ["linear", "triangle"] },
  fps: { key: "fps", kind: "integer", min: 1, max: 60 },
  motionBucketId: { key: "motion_bucket_id", kind: "integer", min: 0, max: 1023 },
  condAug: { key: "cond_aug", kind: "number", min: 0, max: 1 },
  decodingT: { key: "decoding_t", kind: "integer", min: 1, max: 64 },
  width: { key: "width", ...IMAGE_SIDE },
  height: { key: "height", ...IMAGE_SIDE },
  seed: { key: "seed", kind: "integer", min: 0, max: 2 ** 32 - 1 },
};

/** Allowed values of the EDM noise schedule (config only; not a run-time parameter). */
export const SCHEDULE_LIMITS: {
  readonly [K in "sigmaMin" | "sigmaMax" | "rho"]: FieldLimit;
} = {
  sigmaMin: { key: "sigma_min", kind: "number", min: 0, max: 1, exclusiveMin: true },
  sigmaMax: { key: "sigma_max", kind: "number", min: 0, max: 10_000, exclusiveMin: true },
  rho: { key: "rho", kind: "number", min: 0, max: 100, exclusiveMin: true },
};

/** A sampling parameter outside its allowed values. `field` is snake_case, as users type it. */
export class ParameterError extends RangeError {
  /** snake_case name: `num_steps`. */
  readonly field: string;
  readonly value: unknown;
  /** The allowed values in words: `1..200`. */
  readonly allowed: string;

  constructor(field: string, value: unknown, problem: string, allowed: string) {
    super(`${field} = ${showValue(value)} ${problem}: allowed ${allowed}`);
    this.name = "ParameterError";
    this.field = field;
    this.value = value;
    this.allowed = allowed;
  }
}

/** A random unsigned 32-bit seed. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

const FIELDS = Object.keys(SAMPLING_LIMITS) as (keyof SamplingParams)[];

/**
 * Checks each override against `SAMPLING_LIMITS` and fills the rest from `defaults`; a missing
 * seed (in both) is drawn with `drawSeed`.
 *
 * @throws {ParameterError} naming the first bad field (snake_case), its value and the allowed
 * range; also when `min_guidance` ends up above `max_guidance`, or for an unknown field.
 *
 * @example
 * ```ts
 * const params = resolveSamplingParams({ numSteps: 10 }, config.sampling);
 * resolveSamplingParams({ numSteps: 0 }, config.sampling); // ParameterError: num_steps = 0 is out of range: allowed 1..200
 * ```
 */
export function resolveSamplingParams(
  overrides: Partial<SamplingParams>,
  defaults: SamplingDefaults,
  drawSeed: () => number = randomSeed,
): SamplingParams {
  for (const [field, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const limit = SAMPLING_LIMITS[field as keyof SamplingParams];
    if (!limit || !Object.hasOwn(SAMPLING_LIMITS, field)) {
      throw new ParameterError(field, value, "is not a sampling parameter", FIELDS.join(", "));
    }
    const problem = checkLimit(limit, value);
    if (problem) throw new ParameterError(limit.key, value, problem, describeLimit(limit));
  }
  const params: SamplingParams = {
    numFrames: overrides.numFrames ?? defaults.numFrames,
    numSteps: overrides.numSteps ?? defaults.numSteps,
    minGuidance: overrides.minGuidance ?? defaults.minGuidance,
    maxGuidance: overrides.maxGuidance ?? defaults.maxGuidance,
    guider: overrides.guider ?? defaults.guider,
    fps: overrides.fps ?? defaults.fps,
    motionBucketId: overrides.motionBucketId ?? defaults.motionBucketId,
    condAug: overrides.condAug ?? defaults.condAug,
    decodingT: overrides.decodingT ?? defaults.decodingT,
    width: overrides.width ?? defaults.width,
    height: overrides.height ?? defaults.height,
    seed: overrides.seed ?? defaults.seed ?? drawSeed(),
  };
  if (params.minGuidance > params.maxGuidance) {
    // Blame the override: with only max_guidance given, max is the one too low.
    if (overrides.minGuidance === undefined) {
      throw new ParameterError(
        "max_guidance",
        params.maxGuidance,
        `is below min_guidance (${params.minGuidance})`,
        `${params.minGuidance}..${MAX_GUIDANCE}`,
      );
    }
    throw new ParameterError(
      "min_guidance",
      params.minGuidance,
      `is above max_guidance (${params.maxGuidance})`,
      `0..${params.maxGuidance}`,
    );
  }
  return params;
}

const BY_KEY = new Map(FIELDS.map((field) => [SAMPLING_LIMITS[field].key, field]));
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;

/**
 * Turns user input keyed by snake_case names (`{ num_steps: "30", guider: "linear" }`, from CLI
 * flags, a form or JSON) into overrides for `resolveSamplingParams`. Decimal strings become
 * numbers; `null` and `undefined` mean "use the default". Ranges are checked by
 * `resolveSamplingParams`.
 *
 * @throws {ParameterError} for a key that is not a sampling parameter.
 */
export function parseSamplingOverrides(
  input: Readonly<Record<string, unknown>>,
): Partial<SamplingParams> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(input)) {
    const field = BY_KEY.get(key);
    if (!field) {
      throw new ParameterError(
        key,
        raw,
        "is not a sampling parameter",
        [...BY_KEY.keys()].join(", "),
      );
    }
    if (raw === null || raw === undefined) continue;
    const numeric = SAMPLING_LIMITS[field].kind !== "choice";
    out[field] = numeric && typeof raw === "string" && DECIMAL.test(raw) ? Number(raw) : raw;
  }
  return out as Partial<SamplingParams>;
}
