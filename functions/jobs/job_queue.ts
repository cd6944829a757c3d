/**
 * The job queue and store behind the HTTP function: one interface, two implementations — embedded
 * (in-process, the default) and Redis Streams (when `REDIS_URL` is set; shared by many API
 * instances and GPU workers). HTTP handlers and the worker loop only see this interface.
 *
 * Redis mapping this interface is designed for: `submit` = XADD to a jobs stream with a consumer
 * group, `take` = XREADGROUP BLOCK, `complete` = XACK, `release` = leave pending for XAUTOCLAIM /
 * re-add, `publish` = XADD to the job's event stream (entry ids are the SSE ids), `events` = XRANGE
 * after the last id then XREAD BLOCK, `get`/`update` = a status hash, `requestCancel` = a cancel
 * flag the worker checks between steps and decode chunks, `putVideo` = a key with an expiry; every
 * key expires after the retention time.
 *
 * @module
 */

import type { ClipFormat, GenerationRequest } from "../../pipeline/request/mod.ts";
import type { WebhookOutbox } from "../webhooks/webhook_outbox.ts";

/**
 * The exact form of every job id: a lowercase UUID v4, as {@linkcode newJobId} makes it. Ids
 * from requests are checked against it before they reach a key name (Redis) or a lookup.
 */
export const JOB_ID_PATTERN =
  /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A new job id (a random UUID v4). */
export function newJobId(): string {
  return crypto.randomUUID();
}

/** True when `id` has the form of a job id ({@linkcode JOB_ID_PATTERN}). */
export function isJobId(id: string): boolean {
  return JOB_ID_PATTERN.test(id);
}

/** Lifecycle of a job. Terminal: `done`, `error`, `cancelled`. */
export type JobStatus = "queued" | "running" | "done" | "error" | "cancelled";

/** True for `done`, `error` and `cancelled`. */
export function isTerminal(status: JobStatus): boolean {
  return status === "done" || status === "error" || status === "cancelled";
}

/**
 * A validated generation request (everything but the image bytes): the request type of
 * `pipeline/request/`, the same from the HTTP edge to the worker.
 */
export type JobRequest = GenerationRequest;

/** Event names of a job's stream, in the order they can appear. */
export type JobEventType =
  | "queued"
  | "started"
  | "step"
  | "decoding"
  | "encoding"
  | "done"
  | "error"
  | "cancelled";

/**
 * One event of a job's stream; `id` is monotonic within the job (the SSE id). A `queued` event
 * that tells a new position is not stored (`events` makes it as the queue moves): it repeats the
 * id of the event before it, so a stream resumed from it goes on after that event and is told
 * the position again.
 */
export interface JobEvent {
  readonly id: string;
  readonly type: JobEventType;
  readonly data: Readonly<Record<string, unknown>>;
}

/** True for the events that end a job's stream. */
export function isTerminalEvent(type: JobEventType): boolean {
  return type === "done" || type === "error" || type === "cancelled";
}

/**
 * Code of the `error` event that ends the stream of a job whose data vanished from the store
 * before it ended (a shared store can lose keys: evicted, flushed, restarted without its data).
 */
export const JOB_LOST = "job_lost";

/** The data of the `error` event {@linkcode JOB_LOST}. */
export const JOB_LOST_ERROR: Readonly<{ code: string; message: string }> = {
  code: JOB_LOST,
  message: "This generation's data is gone from the job store (evicted, flushed, or the store " +
    "restarted without its data); it will not finish. Submit it again.",
};

/**
 * What the worker running a job polls ({@linkcode JobQueue.check}): go on (`run`), stop because
 * cancellation was asked for (`cancel`), or stop because the job is gone from the store (`lost`).
 */
export type JobCheck = "run" | "cancel" | "lost";

/** What the store knows of a job (the status JSON is built from it). */
export interface JobRecord {
  readonly id: string;
  readonly status: JobStatus;
  readonly request: JobRequest;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  /** Set when status is `error`. */
  readonly error?: { readonly code: string; readonly message: string };
  /** Set when status is `done`. */
  readonly video?: {
    readonly format: ClipFormat;
    readonly bytes: number;
    readonly contentType: string;
  };
  /** Worker that runs or ran the job. */
  readonly worker?: string;
  /** How many times a worker took it (a reclaimed job runs again once). */
  readonly attempts: number;
}

/** Fields a worker updates as a job progresses. */
export type JobPatch = Partial<
  Pick<JobRecord, "status" | "startedAt" | "finishedAt" | "error" | "video" | "worker">
>;

/** How a job ended, as {@linkcode JobQueue.finish} records it. */
export interface JobEnding {
  /** The terminal status; also the type of the terminal event. */
  readonly status: Extract<JobStatus, "done" | "error" | "cancelled">;
  /** The terminal event's data. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Record fields set with the status (`finishedAt`, and `error` or `video`). */
  readonly patch: JobPatch;
  /** The clip of a `done` job. */
  readonly video?: StoredVideo;
}

/** A job taken by a worker, with the uploaded image. */
export interface ClaimedJob {
  readonly record: JobRecord;
  readonly image: Uint8Array;
}

/** A finished clip. */
export interface StoredVideo {
  readonly bytes: Uint8Array;
  readonly contentType: string;
  readonly format: ClipFormat;
}

/** Queue-wide counts (cluster-wide for Redis). */
export interface QueueStats {
  readonly queued: number;
  readonly running: number;
}

/** The queue is at capacity: the HTTP layer answers 429 with `Retry-After`. */
export class QueueFullError extends Error {
  /** Suggested wait before retrying, in seconds. */
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "QueueFullError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The backing store cannot be reached (Redis down): the HTTP layer answers 503. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * Job queue, event log, status records and results of the service. Every method that takes a job
 * id treats an id not of the form {@linkcode JOB_ID_PATTERN} as an unknown job.
 */
export interface JobQueue {
  /**
   * Adds a queued job with its image and publishes its `queued` event ({position}).
   * @throws {QueueFullError} when `queued + running` would exceed the capacity.
   */
  submit(request: JobRequest, image: Uint8Array): Promise<JobRecord>;
  /** The job's record, undefined when unknown or expired. */
  get(id: string): Promise<JobRecord | undefined>;
  /** 1-based position among queued jobs (cluster-wide), undefined when not queued. */
  position(id: string): Promise<number | undefined>;
  /** Waits for the next queued job for `worker`; undefined when `signal` aborts first. */
  take(worker: string, signal: AbortSignal): Promise<ClaimedJob | undefined>;
  /** Acknowledges a job the worker finished (after its terminal event is published). */
  complete(job: ClaimedJob): Promise<void>;
  /**
   * Records the end of a job the caller took, in one step: the clip (if any), the record's status
   * and fields, the terminal event, and the acknowledgement (as `complete`).
   *
   * @returns `finished`; or `dropped` when the job is no longer the caller's to end (another
   *   worker took it over for lost, it ended otherwise, or it is gone from the store): nothing was
   *   written.
   * @throws {StoreUnavailableError} when the store cannot be reached: all of it was written or
   *   none of it, calling again is safe, and the job stays the caller's meanwhile (a Redis worker
   *   keeps heartbeating for it).
   * @throws {RangeError} for a clip the store refuses (too large): nothing was written.
   */
  finish(job: ClaimedJob, ending: JobEnding): Promise<"finished" | "dropped">;
  /** Hands an unfinished job back to the queue (worker shutdown), to be run again from the start. */
  release(job: ClaimedJob): Promise<void>;
  /** Updates the job's record. */
  update(id: string, patch: JobPatch): Promise<void>;
  /** Appends an event to the job's stream and returns it with its id. */
  publish(id: string, type: JobEventType, data: Record<string, unknown>): Promise<JobEvent>;
  /**
   * The job's events after `afterId` (exclusive; from the start when undefined, or when it is not
   * an event id of this queue): first the stored ones, then live ones, ending after a terminal
   * event or when `signal` aborts. While the job waits in the queue, a `queued` {position} event
   * follows each change of its position (a job ahead taken, cancelled or expired; a job handed
   * back ahead of it), and one tells the current position when the stored ones end with an older
   * one (or were skipped by `afterId`). An `afterId` beyond the newest event (stale or crafted) is
   * taken as the end: a finished job's stream ends at once, a running job's goes on with the
   * events that follow. A job that vanishes from the store before it ended ends its stream with
   * an `error` event {@linkcode JOB_LOST_ERROR} (not stored: its id follows the last one); so does
   * a stream resumed (`afterId` given) on a job the store no longer has. An unknown job without
   * `afterId` has no events.
   */
  events(id: string, afterId: string | undefined, signal: AbortSignal): AsyncIterable<JobEvent>;
  /**
   * Asks for cancellation. A queued job is cancelled at once (its `cancelled` event published); a
   * running job's worker sees `cancelRequested` between steps and decode chunks.
   * @returns the record after the request, undefined for an unknown job.
   */
  requestCancel(id: string): Promise<JobRecord | undefined>;
  /** True once cancellation of the job was asked for. */
  cancelRequested(id: string): Promise<boolean>;
  /**
   * What the worker running job `id` polls between steps: `cancel` once cancellation was asked
   * for, `lost` once the job is gone from the store, otherwise `run`.
   */
  check(id: string): Promise<JobCheck>;
  /**
   * Ends the jobs past their deadline (`timeout_seconds` after `createdAt`, at `now`) that no
   * worker is running: queued ones, and in a shared store those whose worker is gone. Each ends
   * with an `error` event {code: "deadline_exceeded"} (`deadlines.ts`); running jobs are ended
   * by their worker.
   * @returns the records of the jobs it ended, as they are now.
   */
  expire(now: number): Promise<JobRecord[]>;
  /** The webhook deliveries of the jobs (`functions/webhooks/webhook_outbox.ts`). */
  readonly webhooks: WebhookOutbox;
  /** Stores the finished clip (kept for the retention time). */
  putVideo(id: string, video: StoredVideo): Promise<void>;
  /** The finished clip, undefined when absent or expired. */
  getVideo(id: string): Promise<StoredVideo | undefined>;
  stats(): Promise<QueueStats>;
  /** Whether the store answers (always true for the embedded queue). */
  ready(): Promise<boolean>;
  /** Stops timers and connections. */
  close(): Promise<void>;
}
