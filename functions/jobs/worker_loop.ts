/**
 * The worker loop: `slots` concurrent loops, each taking the next job from the {@linkcode JobQueue},
 * running it and publishing its events — `started`, `step` (with one preview data URL per frame
 * when the request asked for `preview: latent`), `decoding`, `encoding`, then exactly one of
 * `done` {video_url, format, bytes, seed, timings}, `error` {code, message} or `cancelled` {}.
 *
 * Cancellation is asked for through the queue (`DELETE`, a streaming client leaving, another
 * instance): the loop polls `queue.check` and checks it at every step and decode chunk, and aborts
 * the job's `AbortSignal`, which the pipeline honours between steps, between decode chunks and
 * during the encode. The same poll tells it when the job is gone from a shared store (evicted,
 * flushed): the job is given up the same way, with nothing left to publish to. Whatever goes wrong — a bad image found while decoding, a dead
 * inference worker, ffmpeg failing, the store failing — the job ends with a terminal event and the
 * loop takes the next one: no job is left hanging.
 *
 * A job with a deadline (`timeout_seconds`, `deadlines.ts`) is stopped the same way when it passes:
 * its signal aborts with a `DeadlineExceededError` and it ends with `error` {code:
 * "deadline_exceeded"} within a step or a decode chunk; a job taken already past its deadline
 * ends so without running.
 *
 * Each transition is one log line (`getLog("job")`): `job_started` (worker, attempt, time queued,
 * frames, steps, size), then `job_done` (timings), `job_failed` (code and the error), or
 * `job_cancelled`; `job_released` when a draining worker hands a job back; `job_lost` when the
 * job vanished from the store.
 *
 * @example
 * ```ts
 * import { WorkerLoop } from "./worker_loop.ts";
 * const run = videoJobRunner({ images: imagePool, engine, model, maxPixels });
 * const loop = new WorkerLoop({ queue, slots: 1, run });
 * loop.start();
 * // on SIGTERM:
 * await loop.stop({ drainMs: 30_000 });
 * ```
 *
 * @module
 */

import { GenerationCancelledError } from "../../pipeline/errors.ts";
import type {
  VideoJobEvent,
  VideoJobResult,
  VideoJobRunner,
} from "../../pipeline/service/video_job.ts";
import { describeError, jobError } from "../errors.ts";
import {
  DEADLINE_EXCEEDED as DEADLINE_CODE,
  DeadlineExceededError,
  deadlineOf,
} from "./deadlines.ts";
import { errorMessage, formatDuration, getLog, type Log } from "../logging.ts";
import {
  type ClaimedJob,
  isTerminal,
  JOB_LOST_ERROR,
  type JobCheck,
  type JobEnding,
  type JobEventType,
  type JobQueue,
  type JobStatus,
  StoreUnavailableError,
} from "./job_queue.ts";
import { abortableSleep } from "./_abortable_sleep.ts";

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
  /**
   * How long the end of a job (clip, record, terminal event, acknowledgement) is retried while
   * the store is unavailable, in milliseconds (default 10 minutes).
   */
  readonly storeRetryMs?: number;
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
  #cutShort = 0;
  /** Aborted when `stop` runs out of time: endings still retried through an outage give up. */
  readonly #abandon = new AbortController();
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

  /** Jobs `stop` found still running at its deadline and cancelled or handed back. */
  get cutShort(): number {
    return this.#cutShort;
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
   * @returns whether every slot stopped in time ({@linkcode cutShort} says how many jobs it
   *   cancelled or handed back to get there).
   */
  async stop(options: StopOptions): Promise<boolean> {
    const { drainMs } = options;
    const cancelAfterMs = options.cancelAfterMs ?? drainMs - Math.min(5000, drainMs / 4);
    this.#stopping.abort(new Error("the worker loop is stopping"));
    const all = Promise.all(this.#slots).then(() => true);
    if (await within(all, cancelAfterMs)) return true;
    this.#cutShort += this.#inFlight.size;
    for (const [id, controller] of this.#inFlight) {
      if (options.atDeadline === "release") this.#releasing.add(id);
      controller.abort(new Error("the service is shutting down"));
    }
    const stopped = await within(all, Math.max(0, drainMs - cancelAfterMs));
    if (!stopped) this.#abandon.abort(new Error("the worker loop ran out of time to stop"));
    return stopped;
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
        await abortableSleep(1000, signal);
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
    /** How the job ended, recorded in `finally` (undefined when released). */
    let ending: JobEnding | undefined;
    /** A finished clip, kept until its ending is recorded (through a store outage if need be). */
    let result: VideoJobResult | undefined;
    let startedAt = Date.now();
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
    /** Set when the job vanished from the store: it is given up, with nothing left to record. */
    let lost = false;
    /** Set when the job's deadline passed first: it ends with deadline_exceeded. */
    let pastDeadline: DeadlineExceededError | undefined;
    const stopIf = (check: JobCheck) => {
      if (check === "cancel") controller.abort(new Error("cancellation requested"));
      if (check === "lost" && !controller.signal.aborted) {
        lost = true;
        controller.abort(new Error("the job is gone from the job store"));
      }
    };
    const deadline = deadlineOf(job.record);
    const passDeadline = (stage: "queued" | "running") => {
      if (controller.signal.aborted) return;
      pastDeadline = new DeadlineExceededError(request.timeoutSeconds!, stage);
      controller.abort(pastDeadline);
    };
    // A store that fails for a moment stops nothing: the next poll asks again.
    const checkCancel = () => void queue.check(id).then(stopIf, () => {});

    if (isTerminal(job.record.status)) { // cancelled while queued (a shared store's race)
      await queue.complete(job).catch(() => {});
      return;
    }
    this.#inFlight.set(id, controller);
    const poll = setInterval(checkCancel, this.#options.cancelPollMs ?? 250);
    // Taken past its deadline (a long queue, a reclaimed job): it ends without running.
    if (deadline !== undefined && deadline <= Date.now()) passDeadline("queued");
    const timer = deadline === undefined
      ? undefined
      : setTimeout(() => passDeadline("running"), Math.max(0, deadline - Date.now()));
    try {
      if (pastDeadline) throw pastDeadline;
      stopIf(await queue.check(id));
      startedAt = Date.now();
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
      result = await this.#options.run(job.image, request, {
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
      await published;
      outcome = "done";
      ending = this.#doneEnding(job, startedAt, result);
    } catch (error) {
      settled = true;
      await published;
      if (this.#releasing.has(id)) {
        outcome = "released"; // handed back in `finally`: no terminal event
      } else if (lost) {
        // Its record and events are gone (evicted, flushed): nothing to publish to. Its readers
        // get an `error` event job_lost from the queue; the ending below only acknowledges it.
        this.#log.error(`job ${id} is gone from the job store ${progress}; it was given up`, {
          event: "job_lost",
          generation: id,
          worker,
          at: progress,
          running_ms: Math.round(performance.now() - started),
        });
        ending = errorEnding(JOB_LOST_ERROR);
      } else if (pastDeadline) {
        const at = pastDeadline.stage === "queued" ? "before it ran" : progress;
        this.#log.warning(
          `job ${id} failed (${DEADLINE_CODE}) ${at}: its deadline (timeout_seconds = ` +
            `${request.timeoutSeconds}) passed`,
          {
            event: "job_failed",
            generation: id,
            worker,
            code: DEADLINE_CODE,
            at,
            running_ms: Math.round(performance.now() - started),
            timeout_seconds: request.timeoutSeconds,
          },
        );
        ending = errorEnding(jobError(pastDeadline));
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
        ending = { status: "cancelled", data: {}, patch: { finishedAt: Date.now() } };
      } else {
        ending = errorEnding(this.#logFailure(worker, id, progress, started, error));
      }
    } finally {
      clearInterval(poll);
      clearTimeout(timer);
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
        ending ??= errorEnding(jobError(undefined));
        try {
          await this.#record(job, ending);
          if (outcome === "done") this.#logDone(id, startedAt, job.record.createdAt, result!);
        } catch (error) {
          // Not the store's fault (a clip the store refuses): the job fails instead.
          outcome = "error";
          await this.#record(
            job,
            errorEnding(this.#logFailure(worker, id, progress, started, error)),
          )
            .catch((again) =>
              this.#log.error(`job ${id} could not be marked failed: ${errorMessage(again)}`, {
                event: "finish_failed",
                generation: id,
                error: errorMessage(again),
              })
            );
        }
        observer?.jobFinished(outcome, (performance.now() - started) / 1000);
      }
    }
  }

  /**
   * Records `ending` through `queue.finish`, retrying while the store is unavailable (with
   * backoff, for up to `storeRetryMs`): a job that ran to its end is not thrown away, nor run
   * again, because Redis was away as it finished. The clip stays in memory meanwhile, and the
   * job stays held by this worker (whose heartbeat goes on), so nobody reclaims it. When the
   * store stays away longer, the job is handed back to run again once the store is back.
   *
   * @throws what `finish` throws other than {@linkcode StoreUnavailableError}.
   */
  async #record(job: ClaimedJob, ending: JobEnding): Promise<void> {
    const { queue } = this.#options;
    const id = job.record.id;
    const began = performance.now();
    const limitMs = this.#options.storeRetryMs ?? DEFAULT_STORE_RETRY_MS;
    for (let attempt = 1;; attempt++) {
      let recorded: "finished" | "dropped";
      try {
        recorded = await queue.finish(job, ending);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        const waited = performance.now() - began;
        if (waited >= limitMs || this.#abandon.signal.aborted) {
          this.#log.error(
            `job ${id} could not be marked ${ending.status}: the job store was unavailable for ` +
              `${formatDuration(waited)}; it is handed back to run again: ${errorMessage(error)}`,
            {
              event: "finish_failed",
              generation: id,
              status: ending.status,
              error: errorMessage(error),
            },
          );
          await queue.release(job).catch(() => {});
          return;
        }
        if (attempt === 1) {
          this.#log.warning(
            `job ${id} is ${ending.status} but the job store is unavailable; retrying for up ` +
              `to ${formatDuration(limitMs)}: ${errorMessage(error)}`,
            {
              event: "finish_retrying",
              generation: id,
              status: ending.status,
              error: errorMessage(error),
            },
          );
        }
        await abortableSleep(
          Math.min(STORE_RETRY_FIRST_MS * 2 ** (attempt - 1), STORE_RETRY_MAX_MS),
          this.#abandon.signal,
        );
        continue;
      }
      if (attempt > 1) {
        const ms = Math.round(performance.now() - began);
        this.#log.info(
          `job ${id}: its ${ending.status} was recorded after ${
            formatDuration(ms)
          } of store outage`,
          {
            event: "finish_recorded",
            generation: id,
            status: ending.status,
            waited_ms: ms,
          },
        );
      }
      if (recorded === "dropped" && ending.data !== JOB_LOST_ERROR) {
        this.#log.warning(
          `job ${id} was no longer this worker's to end (taken over or gone); its ${ending.status} ` +
            "was not recorded",
          { event: "finish_dropped", generation: id, status: ending.status },
        );
      }
      return;
    }
  }

  #doneEnding(job: ClaimedJob, startedAt: number, result: VideoJobResult): JobEnding {
    const { id, createdAt } = job.record;
    const t = result.timings;
    return {
      status: "done",
      data: {
        video_url: (this.#options.videoUrl ?? defaultVideoUrl)(id),
        format: result.format,
        bytes: result.bytes.length,
        seed: result.seed,
        width: result.width,
        height: result.height,
        frames: result.frames,
        fps: result.fps,
        timings: {
          queued_ms: Math.max(0, startedAt - createdAt),
          preparing_ms: t.preparingMs,
          conditioning_ms: t.conditioningMs,
          sampling_ms: t.samplingMs,
          decoding_ms: t.decodingMs,
          encoding_ms: t.encodingMs,
          total_ms: t.totalMs,
        },
      },
      patch: {
        finishedAt: Date.now(),
        video: {
          format: result.format,
          bytes: result.bytes.length,
          contentType: result.contentType,
        },
      },
      video: { bytes: result.bytes, contentType: result.contentType, format: result.format },
    };
  }

  #logDone(id: string, startedAt: number, createdAt: number, result: VideoJobResult): void {
    const t = result.timings;
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
        queued_ms: Math.max(0, startedAt - createdAt),
        preparing_ms: t.preparingMs,
        conditioning_ms: t.conditioningMs,
        sampling_ms: t.samplingMs,
        decoding_ms: t.decodingMs,
        encoding_ms: t.encodingMs,
        total_ms: t.totalMs,
      },
    );
  }

  /** Logs a failed job (`job_failed`) and returns its `error` event. */
  #logFailure(
    worker: string,
    id: string,
    progress: string,
    started: number,
    error: unknown,
  ): { code: string; message: string } {
    const failure = jobError(error);
    // A bad input (a 4xx in the error table) is the client's; anything else the service's.
    const level = describeError(error, "job").status < 500 ? "warning" : "error";
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
    return failure;
  }
}

/** The ending of a failed job. */
function errorEnding(failure: { code: string; message: string }): JobEnding {
  return {
    status: "error",
    data: failure,
    patch: { finishedAt: Date.now(), error: { code: failure.code, message: failure.message } },
  };
}

/** How long an ending is retried through a store outage, by default: 10 minutes. */
export const DEFAULT_STORE_RETRY_MS = 10 * 60_000;
/** First and longest wait between tries of an ending. */
const STORE_RETRY_FIRST_MS = 250;
const STORE_RETRY_MAX_MS = 2000;

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
