/**
 * The worker loop: `slots` concurrent loops, each taking the next job from the {@linkcode JobQueue},
 * running it and publishing its events — `started`, `step` (with one preview data URL per frame
 * when the request asked for `preview: latent`), `decoding`, `encoding`, then exactly one of
 * `done` {video_url, format, bytes, seed, timings}, `error` {code, message} or `cancelled` {}.
 *
 * Cancellation is asked for through the queue (`DELETE`, a streaming client leaving, another
 * instance): the loop polls `queue.cancelRequested` and checks it at every step and decode chunk,
 * and aborts the job's `AbortSignal`, which the pipeline honours between steps, between decode
 * chunks and during the encode. Whatever goes wrong — a bad image found while decoding, a dead
 * inference worker, ffmpeg failing, the store failing — the job ends with a terminal event and the
 * loop takes the next one: no job is left hanging.
 *
 * Each transition is one log line (`getLog("job")`): `job_started` (worker, attempt, time queued,
 * frames, steps, size), then `job_done` (timings), `job_failed` (code and the error), or
 * `job_cancelled`; `job_released` when a draining worker hands a job back.
 *
 * @example
 * ```ts
 * import { WorkerLoop } from "./worker_loop.ts";
 * const loop = new WorkerLoop({ queue, slots: 1, run: videoJobRunner({ networks, model, maxPixels }) });
 * loop.start();
 * // on SIGTERM:
 * await loop.stop({ drainMs: 30_000 });
 * ```
 *
 * @module
 */

import { ParameterError } from "../../pipeline/config/mod.ts";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { ImageTooLargeError, UnsupportedImageError } from "../../pipeline/image/mod.ts";
import { InferenceWorkerError } from "../../pipeline/runtime/mod.ts";
import type {
  VideoJobEvent,
  VideoJobResult,
  VideoJobRunner,
} from "../../pipeline/service/video_job.ts";
import { FfmpegError, FfmpegNotFoundError, FfmpegTimeoutError } from "../../pipeline/video/mod.ts";
import { errorMessage, formatDuration, getLog, type Log } from "../logging.ts";
import {
  type ClaimedJob,
  isTerminal,
  type JobEventType,
  type JobQueue,
  type JobStatus,
} from "./job_queue.ts";

/** How a job ended. */
export type JobOutcome = Extract<JobStatus, "done" | "error" | "cancelled">;

/** Receives measurements (the metrics implement it). */
export interface JobObserver {
  /** One sampler step took `seconds`. */
  stepFinished(seconds: number): void;
  /** A job ended after running `seconds` (from being taken to its terminal event). */
  jobFinished(outcome: JobOutcome, seconds: number): void;
}

/** Options of {@linkcode WorkerLoop}. */
export interface WorkerLoopOptions {
  readonly queue: JobQueue;
  /** Concurrent jobs, ≥ 1. */
  readonly slots: number;
  /** Runs one job (`videoJobRunner` in production, a fake in tests). */
  readonly run: VideoJobRunner;
  /** URL of a finished clip, put in the `done` event (default `/v1/generations/{id}/video`). */
  readonly videoUrl?: (id: string) => string;
  /** How often a running job's cancel flag is polled, in milliseconds (default 250). */
  readonly cancelPollMs?: number;
  readonly observer?: JobObserver;
  /** Where job transitions and the failures the loop survives are logged (default `getLog("job")`). */
  readonly log?: Log;
  /** Prefix of the worker names given to `take` (default `worker-<pid>`). */
  readonly name?: string;
}

/** Options of {@linkcode WorkerLoop.stop}. */
export interface StopOptions {
  /** Total time allowed for running jobs, in milliseconds. */
  readonly drainMs: number;
  /**
   * When running jobs are cancelled if they have not finished, in milliseconds from the stop
   * (default: `drainMs` minus a quarter of it, at most 5 s, so cancelled jobs can end in time).
   */
  readonly cancelAfterMs?: number;
  /**
   * What happens to jobs still running at `cancelAfterMs`: `cancel` (default) ends them with a
   * `cancelled` event; `release` stops them without a terminal event and hands them back to the
   * queue (`queue.release`), for another worker sharing the queue to run again from the start.
   */
  readonly atDeadline?: "cancel" | "release";
}

/** N slots running jobs from the queue; see the module doc. */
export class WorkerLoop {
  readonly #options: WorkerLoopOptions;
  readonly #stopping = new AbortController();
  readonly #inFlight = new Map<string, AbortController>();
  /** Jobs stopped at the drain deadline to be handed back rather than cancelled. */
  readonly #releasing = new Set<string>();
  readonly #log: Log;
  #slots: Promise<void>[] = [];

  constructor(options: WorkerLoopOptions) {
    if (!(Number.isInteger(options.slots) && options.slots >= 1)) {
      throw new RangeError(`slots must be an integer ≥ 1, got ${options.slots}`);
    }
    this.#options = options;
    this.#log = options.log ?? getLog("job");
  }

  /** Jobs running now. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Starts the slots (once). */
  start(): void {
    if (this.#slots.length > 0) return;
    const prefix = this.#options.name ?? `worker-${Deno.pid}`;
    for (let i = 0; i < this.#options.slots; i++) this.#slots.push(this.#slot(`${prefix}-${i}`));
  }

  /**
   * Takes no more jobs, lets running ones finish, cancels those still running after
   * `cancelAfterMs`, and resolves when every slot has stopped or `drainMs` has passed.
   *
   * @returns whether every slot stopped in time.
   */
  async stop(options: StopOptions): Promise<boolean> {
    const { drainMs } = options;
    const cancelAfterMs = options.cancelAfterMs ?? drainMs - Math.min(5000, drainMs / 4);
    this.#stopping.abort(new Error("the worker loop is stopping"));
    const all = Promise.all(this.#slots).then(() => true);
    if (await within(all, cancelAfterMs)) return true;
    for (const [id, controller] of this.#inFlight) {
      if (options.atDeadline === "release") this.#releasing.add(id);
      controller.abort(new Error("the service is shutting down"));
    }
    return await within(all, Math.max(0, drainMs - cancelAfterMs));
  }

  async #slot(worker: string): Promise<void> {
    const { queue } = this.#options;
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      let job: ClaimedJob | undefined;
      try {
        job = await queue.take(worker, signal);
      } catch (error) {
        this.#log.error(`${worker} cannot take a job: ${errorMessage(error)}`, {
          event: "take_failed",
          worker,
          error: errorMessage(error),
        });
        await sleep(1000, signal);
        continue;
      }
      if (!job) break;
      await this.#runJob(worker, job);
    }
  }

  async #runJob(worker: string, job: ClaimedJob): Promise<void> {
    const { queue, observer } = this.#options;
    const { id, request } = job.record;
    const controller = new AbortController();
    const started = performance.now();
    let outcome: JobOutcome | "released" = "error";
    let published: Promise<unknown> = Promise.resolve();
    /** Events go out in order; one that cannot be stored is logged, the job goes on. */
    let settled = false;
    /** Where the job is, for the log line of a cancelled job. */
    let progress = "before the first step";
    const publish = (type: JobEventType, data: Record<string, unknown>) => {
      // A preview still being encoded when the job stopped must not follow the terminal event.
      if (settled) return;
      published = published.then(() => queue.publish(id, type, data)).catch((error) =>
        this.#log.warning(`job ${id}: its ${type} event was lost: ${errorMessage(error)}`, {
          event: "publish_failed",
          generation: id,
          type,
          error: errorMessage(error),
        })
      );
    };
    const checkCancel = () => {
      queue.cancelRequested(id).then(
        (requested) => requested && controller.abort(new Error("cancellation requested")),
        () => {},
      );
    };

    if (isTerminal(job.record.status)) { // cancelled while queued (a shared store's race)
      await queue.complete(job).catch(() => {});
      return;
    }
    this.#inFlight.set(id, controller);
    const poll = setInterval(checkCancel, this.#options.cancelPollMs ?? 250);
    try {
      if (await queue.cancelRequested(id)) controller.abort(new Error("cancelled before start"));
      const startedAt = Date.now();
      await queue.update(id, { status: "running", startedAt, worker });
      const p = request.params;
      const queuedMs = Math.max(0, startedAt - job.record.createdAt);
      this.#log.info(
        `job ${id} started on ${worker} after ${formatDuration(queuedMs)} queued: ` +
          `${p.numFrames} frames ${p.width}×${p.height}, ${p.numSteps} steps` +
          (job.record.attempts > 1 ? ` (attempt ${job.record.attempts})` : ""),
        {
          event: "job_started",
          generation: id,
          worker,
          attempt: job.record.attempts,
          queued_ms: queuedMs,
          model: request.model,
          frames: p.numFrames,
          steps: p.numSteps,
          width: p.width,
          height: p.height,
        },
      );
      let lastElapsedMs = 0;
      const result = await this.#options.run(job.image, request, {
        signal: controller.signal,
        onEvent: (event: VideoJobEvent) => {
          switch (event.type) {
            case "started":
              return publish("started", {
                model: request.model,
                frames: event.frames,
                steps: event.steps,
                width: event.width,
                height: event.height,
                seed: event.seed,
              });
            case "step":
              observer?.stepFinished((event.elapsedMs - lastElapsedMs) / 1000);
              lastElapsedMs = event.elapsedMs;
              progress = `at step ${event.step} of ${event.total}`;
              checkCancel();
              return publish("step", {
                step: event.step,
                total: event.total,
                sigma: event.sigma,
                elapsed_ms: event.elapsedMs,
                eta_ms: event.etaMs,
                ...(event.frames ? { frames: event.frames } : {}),
              });
            case "decoding":
              progress = `while decoding chunk ${event.chunk} of ${event.total}`;
              checkCancel();
              return publish("decoding", { chunk: event.chunk, total: event.total });
            case "encoding":
              progress = "while encoding";
              return publish("encoding", {});
          }
        },
      });
      settled = true;
      await this.#finishDone(job, startedAt, result, published);
      outcome = "done";
    } catch (error) {
      settled = true;
      await published;
      if (this.#releasing.has(id)) {
        outcome = "released"; // handed back in `finally`: no terminal event
      } else if (error instanceof GenerationCancelledError || controller.signal.aborted) {
        outcome = "cancelled";
        const reason = errorMessage(controller.signal.reason ?? error);
        const ms = Math.round(performance.now() - started);
        this.#log.info(
          `job ${id} cancelled ${progress} after ${formatDuration(ms)}: ${reason}`,
          {
            event: "job_cancelled",
            generation: id,
            worker,
            at: progress,
            running_ms: ms,
            reason,
          },
        );
        await this.#finish(id, "cancelled", {});
      } else {
        const failure = describeJobError(error);
        // A bad input is the client's; anything else is the service's to look at.
        const level = CLIENT_ERROR_CODES.has(failure.code) ? "warning" : "error";
        this.#log[level](
          `job ${id} failed (${failure.code}) ${progress}: ${errorMessage(error)}`,
          {
            event: "job_failed",
            generation: id,
            worker,
            code: failure.code,
            at: progress,
            running_ms: Math.round(performance.now() - started),
            error: errorMessage(error),
          },
        );
        await this.#finish(id, "error", failure, { error: failure });
      }
    } finally {
      clearInterval(poll);
      this.#inFlight.delete(id);
      if (outcome === "released" || (this.#releasing.has(id) && outcome !== "done")) {
        this.#releasing.delete(id);
        this.#log.warning(`job ${id} handed back to the queue ${progress} (shutting down)`, {
          event: "job_released",
          generation: id,
          worker,
          at: progress,
        });
        await queue.release(job).catch((error) =>
          this.#log.error(`job ${id} could not be handed back: ${errorMessage(error)}`, {
            event: "release_failed",
            generation: id,
            error: errorMessage(error),
          })
        );
      } else {
        this.#releasing.delete(id);
        await queue.complete(job).catch((error) =>
          this.#log.error(`job ${id} could not be acknowledged: ${errorMessage(error)}`, {
            event: "complete_failed",
            generation: id,
            error: errorMessage(error),
          })
        );
        observer?.jobFinished(outcome, (performance.now() - started) / 1000);
      }
    }
  }

  async #finishDone(
    job: ClaimedJob,
    startedAt: number,
    result: VideoJobResult,
    published: Promise<unknown>,
  ): Promise<void> {
    const { queue } = this.#options;
    const { id, createdAt } = job.record;
    await queue.putVideo(id, {
      bytes: result.bytes,
      contentType: result.contentType,
      format: result.format,
    });
    await published;
    const t = result.timings;
    const queuedMs = Math.max(0, startedAt - createdAt);
    this.#log.info(
      `job ${id} done in ${formatDuration(t.totalMs)} (sampling ${formatDuration(t.samplingMs)}, ` +
        `decoding ${formatDuration(t.decodingMs)}, encoding ${formatDuration(t.encodingMs)}): ` +
        `${result.format}, ${result.bytes.length} bytes`,
      {
        event: "job_done",
        generation: id,
        format: result.format,
        bytes: result.bytes.length,
        frames: result.frames,
        width: result.width,
        height: result.height,
        seed: result.seed,
        queued_ms: queuedMs,
        preparing_ms: t.preparingMs,
        conditioning_ms: t.conditioningMs,
        sampling_ms: t.samplingMs,
        decoding_ms: t.decodingMs,
        encoding_ms: t.encodingMs,
        total_ms: t.totalMs,
      },
    );
    await this.#finish(id, "done", {
      video_url: (this.#options.videoUrl ?? defaultVideoUrl)(id),
      format: result.format,
      bytes: result.bytes.length,
      seed: result.seed,
      width: result.width,
      height: result.height,
      frames: result.frames,
      fps: result.fps,
      timings: {
        queued_ms: queuedMs,
        preparing_ms: t.preparingMs,
        conditioning_ms: t.conditioningMs,
        sampling_ms: t.samplingMs,
        decoding_ms: t.decodingMs,
        encoding_ms: t.encodingMs,
        total_ms: t.totalMs,
      },
    }, {
      video: { format: result.format, bytes: result.bytes.length, contentType: result.contentType },
    });
  }

  /** Record first, then the terminal event: a client that sees the event finds the status. */
  async #finish(
    id: string,
    status: JobOutcome,
    data: Record<string, unknown>,
    patch: Record<string, unknown> = {},
  ): Promise<void> {
    const { queue } = this.#options;
    try {
      await queue.update(id, { status, finishedAt: Date.now(), ...patch });
      await queue.publish(id, status, data);
    } catch (error) {
      this.#log.error(`job ${id} could not be marked ${status}: ${errorMessage(error)}`, {
        event: "finish_failed",
        generation: id,
        status,
        error: errorMessage(error),
      });
    }
  }
}

/** Codes of {@linkcode describeJobError} that blame the request, not the service. */
const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set([
  "unsupported_media_type",
  "image_too_large",
  "invalid_parameter",
]);

/** The `error` event of a failed job: a stable code and a message without internals. */
export function describeJobError(error: unknown): { code: string; message: string } {
  if (error instanceof InferenceWorkerError) {
    return {
      code: error.reason === "crashed" ? "inference_worker_crashed" : "inference_unavailable",
      message: error.reason === "crashed"
        ? "The inference worker crashed during this generation; the next one starts a fresh worker"
        : "The inference worker is not available; retry later",
    };
  }
  if (error instanceof UnsupportedImageError || error instanceof ImageTooLargeError) {
    return { code: error.code, message: error.message };
  }
  if (error instanceof ParameterError) return { code: "invalid_parameter", message: error.message };
  if (error instanceof FfmpegTimeoutError) {
    return {
      code: "encoding_timed_out",
      message: "The video encoder did not finish in the time allowed for this clip and was stopped",
    };
  }
  if (error instanceof FfmpegError || error instanceof FfmpegNotFoundError) {
    return { code: "encoding_failed", message: "The video could not be encoded" };
  }
  return { code: "internal_error", message: "The generation failed unexpectedly" };
}

function defaultVideoUrl(id: string): string {
  return `/v1/generations/${encodeURIComponent(id)}/video`;
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
