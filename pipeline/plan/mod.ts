/**
 * The memory plan: peak memory of a generation per component, before running it (GPU memory on
 * CUDA, resident memory on the CPU), the largest `decoding_t` that fits a budget, and the
 * service's default `decoding_t`. `deno task plan` prints it; docs/gpu.md says what it rests on.
 *
 * @example
 * ```ts
 * import { GPUS, largestDecodingT, planMemory } from "./pipeline/plan/mod.ts";
 * const plan = planMemory({ config, precision: "fp16", provider: "cuda",
 *   frames: 25, width: 1024, height: 576, decodingT: 4 });
 * const { decodingT } = largestDecodingT({ config, precision: "fp16", provider: "cuda" },
 *   GPUS.h100.memoryBytes);
 * ```
 *
 * @module
 */

export {
  CPU_PROCESS_BYTES,
  CUDA_CONTEXT_BYTES,
  CUDA_SESSION_BYTES,
  type GraphActivations,
  type MemoryPlan,
  PLAN_PROVIDERS,
  planMemory,
  type PlanProvider,
  type PlanRequest,
} from "./memory_plan.ts";
export {
  chooseDecodingT,
  type DecodingChoice,
  type DecodingQuestion,
  type LargestDecodingT,
  largestDecodingT,
} from "./choose_decoding_t.ts";
export { GPU_NAMES, type GpuName, GPUS, type GpuSpec, gpuSpec } from "./gpus.ts";
export { type GpuMemoryProbe, parseMemoryTotal, queryGpuMemory } from "./gpu_memory.ts";
export { buildGraphStructure, graphInputDims, type RunShape } from "./graph_structure.ts";
export {
  type ServiceDecodingQuestion,
  type ServiceDecodingT,
  serviceDecodingT,
} from "./service_decoding_t.ts";
