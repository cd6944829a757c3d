/**
 * The service's Prometheus metrics, in the text exposition format (version 0.0.4):
 *
 * | metric | type | what |
 * |---|---|---|
 * | `svd_queue_depth` | gauge | jobs waiting |
 * | `svd_jobs_running` | gauge | jobs being generated |
 * | `svd_jobs_total{outcome}` | counter | jobs ended, by `done`, `error`, `cancelled` (queued or running) |
 * | `svd_step_seconds` | histogram | one sampler step (one batched UNet call and the update) |
 * | `svd_generation_seconds` | histogram | a job from being taken to its terminal event |
 * | `svd_provider_info{provider,model}` | gauge | 1, labelled with the execution provider |
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 * const metrics = new Metrics();
 * metrics.jobFinished("done", 12.5);
 * metrics.render({ queued: 0, running: 0 }, { provider: "cpu", model: "tiny" });
 * ```
 *
 * @module
 */

import type { JobObserver, JobOutcome } from "./jobs/worker_loop.ts";

/** Content-Type of {@linkcode Metrics.render}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Step durations: 10 ms (tiny model) to 2 min (full SVD-XT on a CPU). */
const STEP_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Job durations: a second (tiny model) to an hour. */
const GENERATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600];
const OUTCOMES: readonly JobOutcome[] = ["done", "error", "cancelled"];

/** Counters and histograms fed by the worker loop; gauges come from the queue at render time. */
export class Metrics implements JobObserver {
  readonly #jobs = new Map<JobOutcome, number>(OUTCOMES.map((o) => [o, 0]));
  readonly #steps = new Histogram(STEP_BUCKETS);
  readonly #generations = new Histogram(GENERATION_BUCKETS);

  stepFinished(seconds: number): void {
    this.#steps.observe(seconds);
  }

  jobFinished(outcome: JobOutcome, seconds: number): void {
    this.#jobs.set(outcome, (this.#jobs.get(outcome) ?? 0) + 1);
    this.#generations.observe(seconds);
  }

  /**
   * A job was cancelled before any worker took it (the queue's `onCancelledWhileQueued`): counted
   * as `cancelled`, but it ran for no time, so `svd_generation_seconds` does not see it.
   */
  cancelledWhileQueued(): void {
    this.#jobs.set("cancelled", (this.#jobs.get("cancelled") ?? 0) + 1);
  }

  /** Mean duration of the jobs ended so far, in seconds (undefined before the first). */
  get meanGenerationSeconds(): number | undefined {
    return this.#generations.mean;
  }

  /** The exposition text. */
  render(
    queue: { readonly queued: number; readonly running: number },
    info: { readonly provider: string; readonly model: string },
  ): string {
    const lines = [
      ...header("svd_queue_depth", "gauge", "Jobs waiting in the queue."),
      `svd_queue_depth ${queue.queued}`,
      ...header("svd_jobs_running", "gauge", "Jobs being generated now."),
      `svd_jobs_running ${queue.running}`,
      ...header("svd_jobs_total", "counter", "Jobs ended, by outcome."),
      ...OUTCOMES.map((o) => `svd_jobs_total{outcome="${o}"} ${this.#jobs.get(o)}`),
      ...header("svd_step_seconds", "histogram", "Duration of one sampler step."),
      ...this.#steps.lines("svd_step_seconds"),
      ...header("svd_generation_seconds", "histogram", "Duration of a job, taken to ended."),
      ...this.#generations.lines("svd_generation_seconds"),
      ...header("svd_provider_info", "gauge", "Execution provider and model of this instance."),
      `svd_provider_info{provider="${label(info.provider)}",model="${label(info.model)}"} 1`,
    ];
    return lines.join("\n") + "\n";
  }
}

/** A cumulative histogram with fixed upper bounds. */
class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    this.#sum += value;
    this.#count++;
    this.#bounds.forEach((bound, i) => {
      if (value <= bound) this.#counts[i]++;
    });
  }

  get mean(): number | undefined {
    return this.#count === 0 ? undefined : this.#sum / this.#count;
  }

  lines(name: string): string[] {
    return [
      ...this.#bounds.map((bound, i) => `${name}_bucket{le="${bound}"} ${this.#counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.#count}`,
      `${name}_sum ${this.#sum}`,
      `${name}_count ${this.#count}`,
    ];
  }
}

function header(name: string, type: string, help: string): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/** A label value with `\`, `"` and newlines escaped. */
function label(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
