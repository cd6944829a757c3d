/**
 * `deno task plan --model svd_xt [--gpu l4,h100] [--precision fp16|fp32] [--provider cuda|cpu]
 * [--frames N] [--width W --height H] [--unet-batch cfg|split] [--json]`: the planned peak memory
 * of one generation per component and `decoding_t` (1 … frames), and the largest `decoding_t`
 * that fits each GPU — with the CFG batch in one UNet call (`cfg`, the default) and, where that
 * does not fit every frame into one decoder call, also split into two calls.
 *
 * `--model` is a config name under `configs/` (`svd`, `svd_xt`, …), a config file, or a converted
 * model directory (its `model.json` gives the config, precision and attention form). Without
 * `--gpu`, every known GPU is checked. docs/gpu.md says what the figures rest on.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UNET_BATCHES, type UnetBatch } from "../conditioning/cfg_batch.ts";
import { loadConfig, type SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import type { AttentionForm } from "../networks/layers.ts";
import {
  GPU_NAMES,
  GPUS,
  type GpuSpec,
  gpuSpec,
  largestDecodingT,
  type MemoryPlan,
  PLAN_PROVIDERS,
  planMemory,
  type PlanProvider,
} from "../plan/mod.ts";
import { runCli, UsageError } from "./run_cli.ts";

const USAGE = `Usage: deno task plan --model NAME|CONFIG.yaml|MODEL_DIR [--gpu ${
  GPU_NAMES.join("|")
}[,…]]
       [--precision fp16|fp32] [--provider cuda|cpu] [--frames N] [--width W --height H]
       [--unet-batch cfg|split] [--json]`;
const ROOT = new URL("../..", import.meta.url).pathname;
const GIB = 1024 ** 3;

/** Runs the CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      gpu: { type: "string" },
      precision: { type: "string" },
      provider: { type: "string", default: "cuda" },
      frames: { type: "string" },
      width: { type: "string" },
      height: { type: "string" },
      "unet-batch": { type: "string", default: "cfg" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.model) throw new UsageError(`--model is required\n${USAGE}`);
  const provider = values.provider as PlanProvider;
  if (!(PLAN_PROVIDERS as readonly string[]).includes(provider)) {
    throw new UsageError(
      `--provider must be one of ${PLAN_PROVIDERS.join(", ")}, got "${values.provider}"`,
    );
  }
  const model = await openModel(values.model);
  const precision = values.precision ?? model.precision ?? (provider === "cpu" ? "fp32" : "fp16");
  if (precision !== "fp16" && precision !== "fp32") {
    throw new UsageError(`--precision must be fp16 or fp32, got "${values.precision}"`);
  }
  const s = model.config.sampling;
  const run = {
    frames: positive("frames", values.frames, s.numFrames),
    width: positive("width", values.width, s.width),
    height: positive("height", values.height, s.height),
  };
  for (const side of ["width", "height"] as const) {
    if (run[side] % 64 !== 0) {
      throw new UsageError(`--${side} must be a multiple of 64, got ${run[side]}`);
    }
  }
  const unetBatch = values["unet-batch"] as UnetBatch;
  if (!(UNET_BATCHES as readonly string[]).includes(unetBatch)) {
    throw new UsageError(
      `--unet-batch must be one of ${UNET_BATCHES.join(", ")}, got "${values["unet-batch"]}"`,
    );
  }
  let gpus: GpuSpec[];
  try {
    gpus = values.gpu ? values.gpu.split(",").map((g) => gpuSpec(g.trim())) : Object.values(GPUS);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }

  const attention = model.attention ?? "fused";
  const question = { config: model.config, precision, provider, attention } as const;
  const plans: MemoryPlan[] = [];
  for (let t = 1; t <= run.frames; t++) {
    plans.push(planMemory({ ...question, ...run, decodingT: t, unetBatch }));
  }
  const largest = (gpu: GpuSpec, batch: UnetBatch) =>
    largestDecodingT({ ...question, run, unetBatch: batch }, gpu.memoryBytes).decodingT ?? null;
  const fits = gpus.map((gpu) => ({
    gpu: gpu.name,
    label: gpu.label,
    memoryBytes: gpu.memoryBytes,
    largestDecodingT: largest(gpu, unetBatch),
    largestDecodingTSplit: largest(gpu, "split"),
  }));

  if (values.json) {
    console.log(
      JSON.stringify({
        model: model.config.name,
        precision,
        provider,
        ...run,
        unetBatch,
        plans,
        fits,
      }),
    );
    return;
  }
  const what = provider === "cuda" ? "GPU memory" : "resident memory (CPU provider)";
  console.log(
    `${model.config.name}, ${precision}${
      attention === "fused" ? "" : `, ${attention} attention`
    }, ${run.frames} frames at ${run.width}×${run.height}: ` +
      `planned peak ${what}, GiB`,
  );
  const first = plans[0];
  console.log(
    `runtime ${gib(first.components.runtime)}  weights ${gib(first.components.weights)}  ` +
      `encoders ${gib(first.components.encoders)}  UNet (${
        unetBatch === "cfg" ? `CFG batch ${2 * run.frames}` : `split: 2 calls of ${run.frames}`
      }) ${gib(first.components.unet)}`,
  );
  console.log("decoding_t  VAE decode  total");
  for (const plan of plans) {
    console.log(
      `${String(plan.request.decodingT).padStart(10)}  ${
        gib(plan.components.vaeDecode).padStart(10)
      }  ${gib(plan.totalBytes).padStart(5)}`,
    );
  }
  for (const f of fits) {
    const verdict = f.largestDecodingT === null
      ? `nothing fits (decoding_t 1 needs ${gib(plans[0].totalBytes)} GiB)`
      : `largest decoding_t ${f.largestDecodingT}`;
    // Where the batched UNet leaves frames for a second decoder call, say what splitting gives.
    const split = unetBatch === "cfg" && (f.largestDecodingT ?? 0) < run.frames
      ? `; with the CFG batch split (--unet-batch split): ${
        f.largestDecodingTSplit === null
          ? "nothing fits either"
          : `largest decoding_t ${f.largestDecodingTSplit}`
      }`
      : "";
    console.log(`${f.gpu} (${f.label}, ${gib(f.memoryBytes)} GiB): ${verdict}${split}`);
  }
}

interface OpenedModel {
  readonly config: SvdConfig;
  readonly precision?: Precision;
  /** A model directory's attention form (its graphs are planned in it); configs: fused. */
  readonly attention?: AttentionForm;
}

/** A config name, a config file, or a converted model directory. */
async function openModel(spec: string): Promise<OpenedModel> {
  const manifestPath = `${spec.replace(/\/+$/, "")}/model.json`;
  try {
    const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
    return {
      config: manifest.config,
      precision: manifest.precision,
      attention: manifest.attention ?? "fused",
    };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound) && !(error instanceof Deno.errors.NotADirectory)) {
      throw error;
    }
  }
  const path = /\.ya?ml$/.test(spec) ? spec : `${ROOT}configs/${spec}.yaml`;
  try {
    return { config: await loadConfig(path) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `--model "${spec}" is neither a model directory, a config file, nor a config under configs/`,
      );
    }
    throw error;
  }
}

function positive(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new UsageError(`--${flag} must be a positive integer, got "${raw}"`);
  }
  return value;
}

function gib(bytes: number): string {
  return (bytes / GIB).toFixed(2);
}

if (import.meta.main) await runCli(main);
