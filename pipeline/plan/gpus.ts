/**
 * GPUs the plan knows by name, with the memory `nvidia-smi --query-gpu=memory.total` reports
 * for them (MiB). That is the memory a process can ask for; the CUDA context and the libraries
 * come out of it (the plan counts them as its `runtime` component).
 *
 * Values as NVIDIA's tools report them for these boards (the marketing sizes differ: an L4 is
 * "24 GB", an H100 "80 GB"): L4 23034 MiB, A100 40 GB 40960 MiB, A100 80 GB 81920 MiB,
 * H100 80 GB HBM3 81559 MiB, H200 143771 MiB. Not measured here (no GPU was lent); a host's own
 * `nvidia-smi` is read at start by {@linkcode queryGpuMemory} and wins over this table.
 *
 * @module
 */

const MIB = 1024 ** 2;

/** Names accepted by `deno task plan --gpu`. */
export const GPU_NAMES = ["l4", "a100-40", "a100-80", "h100", "h200"] as const;

/** One of {@linkcode GPU_NAMES}. */
export type GpuName = typeof GPU_NAMES[number];

/** A known GPU. */
export interface GpuSpec {
  readonly name: GpuName;
  readonly label: string;
  /** `memory.total` in bytes. */
  readonly memoryBytes: number;
}

/** The catalogue. */
export const GPUS: Readonly<Record<GpuName, GpuSpec>> = {
  "l4": { name: "l4", label: "NVIDIA L4", memoryBytes: 23034 * MIB },
  "a100-40": { name: "a100-40", label: "NVIDIA A100 40GB", memoryBytes: 40960 * MIB },
  "a100-80": { name: "a100-80", label: "NVIDIA A100 80GB", memoryBytes: 81920 * MIB },
  "h100": { name: "h100", label: "NVIDIA H100 80GB HBM3", memoryBytes: 81559 * MIB },
  "h200": { name: "h200", label: "NVIDIA H200", memoryBytes: 143771 * MIB },
};

/**
 * The GPU named `name`.
 *
 * @throws {RangeError} naming the value and the known names
 */
export function gpuSpec(name: string): GpuSpec {
  const spec = (GPUS as Record<string, GpuSpec>)[name.toLowerCase()];
  if (!spec) {
    throw new RangeError(`gpu = "${name}" is not known: allowed ${GPU_NAMES.join(", ")}`);
  }
  return spec;
}
