/**
 * The service's limits on one job (`MAX_JOB_COST`, `MAX_JOB_MEMORY_GB`), their defaults, and the
 * error of a job over one of them. Light on purpose (no plan, no graphs): the settings module
 * imports it. `job_cost.ts` computes a job's cost and checks it against these.
 *
 * @module
 */

/** Execution providers a cost can be planned for. */
export type CostProvider = "cpu" | "cuda" | "webgpu";

const GIB = 1024 ** 3;

/**
 * `MAX_JOB_COST` when unset: SVD-XT at its full size (25 frames at 1024×576) with 50 steps,
 * 737,280,000. The reference runs take 25–30 steps; a 2048² request is refused above 3 frames at
 * 50 steps (or 1 frame at 175 steps).
 */
export const DEFAULT_MAX_JOB_COST = 25 * 1024 * 576 * 50;

/**
 * `MAX_JOB_MEMORY_GB` when unset and the GPU's memory is not known (GiB): 16 on the CPU provider,
 * which keeps a 24 GB machine alive with room for the service and the OS (the CPU plan is 27–41 %
 * above measured peaks, docs/gpu.md); 22 on a GPU, a 24 GB L4's usable memory less a margin.
 */
export const DEFAULT_MAX_JOB_MEMORY_GIB = { cpu: 16, gpu: 22 } as const;

/** The service's limits on one job. */
export interface JobLimits {
  /** Largest frames × width × height × steps (`MAX_JOB_COST`). */
  readonly maxCost: number;
  /** Largest planned peak memory, bytes (`MAX_JOB_MEMORY_GB`). */
  readonly maxMemoryBytes: number;
}

/** {@linkcode JobLimits} and where the memory limit came from, for the start log. */
export interface ResolvedJobLimits extends JobLimits {
  /** `MAX_JOB_MEMORY_GB`, `the GPU's memory (…)`, or `default for the CPU provider`. */
  readonly memorySource: string;
}

/** Which limit a job is over. */
export type JobLimitName = "MAX_JOB_COST" | "MAX_JOB_MEMORY_GB";

/**
 * A job over one of the service's limits. `code` is the error code the HTTP layer answers with
 * (422 `job_too_large`); the message names the limit, its value and the request's.
 */
export class JobLimitError extends RangeError {
  /** `job_too_large`. */
  readonly code = "job_too_large";
  readonly limit: JobLimitName;
  /** The request's value: its cost, or its planned peak in GiB. */
  readonly value: number;
  /** The limit's value, in the same unit. */
  readonly allowed: number;
  constructor(limit: JobLimitName, value: number, allowed: number, message: string) {
    super(message);
    this.name = "JobLimitError";
    this.limit = limit;
    this.value = value;
    this.allowed = allowed;
  }
}

/** What {@linkcode resolveJobLimits} needs: the settings and what the service knows at start. */
export interface JobLimitSettings {
  /** `MAX_JOB_COST`; default {@linkcode DEFAULT_MAX_JOB_COST}. */
  readonly maxJobCost?: number;
  /** `MAX_JOB_MEMORY_GB`, GiB; default: see {@linkcode resolveJobLimits}. */
  readonly maxJobMemoryGb?: number;
  /**
   * The provider jobs run on, or `auto` (`ORT_PROVIDER=auto`: a GPU where its memory is known,
   * else the CPU).
   */
  readonly provider: CostProvider | "auto";
  /** The GPU's memory as the service knows it (`nvidia-smi`, `GPU_MEMORY_GB`), bytes. */
  readonly gpuBudgetBytes?: number;
}

/**
 * The service's limits. `MAX_JOB_MEMORY_GB` wins when set; otherwise on a GPU provider the GPU's
 * memory when known (the budget `decoding_t` is chosen for), else
 * {@linkcode DEFAULT_MAX_JOB_MEMORY_GIB} (`auto` without a known GPU: the CPU's).
 */
export function resolveJobLimits(settings: JobLimitSettings): ResolvedJobLimits {
  const maxCost = settings.maxJobCost ?? DEFAULT_MAX_JOB_COST;
  if (settings.maxJobMemoryGb !== undefined) {
    return {
      maxCost,
      maxMemoryBytes: settings.maxJobMemoryGb * GIB,
      memorySource: "MAX_JOB_MEMORY_GB",
    };
  }
  const gpuKnown = settings.gpuBudgetBytes !== undefined;
  if (settings.provider === "cpu" || (settings.provider === "auto" && !gpuKnown)) {
    return {
      maxCost,
      maxMemoryBytes: DEFAULT_MAX_JOB_MEMORY_GIB.cpu * GIB,
      memorySource: `default for the CPU provider (${DEFAULT_MAX_JOB_MEMORY_GIB.cpu} GiB of RAM)`,
    };
  }
  if (gpuKnown) {
    return {
      maxCost,
      maxMemoryBytes: settings.gpuBudgetBytes!,
      memorySource: `the GPU's memory (${(settings.gpuBudgetBytes! / GIB).toFixed(2)} GiB)`,
    };
  }
  return {
    maxCost,
    maxMemoryBytes: DEFAULT_MAX_JOB_MEMORY_GIB.gpu * GIB,
    memorySource: `default for a GPU of unknown memory (${DEFAULT_MAX_JOB_MEMORY_GIB.gpu} GiB)`,
  };
}
