/**
 * The embedded {@linkcode JobQueue}: jobs, their event logs, images and finished clips live in
 * this process's memory. Bounded (`capacity` counts queued and running jobs); FIFO; every event of
 * a job is kept until the job expires, so a stream can be resumed from any event id; a finished
 * job (and its clip) is forgotten `retentionMs` after it ended.
 *
 * Event ids are the decimal sequence numbers `1`, `2`, … within a job.
 *
 * Queue positions: each queued job knows its position, renumbered (those behind the change) when
 * a job leaves the queue or is handed back to its front, and the job's waiting event streams are
 * woken to send `queued` {position}: a change costs one pass over the jobs behind it, a waiting
 * stream nothing until its own position changes. Deadlines: `expire` ends the queued jobs past
 * theirs (called by the `DeadlineSweeper`). Webhooks: the events a job's request wants are handed
 * to its {@linkcode MemoryWebhookOutbox} (spooled to a folder, if it has one) before they are
 * stored.
 *
 * @example
 * ```ts
 * import { MemoryJobQueue } from "./memory_job_queue.ts";
 * const queue = new MemoryJobQueue({ capacity: 9, retentionMs: 3_600_000 });
 * const record = await queue.submit(request, pngBytes); // publishes "queued" {position: 1}
 * const job = await queue.take("slot-0", AbortSignal.timeout(1000));
 * ```
 *
 * @module
 */

import { MemoryWebhookOutbox } from "../webhooks/memory_webhook_outbox.ts";
import { wantsWebhook } from "../webhooks/webhook_outbox.ts";
import { DEADLINE_EXCEEDED, DeadlineExceededError, deadlineOf } from "./deadlines.ts";
import {
  type ClaimedJob,
  isTerminal,
  isTerminalEvent,
  JOB_LOST_ERROR,
  type JobCheck,
  type JobEnding,
  type JobEvent,
  type JobEventType,
  type JobPatch,
  type JobQueue,
  type JobRecord,
  type JobRequest,
  newJobId,
  QueueFullError,
  type QueueStats,
  type StoredVideo,
  StoreUnavailableError,
} from "./job_queue.ts";
import type { WebhookEvent } from "../webhooks/webhook_outbox.ts";

/** Options of {@linkcode MemoryJobQueue}. */
export interface MemoryJobQueueOptions {
  /** Most jobs queued and running at once (SLOTS + QUEUE_SIZE); ≥ 1. */
  readonly capacity: number;
  /** How long a finished job, its events and its clip are kept, in milliseconds. */
  readonly retentionMs: number;
  /** Suggested wait for a client refused with `QueueFullError`, in seconds (default 10). */
  readonly retryAfterSeconds?: () => number;
  /** Clock, milliseconds since the epoch (tests). */
  readonly now?: () => number;
  /**
   * Where webhook deliveries go (default: an outbox in memory, kept `retentionMs`). One given
   * here is the giver's to close (`main.ts` closes its spool once the dispatcher has attempted
   * the `cancelled` deliveries `close` makes); the queue closes only its own.
   */
  readonly webhooks?: MemoryWebhookOutbox;
  /**
   * Called for every job this queue ends itself, before any worker took it: cancelled while
   * queued (`requestCancel`, or `close` at shutdown). The worker loop reports the others.
   */
  readonly onCancelledWhileQueued?: (record: JobRecord) => void;
}

interface Entry {
  record: JobRecord;
  image?: Uint8Array;
  readonly events: JobEvent[];
  cancelRequested: boolean;
  video?: StoredVideo;
  expiry?: ReturnType<typeof setTimeout>;
  /** Wakes the job's event readers. */
  readonly listeners: Set<() => void>;
  /** 1-based place among the queued jobs, while queued. */
  position?: number;
}

/** In-process job queue and store; see the module doc. */
export class MemoryJobQueue implements JobQueue {
  readonly #capacity: number;
  readonly #retentionMs: number;
  readonly #retryAfter: () => number;
  readonly #now: () => number;
  readonly #onCancelledWhileQueued?: (record: JobRecord) => void;
  readonly #jobs = new Map<string, Entry>();
  /** Ids of queued jobs, oldest first. */
  readonly #pending: string[] = [];
  /** Ids of jobs taken by a worker and not yet completed or released. */
  readonly #claimed = new Set<string>();
  /** Workers waiting in `take`. */
  readonly #takers: (() => void)[] = [];
  readonly #webhooks: MemoryWebhookOutbox;
  /** Whether `#webhooks` is this queue's own (and so its to close). */
  readonly #ownsWebhooks: boolean;
  #closed = false;

  constructor(options: MemoryJobQueueOptions) {
    if (!(Number.isInteger(options.capacity) && options.capacity >= 1)) {
      throw new RangeError(`capacity must be an integer ≥ 1, got ${options.capacity}`);
    }
    if (!(options.retentionMs > 0)) {
      throw new RangeError(`retentionMs must be positive, got ${options.retentionMs}`);
    }
    this.#capacity = options.capacity;
    this.#retentionMs = options.retentionMs;
    this.#retryAfter = options.retryAfterSeconds ?? (() => 10);
    this.#now = options.now ?? Date.now;
    this.#onCancelledWhileQueued = options.onCancelledWhileQueued;
    this.#ownsWebhooks = options.webhooks === undefined;
    this.#webhooks = options.webhooks ??
      new MemoryWebhookOutbox({ retentionMs: options.retentionMs, now: options.now });
  }

  get webhooks(): MemoryWebhookOutbox {
    return this.#webhooks;
  }

  // deno-lint-ignore require-await
  async submit(request: JobRequest, image: Uint8Array): Promise<JobRecord> {
    if (this.#closed) throw new StoreUnavailableError("The job queue is closed (shutting down)");
    if (this.#pending.length + this.#claimed.size >= this.#capacity) {
      throw new QueueFullError(
        `The queue is full (${this.#capacity} jobs queued or running); retry later`,
        this.#retryAfter(),
      );
    }
    const id = newJobId();
    const record: JobRecord = {
      id,
      status: "queued",
      request,
      createdAt: this.#now(),
      attempts: 0,
    };
    this.#jobs.set(id, {
      record,
      image,
      events: [],
      cancelRequested: false,
      listeners: new Set(),
    });
    this.#pending.push(id);
    this.#renumber(this.#pending.length - 1);
    this.#append(id, "queued", { position: this.#pending.length });
    this.#takers.shift()?.();
    return record;
  }

  get(id: string): Promise<JobRecord | undefined> {
    return Promise.resolve(this.#jobs.get(id)?.record);
  }

  position(id: string): Promise<number | undefined> {
    const index = this.#pending.indexOf(id);
    return Promise.resolve(index < 0 ? undefined : index + 1);
  }

  async take(worker: string, signal: AbortSignal): Promise<ClaimedJob | undefined> {
    if (worker === "") throw new TypeError("A worker name must not be empty");
    while (!signal.aborted && !this.#closed) {
      const id = this.#pending.shift();
      if (id !== undefined) {
        this.#renumber(0, id);
        const entry = this.#jobs.get(id)!;
        entry.record = { ...entry.record, worker, attempts: entry.record.attempts + 1 };
        this.#claimed.add(id);
        return { record: entry.record, image: entry.image ?? new Uint8Array() };
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener("abort", wake);
          const index = this.#takers.indexOf(wake);
          if (index >= 0) this.#takers.splice(index, 1);
          resolve();
        };
        this.#takers.push(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
    return undefined;
  }

  complete(job: ClaimedJob): Promise<void> {
    const id = job.record.id;
    this.#claimed.delete(id);
    const entry = this.#jobs.get(id);
    if (entry) entry.image = undefined;
    return Promise.resolve();
  }

  finish(job: ClaimedJob, ending: JobEnding): Promise<"finished" | "dropped"> {
    const id = job.record.id;
    const mine = this.#claimed.delete(id);
    const entry = this.#jobs.get(id);
    if (!entry || !mine || isTerminal(entry.record.status)) return Promise.resolve("dropped");
    entry.record = patched(entry.record, { ...ending.patch, status: ending.status });
    if (ending.video) entry.video = ending.video;
    entry.image = undefined;
    this.#append(id, ending.status, { ...ending.data });
    this.#scheduleExpiry(id, entry);
    return Promise.resolve("finished");
  }

  release(job: ClaimedJob): Promise<void> {
    const id = job.record.id;
    this.#claimed.delete(id);
    const entry = this.#jobs.get(id);
    if (!entry || isTerminal(entry.record.status) || this.#closed) return Promise.resolve();
    entry.record = patched(entry.record, {
      status: "queued",
      startedAt: undefined,
      worker: undefined,
    });
    this.#pending.unshift(id);
    this.#renumber(0);
    this.#append(id, "queued", { position: 1 });
    this.#takers.shift()?.();
    return Promise.resolve();
  }

  update(id: string, patch: JobPatch): Promise<void> {
    const entry = this.#jobs.get(id);
    if (!entry) return Promise.resolve();
    const wasTerminal = isTerminal(entry.record.status);
    entry.record = patched(entry.record, patch);
    if (!wasTerminal && isTerminal(entry.record.status)) this.#scheduleExpiry(id, entry);
    return Promise.resolve();
  }

  publish(id: string, type: JobEventType, data: Record<string, unknown>): Promise<JobEvent> {
    if (!this.#jobs.has(id)) {
      return Promise.reject(new RangeError(`Cannot publish "${type}": no job "${id}"`));
    }
    return Promise.resolve(this.#append(id, type, data));
  }

  async *events(
    id: string,
    afterId: string | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<JobEvent> {
    const entry = this.#jobs.get(id);
    const after = Number(afterId);
    if (!entry) {
      // A resumed stream whose job is gone (expired); an unknown job has no events.
      if (afterId !== undefined) {
        const next = Number.isInteger(after) && after > 0 ? after + 1 : 1;
        yield { id: String(next), type: "error", data: JOB_LOST_ERROR };
      }
      return;
    }
    // Ids are 1-based sequence numbers: the event with id n is at index n - 1. An id beyond the
    // newest event (stale or crafted) resumes from the end: the events that follow are sent.
    let next = afterId !== undefined && Number.isInteger(after) && after > 0
      ? Math.min(after, entry.events.length)
      : 0;
    /** The position this stream told last (undefined: none yet, or not queued since). */
    let told: number | undefined;
    while (!signal.aborted) {
      while (next < entry.events.length) {
        const event = entry.events[next++];
        yield event;
        if (isTerminalEvent(event.type)) return;
        told = event.type === "queued" ? event.data.position as number : undefined;
      }
      // Waiting in the queue: a new position is told as it comes (not stored: see JobEvent).
      if (entry.position !== undefined && entry.position !== told && next > 0) {
        told = entry.position;
        yield { id: entry.events[next - 1].id, type: "queued", data: { position: told } };
        continue;
      }
      const last = entry.events.at(-1);
      if ((last && isTerminalEvent(last.type)) || this.#closed || !this.#jobs.has(id)) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          entry.listeners.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        entry.listeners.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }

  requestCancel(id: string): Promise<JobRecord | undefined> {
    const entry = this.#jobs.get(id);
    if (!entry) return Promise.resolve(undefined);
    if (isTerminal(entry.record.status)) return Promise.resolve(entry.record);
    entry.cancelRequested = true;
    const index = this.#pending.indexOf(id);
    if (index >= 0) {
      // Queued: nobody runs it, so it is cancelled here and now.
      this.#pending.splice(index, 1);
      this.#renumber(index, id);
      this.#finish(id, entry);
      this.#onCancelledWhileQueued?.(entry.record);
    }
    return Promise.resolve(entry.record);
  }

  cancelRequested(id: string): Promise<boolean> {
    return Promise.resolve(this.#jobs.get(id)?.cancelRequested ?? false);
  }

  check(id: string): Promise<JobCheck> {
    const entry = this.#jobs.get(id);
    return Promise.resolve(!entry ? "lost" : entry.cancelRequested ? "cancel" : "run");
  }

  expire(now: number): Promise<JobRecord[]> {
    const ended: JobRecord[] = [];
    for (let index = 0; index < this.#pending.length; index++) {
      const id = this.#pending[index];
      const entry = this.#jobs.get(id)!;
      const deadline = deadlineOf(entry.record);
      if (deadline === undefined || deadline > now) continue;
      this.#pending.splice(index, 1);
      this.#renumber(index, id);
      index--;
      const failure = new DeadlineExceededError(entry.record.request.timeoutSeconds!, "queued");
      const error = { code: DEADLINE_EXCEEDED, message: failure.message };
      entry.record = { ...entry.record, status: "error", finishedAt: this.#now(), error };
      entry.image = undefined;
      this.#append(id, "error", { ...error });
      this.#scheduleExpiry(id, entry);
      ended.push(entry.record);
    }
    return Promise.resolve(ended);
  }

  putVideo(id: string, video: StoredVideo): Promise<void> {
    const entry = this.#jobs.get(id);
    if (entry) entry.video = video;
    return Promise.resolve();
  }

  getVideo(id: string): Promise<StoredVideo | undefined> {
    return Promise.resolve(this.#jobs.get(id)?.video);
  }

  stats(): Promise<QueueStats> {
    return Promise.resolve({ queued: this.#pending.length, running: this.#claimed.size });
  }

  ready(): Promise<boolean> {
    return Promise.resolve(!this.#closed);
  }

  /**
   * Cancels every job that has not ended (they would be lost with the process: their streams get
   * `cancelled`, and their webhooks their deliveries), ends every event stream and waiting
   * worker, stops the expiry timers and closes the queue's own webhook outbox.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const queued = new Set(this.#pending);
    for (const [id, entry] of this.#jobs) {
      if (isTerminal(entry.record.status)) continue;
      this.#finish(id, entry);
      // A running job's end is the worker loop's to report.
      if (queued.has(id)) this.#onCancelledWhileQueued?.(entry.record);
    }
    this.#closed = true;
    this.#pending.length = 0;
    if (this.#ownsWebhooks) this.#webhooks.close();
    for (const wake of this.#takers.splice(0)) wake();
    for (const entry of this.#jobs.values()) {
      clearTimeout(entry.expiry);
      for (const wake of [...entry.listeners]) wake();
    }
    return Promise.resolve();
  }

  /** Number of jobs held (any status), for tests of the retention. */
  get size(): number {
    return this.#jobs.size;
  }

  /**
   * Numbers the queued jobs from `from` on (after a change there) and wakes the streams of those
   * whose position changed; `left` is a job that just left the queue.
   */
  #renumber(from: number, left?: string): void {
    if (left !== undefined) {
      const entry = this.#jobs.get(left);
      if (entry) entry.position = undefined;
    }
    for (let index = from; index < this.#pending.length; index++) {
      const entry = this.#jobs.get(this.#pending[index])!;
      if (entry.position === index + 1) continue;
      entry.position = index + 1;
      for (const wake of [...entry.listeners]) wake();
    }
  }

  #finish(id: string, entry: Entry): void {
    entry.record = { ...entry.record, status: "cancelled", finishedAt: this.#now() };
    entry.image = undefined;
    this.#append(id, "cancelled", {});
    this.#scheduleExpiry(id, entry);
  }

  #append(id: string, type: JobEventType, data: Record<string, unknown>): JobEvent {
    const entry = this.#jobs.get(id)!;
    const event: JobEvent = { id: String(entry.events.length + 1), type, data };
    // The delivery exists (spooled) before anyone sees the event it is for.
    if (wantsWebhook(entry.record, type)) {
      this.#webhooks.enqueue(entry.record, type as WebhookEvent, event.id);
    }
    entry.events.push(event);
    for (const wake of [...entry.listeners]) wake();
    return event;
  }

  #scheduleExpiry(id: string, entry: Entry): void {
    clearTimeout(entry.expiry);
    entry.expiry = setTimeout(() => {
      this.#jobs.delete(id);
      for (const wake of [...entry.listeners]) wake();
    }, this.#retentionMs);
    // Retention alone must not keep the process (or a test) alive.
    Deno.unrefTimer(entry.expiry);
  }
}

/** `record` with `patch` applied; a field given as undefined is removed, as Redis removes it. */
function patched(record: JobRecord, patch: JobPatch): JobRecord {
  const out: Record<string, unknown> = { ...record, ...patch };
  for (const [key, value] of Object.entries(out)) if (value === undefined) delete out[key];
  return out as unknown as JobRecord;
}
