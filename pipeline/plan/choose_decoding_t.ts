/**
 * The largest `decoding_t` (frames per VAE decoder call) whose planned peak memory fits a budget,
 * and the service's choice when a request sets none. Decoding more frames per call is not faster
 * per frame and changes the video only at chunk edges, so the choice never exceeds the model's
 * configured default (sgm's 14): a big GPU decodes as the reference does, a small one in smaller
 * chunks instead of running out of memory. Splitting the CFG batch into two UNet calls
 * (`unetBatch: "split"`) gives the same video with about half the UNet's memory, where changing
 * `decoding_t` changes it at chunk edges: with `unetBatch: "auto"` the chooser splits when that
 * lets it decode more frames per call.
 *
 * @module
 */

import type { UnetBatch } from "../conditioning/cfg_batch.ts";
import type { SvdConfig } from "../config/mod.ts";
import type { Precision } from "../config/network_configs.ts";
import type { AttentionForm } from "../networks/layers.ts";
import type { RunShape } from "./graph_structure.ts";
import { type MemoryPlan, planMemory, type PlanProvider } from "./memory_plan.ts";

/** What to plan for, without `decodingT` (the chooser varies it). */
export interface DecodingQuestion {
  readonly config: SvdConfig;
  readonly precision: Precision;
  readonly provider: PlanProvider;
  /** The model's attention form (`model.json` `attention`; default fused). */
  readonly attention?: AttentionForm;
  /** Default: the model's sampling defaults. */
  readonly run?: Partial<Omit<RunShape, "decodingT" | "unetBatch">>;
  /**
   * The UNet's batch (default `cfg`); `auto` (chooser only): `cfg`, unless `split` lets a larger
   * `decoding_t` fit.
   */
  readonly unetBatch?: UnetBatch | "auto";
}

/** Result of {@linkcode largestDecodingT}. */
export interface LargestDecodingT {
  /** Largest value in 1..frames whose plan fits, or undefined when not even 1 fits. */
  readonly decodingT?: number;
  /** The plan at that value (at 1 when none fits). */
  readonly plan: MemoryPlan;
}

/**
 * The largest `decodingT` in 1..frames whose planned total is at most `budgetBytes` (the plan
 * grows with `decodingT`, so the search stops at the first that does not fit).
 */
export function largestDecodingT(
  question: DecodingQuestion & { readonly unetBatch?: UnetBatch },
  budgetBytes: number,
): LargestDecodingT {
  const run = { ...runShape(question), unetBatch: question.unetBatch ?? "cfg" };
  let best: LargestDecodingT | undefined;
  for (let t = 1; t <= run.frames; t++) {
    const plan = planMemory({ ...question, ...run, decodingT: t });
    if (plan.totalBytes > budgetBytes) {
      return best ?? { plan };
    }
    best = { decodingT: t, plan };
  }
  return best!;
}

/** The service's choice of `decoding_t`. */
export interface DecodingChoice {
  /** The value requests without `decoding_t` get. */
  readonly decodingT: number;
  /** Whether the plan at `decodingT` fits the budget (false: even 1 frame per call does not). */
  readonly fits: boolean;
  /** The budget the choice was made for. */
  readonly budgetBytes: number;
  /** Planned peak at `decodingT`. */
  readonly plannedBytes: number;
  /** The UNet's batch the plan is for (`split` only when asked for, or chosen by `auto`). */
  readonly unetBatch: UnetBatch;
}

/**
 * `min(preferred, largest fitting)`, or 1 when nothing fits (`fits: false`: the caller should
 * warn; a generation may still run, since the plan is conservative). With `unetBatch: "auto"`,
 * the CFG batch is split when the batched plan cannot reach `preferred` and the split one fits
 * a larger value (or fits where the batched one does not).
 *
 * @param preferred the model's default `decoding_t` (default `config.sampling.decodingT`)
 */
export function chooseDecodingT(
  question: DecodingQuestion,
  budgetBytes: number,
  preferred = question.config.sampling.decodingT,
): DecodingChoice {
  if (question.unetBatch !== "auto") {
    return chooseFor(
      { ...question, unetBatch: question.unetBatch ?? "cfg" },
      budgetBytes,
      preferred,
    );
  }
  const batched = chooseFor({ ...question, unetBatch: "cfg" }, budgetBytes, preferred);
  if (batched.fits && batched.decodingT >= preferred) return batched;
  const split = chooseFor({ ...question, unetBatch: "split" }, budgetBytes, preferred);
  const better = split.fits && (!batched.fits || split.decodingT > batched.decodingT);
  return better || (!batched.fits && !split.fits) ? split : batched;
}

function chooseFor(
  question: DecodingQuestion & { readonly unetBatch: UnetBatch },
  budgetBytes: number,
  preferred: number,
): DecodingChoice {
  const { unetBatch } = question;
  const largest = largestDecodingT(question, budgetBytes);
  if (largest.decodingT === undefined) {
    return {
      decodingT: 1,
      fits: false,
      budgetBytes,
      plannedBytes: largest.plan.totalBytes,
      unetBatch,
    };
  }
  const decodingT = Math.min(preferred, largest.decodingT);
  const plan = decodingT === largest.decodingT
    ? largest.plan
    : planMemory({ ...question, ...runShape(question), decodingT, unetBatch });
  return { decodingT, fits: true, budgetBytes, plannedBytes: plan.totalBytes, unetBatch };
}

function runShape(question: DecodingQuestion): Omit<RunShape, "decodingT" | "unetBatch"> {
  const s = question.config.sampling;
  return {
    frames: question.run?.frames ?? s.numFrames,
    width: question.run?.width ?? s.width,
    height: question.run?.height ?? s.height,
  };
}
