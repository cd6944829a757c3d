/**
 * Deadlines: a request's `timeout_seconds` (at most the service's `MAX_JOB_SECONDS`, which is also
 * its default) counts from the submission. A job past it ends with `error {code:
 * "deadline_exceeded"}` wherever it is:
 *
 * - **running**: the worker loop arms a timer for the job's deadline; when it fires the job's
 *   `AbortSignal` aborts with a {@linkcode DeadlineExceededError}, which the pipeline honours between
 *   steps, between decode chunks and during the encode, so the slot frees within a step or a chunk.
 *   A job taken already past its deadline ends at once, without running.
 * - **queued**: no worker may take it soon (a long queue, no worker at all), so the
 *   {@linkcode DeadlineSweeper} asks the queue every `intervalMs` (500 ms) to end the queued jobs
 *   past their deadline (`JobQueue.expire`); their streams get the `error` event within that
 *   interval. In Redis mode every instance sweeps (the script is atomic, a job ends once), and the
 *   sweep also ends a job past its deadline whose worker stopped heartbeating (nobody else would).
 *
 * The deadline is `createdAt + timeout_seconds`, from the clock of the instance that accepted the
 * job: in Redis mode keep the instances' clocks in sync (NTP), as for the record's times.
 *
 * @example
 * ```ts
 * import { DeadlineSweeper } from "./deadlines.ts";
 * const sweeper = new DeadlineSweeper({ queue });
 * sweeper.start();
 * // on shutdown:
 * sweeper.stop();
 * ```
 *
 * @module
 */

import { errorMessage, getLog, type Log } from "../logging.ts";
import type { JobQueue, JobRecord } from "./job_queue.ts";

/** Code of the `error` that ends a job past its deadline. */
export const DEADLINE_EXCEEDED = "deadline_exceeded";

/** When job `record` must have ended (ms since the epoch), or undefined when it has no deadline. */
export function deadlineOf(record: Pick<JobRecord, "createdAt" | "request">): number | undefined {
  const seconds = record.request.timeoutSeconds;
  return seconds === undefined ? undefined : record.createdAt + seconds * 1000;
}

/** Where a job was when its deadline passed. */
export type DeadlineStage = "queued" | "running";

/**
 * A job ran past its deadline (`timeout_seconds` after its submission). The error table maps it
 * to `deadline_exceeded` (504, as a deadline exceeded upstream).
 */
export class DeadlineExceededError extends Error {
  /** The `timeout_seconds` of the job. */
  readonly timeoutSeconds: number;
  readonly stage: DeadlineStage;
  constructor(timeoutSeconds: number, stage: DeadlineStage, options?: ErrorOptions) {
    super(deadlineMessage(timeoutSeconds, stage), options);
    this.name = "DeadlineExceededError";
    this.timeoutSeconds = timeoutSeconds;
    this.stage = stage;
  }
}

/**
 * The `error` event's message for a job past its deadline (the Redis sweep passes `"%s"` for
 * both, to fill them in itself).
 */
export function deadlineMessage(timeoutSeconds: number | string, stage: string): string {
  return `The generation passed its deadline (timeout_seconds = ${timeoutSeconds} from its ` +
    `submission) while ${stage}; it was given up`;
}

/** Options of {@linkcode DeadlineSweeper}. */
export interface DeadlineSweeperOptions {
  readonly queue: Pick<JobQueue, "expire">;
  /** How often queued jobs are checked, in milliseconds (default 500). */
  readonly intervalMs?: number;
  /** Where each job ended is logged (`job_failed`, code deadline_exceeded; default `getLog("job")`). */
  readonly log?: Log;
  /** Clock, milliseconds since the epoch (tests). */
  readonly now?: () => number;
}

/** Ends queued jobs past their deadline, every `intervalMs`; see the module doc. */
export class DeadlineSweeper {
  readonly #queue: Pick<JobQueue, "expire">;
  readonly #intervalMs: number;
  readonly #log: Log;
  readonly #now: () => number;
  #timer?: ReturnType<typeof setInterval>;
  #sweeping = false;
  /** The failure last logged, so that an outage is logged once, not every sweep. */
  #failing = "";

  constructor(options: DeadlineSweeperOptions) {
    this.#queue = options.queue;
    this.#intervalMs = options.intervalMs ?? 500;
    this.#log = options.log ?? getLog("job");
    this.#now = options.now ?? Date.now;
  }

  /** Sweeps every `intervalMs` until {@linkcode stop}. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.sweep(), this.#intervalMs);
    // Deadlines alone must not keep the process (or a test) alive.
    Deno.unrefTimer(this.#timer);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One sweep (skipped while the previous one runs); logs each job it ended. */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const ended = await this.#queue.expire(this.#now());
      this.#failing = "";
      for (const record of ended) {
        const stage = record.startedAt === undefined ? "queued" : "running";
        this.#log.warning(
          `job ${record.id} failed (${DEADLINE_EXCEEDED}) while ${stage}: its deadline ` +
            `(timeout_seconds = ${record.request.timeoutSeconds}) passed`,
          {
            event: "job_failed",
            generation: record.id,
            code: DEADLINE_EXCEEDED,
            at: stage,
            timeout_seconds: record.request.timeoutSeconds,
          },
        );
      }
    } catch (error) {
      // The store is away for a moment (Redis restarting): the next sweep tries again.
      const message = errorMessage(error);
      if (message !== this.#failing) {
        this.#log.warning(`deadline sweep failed: ${message}`, {
          event: "deadline_sweep_failed",
          error: message,
        });
      }
      this.#failing = message;
    } finally {
      this.#sweeping = false;
    }
  }
}
