/**
 * The service's default `decoding_t`, decided once at start: what a request without
 * `decoding_t` gets. The memory budget is the GPU's memory as `nvidia-smi` reports it and/or the
 * `GPU_MEMORY_GB` setting; when both are known the smaller wins (a MIG slice or a shared GPU is
 * smaller than the card `nvidia-smi` describes; a setting larger than the card is a mistake).
 * With neither (a CPU host, or an API process without a GPU and without the setting) the model's
 * configured default stays. Where the batched UNet would force a smaller `decoding_t`, the CFG
 * batch is split into two UNet calls instead (`unetBatch: "split"`: the same video, about half the
 * UNet's memory).
 *
 * @example
 * ```ts
 * const choice = await serviceDecodingT({ config, precision: "fp16", provider: "auto" });
 * const sampling = { ...config.sampling, decodingT: choice.decodingT };
 * ```
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import type { AttentionForm } from "../networks/layers.ts";
import { chooseDecodingT } from "./choose_decoding_t.ts";
import { type GpuMemoryProbe, queryGpuMemory } from "./gpu_memory.ts";

/** What the service knows at start. */
export interface ServiceDecodingQuestion {
  readonly config: SvdConfig;
  readonly precision: Precision;
  /** The model's attention form (`model.json` `attention`; default fused). */
  readonly attention?: AttentionForm;
  /** `ORT_PROVIDER`: `cpu` never probes the GPU. */
  readonly provider: "auto" | "cuda" | "webgpu" | "cpu";
  /** `GPU_MEMORY_GB` (GiB), when set. */
  readonly gpuMemoryGb?: number;
  /** False for a process that runs no model (the API role): no GPU probe. Default true. */
  readonly probeGpu?: boolean;
  /** The probe (default: `nvidia-smi` on device 0). */
  readonly probe?: () => Promise<GpuMemoryProbe>;
}

/** The decision, with everything the start log should say about it. */
export interface ServiceDecodingT {
  readonly decodingT: number;
  /**
   * How a step's CFG batch reaches the UNet by default: `split` when the batched UNet would force
   * a smaller `decoding_t` (or not fit at all) and the split one fits better.
   */
  readonly unetBatch: UnetBatch;
  /** `plan` (chosen from the budget) or `config` (the model's default, no budget known). */
  readonly source: "plan" | "config";
  /** Where the budget came from: `nvidia-smi`, `GPU_MEMORY_GB`, or both (the smaller). */
  readonly budget?: { readonly bytes: number; readonly from: string };
  /** False when even `decoding_t = 1` is planned over the budget. */
  readonly fits?: boolean;
  readonly plannedBytes?: number;
  /** Why there is no budget, why the GPU probe found nothing, or that nothing fits. */
  readonly note?: string;
}

const GIB = 1024 ** 3;

/** Decides the default `decoding_t` (see the module doc). Never throws for a missing GPU. */
export async function serviceDecodingT(
  question: ServiceDecodingQuestion,
): Promise<ServiceDecodingT> {
  const configured = question.config.sampling.decodingT;
  if (question.provider === "cpu") {
    return {
      decodingT: configured,
      unetBatch: "cfg",
      source: "config",
      note: "ORT_PROVIDER=cpu: no GPU budget",
    };
  }
  const budgets: { bytes: number; from: string }[] = [];
  let note: string | undefined;
  if (question.probeGpu !== false) {
    const probe = await (question.probe ?? (() => queryGpuMemory(0)))();
    if (probe.found) budgets.push({ bytes: probe.bytes, from: `nvidia-smi (${probe.name})` });
    else note = probe.reason;
  }
  if (question.gpuMemoryGb !== undefined) {
    budgets.push({ bytes: question.gpuMemoryGb * GIB, from: "GPU_MEMORY_GB" });
  }
  if (budgets.length === 0) {
    return {
      decodingT: configured,
      unetBatch: "cfg",
      source: "config",
      note: `${note ? `${note}; ` : ""}no GPU memory known (set GPU_MEMORY_GB)`,
    };
  }
  const budget = budgets.reduce((a, b) => (b.bytes < a.bytes ? b : a));
  const choice = chooseDecodingT(
    {
      config: question.config,
      precision: question.precision,
      attention: question.attention,
      provider: "cuda",
      unetBatch: "auto",
    },
    budget.bytes,
    configured,
  );
  const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;
  const warning = choice.fits
    ? undefined
    : `even decoding_t = 1 is planned at ${gib(choice.plannedBytes)}, over the ${
      gib(budget.bytes)
    } budget: generations may run out of GPU memory`;
  return {
    decodingT: choice.decodingT,
    unetBatch: choice.unetBatch,
    source: "plan",
    budget,
    fits: choice.fits,
    plannedBytes: choice.plannedBytes,
    note: [note, warning].filter(Boolean).join("; ") || undefined,
  };
}
