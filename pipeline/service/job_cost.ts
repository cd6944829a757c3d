/**
 * What one generation costs, and whether the service takes it: admission by cost. For a fully
 * resolved request — frames, width and height as generated (after the size policy), steps,
 * `decoding_t` — on the loaded model and execution provider:
 *
 * - **cost** = frames × width × height × steps: the work, a proxy for how long the only slot is
 *   held (the UNet's time grows with it);
 * - **memory** = the planned peak of `pipeline/plan/` (`planMemory`): GPU memory on CUDA (and on
 *   WebGPU, where the same arena model is the nearest estimate), resident memory (RAM) on the CPU
 *   provider. When the batched UNet would be over the memory limit and splitting the CFG batch into
 *   two UNet calls is not, the job is planned — and run — split (`unetBatch`).
 *
 * {@linkcode checkJobCost} compares both with the service's limits (`resolveJobLimits` in
 * `job_limits.ts`: `MAX_JOB_COST`, `MAX_JOB_MEMORY_GB`) and returns a `JobLimitError` naming the
 * limit and the request's value; the HTTP layer answers it with 422 before queueing anything.
 *
 * @example
 * ```ts
 * import { checkJobCost, jobCost, resolveJobLimits } from "./job_cost.ts";
 * const limits = resolveJobLimits({ provider: "cuda", gpuBudgetBytes: 23034 * 2 ** 20 });
 * const cost = jobCost(
 *   { frames: 25, width: 1024, height: 576, steps: 25, decodingT: 3 },
 *   { config, precision: "fp16" },
 *   "cuda",
 *   limits,
 * );
 * cost.unetBatch; // "split": the batched UNet does not fit an L4, the split one does
 * checkJobCost(cost, limits); // undefined: admitted
 * ```
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import type { AttentionForm } from "../networks/layers.ts";
import { type MemoryPlan, planMemory } from "../plan/mod.ts";
import { type CostProvider, JobLimitError, type JobLimits } from "./job_limits.ts";

export {
  type CostProvider,
  DEFAULT_MAX_JOB_COST,
  DEFAULT_MAX_JOB_MEMORY_GIB,
  JobLimitError,
  type JobLimitName,
  type JobLimits,
  type JobLimitSettings,
  type ResolvedJobLimits,
  resolveJobLimits,
} from "./job_limits.ts";

const GIB = 1024 ** 3;

/** A fully resolved request, as it will be generated. */
export interface JobShape {
  /** Video frames. */
  readonly frames: number;
  /** Size generated, after the size policy: multiples of 64. */
  readonly width: number;
  readonly height: number;
  /** Sampler steps. */
  readonly steps: number;
  /** Frames per VAE decoder call. */
  readonly decodingT: number;
}

/** The loaded model as the plan needs it (`model.json`: `config`, `precision`). */
export interface JobModel {
  readonly config: SvdConfig;
  readonly precision: Precision;
  /** The model's attention form (`model.json` `attention`; default fused). */
  readonly attention?: AttentionForm;
}

/** The cost of one job. */
export interface JobCost {
  readonly shape: JobShape;
  /** frames × width × height × steps. */
  readonly cost: number;
  /** Planned peak memory, bytes (of `plan`). */
  readonly memoryBytes: number;
  /** What `memoryBytes` is: GPU memory or resident memory. */
  readonly memoryKind: "GPU memory" | "RAM";
  /** How the job's UNet calls are batched (`split` only where that is what fits the limit). */
  readonly unetBatch: UnetBatch;
  readonly plan: MemoryPlan;
}

/**
 * The cost of `shape` on `model` and `provider`: see the module doc. Plans are cached per shape
 * (34 ms for a new full-size shape, under 1 ms for a known one).
 *
 * @param limits when given, a job whose batched UNet is over `maxMemoryBytes` is planned split
 *   if that fits (without limits, always batched)
 * @throws {RangeError} for a shape the model cannot run (sides not multiples of 64, frames,
 *   steps or decodingT below 1)
 */
export function jobCost(
  shape: JobShape,
  model: JobModel,
  provider: CostProvider,
  limits?: JobLimits,
): JobCost {
  if (!Number.isInteger(shape.steps) || shape.steps < 1) {
    throw new RangeError(`steps = ${shape.steps} is not a positive integer`);
  }
  const planProvider = provider === "cpu" ? "cpu" : "cuda";
  const plan = (unetBatch: UnetBatch) =>
    planMemory({
      config: model.config,
      precision: model.precision,
      attention: model.attention,
      provider: planProvider,
      frames: shape.frames,
      width: shape.width,
      height: shape.height,
      decodingT: shape.decodingT,
      unetBatch,
    });
  let chosen = plan("cfg");
  if (limits && chosen.totalBytes > limits.maxMemoryBytes) {
    const split = plan("split");
    if (split.totalBytes <= limits.maxMemoryBytes) chosen = split;
  }
  return {
    shape,
    cost: shape.frames * shape.width * shape.height * shape.steps,
    memoryBytes: chosen.totalBytes,
    memoryKind: planProvider === "cpu" ? "RAM" : "GPU memory",
    unetBatch: chosen.request.unetBatch,
    plan: chosen,
  };
}

/** The first limit `cost` is over, as a {@linkcode JobLimitError}, or undefined when admitted. */
export function checkJobCost(cost: JobCost, limits: JobLimits): JobLimitError | undefined {
  const { frames, width, height, steps, decodingT } = cost.shape;
  if (cost.cost > limits.maxCost) {
    return new JobLimitError(
      "MAX_JOB_COST",
      cost.cost,
      limits.maxCost,
      `This generation costs ${frames} frames × ${width}×${height} pixels × ${steps} steps = ` +
        `${grouped(cost.cost)}, over MAX_JOB_COST = ${grouped(limits.maxCost)}: ask for fewer ` +
        "frames, steps or pixels",
    );
  }
  if (cost.memoryBytes > limits.maxMemoryBytes) {
    const [value, allowed] = [cost.memoryBytes / GIB, limits.maxMemoryBytes / GIB];
    return new JobLimitError(
      "MAX_JOB_MEMORY_GB",
      round2(value),
      round2(allowed),
      `This generation (${frames} frames at ${width}×${height}, decoding_t ${decodingT}) is ` +
        `planned to need ${value.toFixed(2)} GiB of ${cost.memoryKind}, over ` +
        `MAX_JOB_MEMORY_GB = ${allowed.toFixed(2)}: ask for a smaller decoding_t, fewer frames ` +
        "or fewer pixels",
    );
  }
  return undefined;
}

function grouped(value: number): string {
  return value.toLocaleString("en-US");
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
