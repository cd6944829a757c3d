/**
 * The sampling block of a model's config: the defaults of the request's sampling fields (declared,
 * with their ranges, in `pipeline/request/fields.ts`) and the EDM noise schedule, which is a
 * property of the model and not a request field.
 *
 * @module
 */

import type { SamplingParams } from "../request/fields.ts";
import type { Limit } from "./limits.ts";

/**
 * Sampling defaults of a model, as resolved from its config (every field filled): a default for
 * every sampling field of a request, and the noise schedule.
 */
export type SamplingDefaults = Omit<SamplingParams, "seed"> & {
  /** `seed`, or `null` for a fresh random seed per run (sgm's script fixes 23). */
  readonly seed: number | null;
  /** `sigma_min` of the EDM discretization, 0.002. */
  readonly sigmaMin: number;
  /** `sigma_max` of the EDM discretization, 700. */
  readonly sigmaMax: number;
  /** `rho` of the EDM discretization, 7. */
  readonly rho: number;
};

/** A limit and the snake_case name of its YAML key. */
export type FieldLimit = Limit & { readonly key: string };

/** Allowed values of the EDM noise schedule (config only; not a request field). */
export const SCHEDULE_LIMITS: {
  readonly [K in "sigmaMin" | "sigmaMax" | "rho"]: FieldLimit;
} = {
  sigmaMin: { key: "sigma_min", kind: "number", min: 0, max: 1, exclusiveMin: true },
  sigmaMax: { key: "sigma_max", kind: "number", min: 0, max: 10_000, exclusiveMin: true },
  rho: { key: "rho", kind: "number", min: 0, max: 100, exclusiveMin: true },
};
