/**
 * Peak memory of a generation, per component, before running it: the GPU memory on the CUDA
 * provider, the resident memory (RAM) on the CPU provider. Issue 13's admission by cost and the
 * service's choice of `decoding_t` both start here.
 *
 * What each figure rests on:
 * - **Weights**: the exact bytes of every initializer of the four graphs as the converter builds
 *   them (UNet and image encoder in the model's precision, the VAE in float32). On CUDA the
 *   sessions place them outside the arena (`session.use_device_allocator_for_initializers`, set
 *   by `OnnxSession`), so they cost what they weigh. On the CPU every float16 weight is counted
 *   as float32: the CPU provider computes float16 graphs through float32 casts.
 * - **Activations**: {@linkcode runAllocations} replays each graph's tensors at the run's shapes
 *   (analytic sizes from the graph, freed after their last use; see `activation_memory.ts` for
 *   the assumptions: no fusion or in-place reuse, a cuDNN workspace of input + output per Conv,
 *   flash/memory-efficient attention) through a model of ORT's BFC arena. Every session keeps its
 *   own arena for its lifetime (onnxruntime-node cannot ask for arena shrinkage), so the arenas
 *   of the four graphs add up. On CUDA the sessions that run before the decoder keep the
 *   power-of-two regions they reserved; the decoder, last, gets at most what is left (the arena
 *   backs off by 10 % steps when `cudaMalloc` fails), so it needs only its in-use peak. On the
 *   CPU the arena's regions become resident only where written, so every graph counts the bytes
 *   of its regions up to their highest used address. Checked against peak RSS of real runs of
 *   the tiny model at 1024×576, 14 frames, 2 steps (docs/gpu.md): planned 3.0 / 6.6 GiB,
 *   measured 2.1 / 5.2 GiB at `decoding_t` 2 / 8; the per-frame slope of the decoder 0.59 GiB
 *   planned, 0.51 GiB measured. The plan is high on the CPU (ORT fuses and re-lays out nodes
 *   there), which is the safe side for admission.
 * - **UNet batch**: the CFG batch of 2·frames per call, or one video of `frames` with
 *   `unetBatch: "split"` (the sampler's two calls per step): about half the UNet's arena.
 * - **Runtime** (assumption, to be replaced by a measurement with `deno task bench gpu`): CUDA
 *   context with lazily loaded cuBLAS/cuDNN kernels 768 MiB, plus 128 MiB per session (cuBLAS
 *   workspace, cuDNN handle, stream). On the CPU: Deno, ONNX Runtime and the JS side of a
 *   generation (the decoded float32 video and its uint8 frames), with a base measured here.
 *
 * @example
 * ```ts
 * import { planMemory } from "./memory_plan.ts";
 * const plan = planMemory({ config, precision: "fp16", provider: "cuda",
 *   frames: 25, width: 1024, height: 576, decodingT: 14 });
 * plan.totalBytes; // peak GPU memory of the generation
 * ```
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import { graphPrecision } from "../convert/convert.ts";
import { GRAPH_FILES, type GraphName } from "../model_json/mod.ts";
import type { AttentionForm } from "../networks/layers.ts";
import type { GraphBuilder } from "../onnx/graph.ts";
import { inferShapes } from "../onnx/shape_inference.ts";
import { runAllocations, simulateBfcArena } from "./activation_memory.ts";
import { buildGraphStructure, graphInputDims, type RunShape } from "./graph_structure.ts";

/** Providers the plan models. */
export const PLAN_PROVIDERS = ["cuda", "cpu"] as const;

/** One of {@linkcode PLAN_PROVIDERS}. */
export type PlanProvider = typeof PLAN_PROVIDERS[number];

/** What to plan. */
export interface PlanRequest extends RunShape {
  readonly config: SvdConfig;
  /** The model's precision (`model.json` `precision`): fp16 for GPUs, fp32 for CPUs. */
  readonly precision: Precision;
  readonly provider: PlanProvider;
  /**
   * The model's attention form (`model.json` `attention`, default fused). Decomposed attention
   * holds every score of a head, which the plan then counts.
   */
  readonly attention?: AttentionForm;
}

/** Activation memory of one graph's session. */
export interface GraphActivations {
  /** Largest sum of live tensors during one call (a lower bound for any allocator). */
  readonly livePeakBytes: number;
  /** The node at that peak (for reports). */
  readonly livePeakNode: string;
  /** Largest bytes in use in the arena (after 256 B rounding and chunk waste). */
  readonly inUseBytes: number;
  /** Bytes of the arena's power-of-two regions after one call. */
  readonly reservedBytes: number;
  /** Bytes of those regions ever written (what is resident on the CPU). */
  readonly touchedBytes: number;
  /** What the plan counts for this session (see the module doc). */
  readonly countedBytes: number;
}

/** The plan: bytes per component and in total. */
export interface MemoryPlan {
  readonly request: Omit<PlanRequest, "config" | "unetBatch"> & {
    readonly model: string;
    readonly unetBatch: UnetBatch;
  };
  /** CUDA context and per-session handles, or the process base on the CPU. */
  readonly runtimeBytes: number;
  /** Weights per graph. */
  readonly weightBytes: Readonly<Record<GraphName, number>>;
  /** Activations per graph. */
  readonly activations: Readonly<Record<GraphName, GraphActivations>>;
  /** JS-side buffers of one generation (host RAM; part of the total only on the CPU). */
  readonly hostBytes: number;
  /** The components as the issue names them. */
  readonly components: {
    readonly runtime: number;
    readonly weights: number;
    readonly encoders: number;
    readonly unet: number;
    readonly vaeDecode: number;
  };
  /** Peak memory of the generation: the sum of the components. */
  readonly totalBytes: number;
}

const MIB = 1024 ** 2;
/** Assumption (see the module doc): CUDA context with cuBLAS and cuDNN loaded lazily. */
export const CUDA_CONTEXT_BYTES = 768 * MIB;
/** Assumption: per session, cuBLAS workspace, cuDNN handle and stream. */
export const CUDA_SESSION_BYTES = 128 * MIB;
/**
 * Measured: Deno (main and inference-worker isolates) with ONNX Runtime and the tiny model's
 * sessions. The tiny model's default run (4 frames, 128×64) peaks at 188 MiB RSS, of which the
 * plan attributes 60 MiB to weights, activations and the video buffers.
 */
export const CPU_PROCESS_BYTES = 128 * MIB;

const GRAPHS = Object.keys(GRAPH_FILES) as GraphName[];
const structures = new Map<string, GraphBuilder>();
const replays = new Map<string, Omit<GraphActivations, "countedBytes">>();
const MAX_REPLAYS = 512;

/**
 * Plans the memory of one generation.
 *
 * @throws {RangeError} when the shape is not one the model can run (sizes not multiples of 64,
 *   frames or decodingT below 1)
 */
export function planMemory(request: PlanRequest): MemoryPlan {
  const { config, precision, provider } = request;
  checkShape(request);
  const cpu = provider === "cpu";
  const weightBytes = {} as Record<GraphName, number>;
  const activations = {} as Record<GraphName, GraphActivations>;
  for (const name of GRAPHS) {
    // The CPU provider computes float16 graphs in float32: plan the float32 graph there.
    const { key, graph } = structure(
      name,
      config,
      cpu ? "fp32" : precision,
      request.attention ?? "fused",
    );
    weightBytes[name] = graph.initializers.reduce((sum, i) => sum + i.byteLength, 0);
    const replay = replayGraph(key, graph, graphInputDims(name, config, request));
    const last = name === "vae_decoder";
    activations[name] = {
      ...replay,
      countedBytes: cpu ? replay.touchedBytes : last ? replay.inUseBytes : replay.reservedBytes,
    };
  }
  const pixels = request.frames * request.width * request.height * 3;
  const hostBytes = pixels * 4 + pixels; // decoded float32 video + its uint8 frames
  const runtime = cpu ? CPU_PROCESS_BYTES : CUDA_CONTEXT_BYTES + GRAPHS.length * CUDA_SESSION_BYTES;
  const components = {
    runtime: runtime + (cpu ? hostBytes : 0),
    weights: GRAPHS.reduce((sum, g) => sum + weightBytes[g], 0),
    encoders: activations.image_encoder.countedBytes + activations.vae_encoder.countedBytes,
    unet: activations.unet.countedBytes,
    vaeDecode: activations.vae_decoder.countedBytes,
  };
  return {
    request: {
      model: config.name,
      precision,
      provider,
      attention: request.attention ?? "fused",
      frames: request.frames,
      width: request.width,
      height: request.height,
      decodingT: request.decodingT,
      unetBatch: request.unetBatch ?? "cfg",
    },
    runtimeBytes: runtime,
    weightBytes,
    activations,
    hostBytes,
    components,
    totalBytes: Object.values(components).reduce((a, b) => a + b, 0),
  };
}

/** The graph structure, built once per (config, graph, precision, attention) and reused. */
function structure(
  name: GraphName,
  config: SvdConfig,
  precision: Precision,
  attention: AttentionForm,
): { key: string; graph: GraphBuilder } {
  const key = `${JSON.stringify([config.unet, config.vae, config.imageEncoder])}|${name}|${
    graphPrecision(name, precision)
  }|${attention}`;
  let graph = structures.get(key);
  if (!graph) {
    graph = buildGraphStructure(name, config, precision, attention);
    structures.set(key, graph);
  }
  return { key, graph };
}

/** One call's allocations replayed through the arena model, once per graph and input dims. */
function replayGraph(
  key: string,
  graph: GraphBuilder,
  inputDims: Record<string, number[]>,
): Omit<GraphActivations, "countedBytes"> {
  const replayKey = `${key}|${JSON.stringify(inputDims)}`;
  let replay = replays.get(replayKey);
  if (!replay) {
    const run = runAllocations(graph, inferShapes(graph, inputDims));
    const arena = simulateBfcArena(run.events);
    replay = {
      livePeakBytes: run.livePeakBytes,
      livePeakNode: run.livePeakNode,
      inUseBytes: arena.peakInUseBytes,
      reservedBytes: arena.reservedBytes,
      touchedBytes: arena.touchedBytes,
    };
    if (replays.size >= MAX_REPLAYS) replays.clear(); // bounded: admission plans many shapes
    replays.set(replayKey, replay);
  }
  return replay;
}

function checkShape(run: RunShape): void {
  for (const [field, value] of [["width", run.width], ["height", run.height]] as const) {
    if (!Number.isInteger(value) || value < 64 || value % 64 !== 0) {
      throw new RangeError(`${field} = ${value} is not a positive multiple of 64`);
    }
  }
  for (const [field, value] of [["frames", run.frames], ["decodingT", run.decodingT]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${field} = ${value} is not a positive integer`);
    }
  }
}
