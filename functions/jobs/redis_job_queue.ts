/**
 * The Redis Streams {@linkcode JobQueue}: one queue shared by every API instance and GPU worker
 * that points at the same Redis (`REDIS_URL`). Every multi-key change is one Lua script, so
 * instances never see half a job. This file is the queue; beside it are the key names
 * (`redis_layout.ts`), the Lua scripts (`redis_scripts.ts`), how records, events and clips are
 * stored (`redis_codec.ts`) and the connections with their timeouts (`redis_connection.ts`).
 *
 * - **submit** checks `queued + running < capacity` (the jobs stream's length) and XADDs the job,
 *   its record, its image and its `queued` {position} event in one script: the capacity holds
 *   cluster-wide.
 * - **Queued / running.** A jobs-stream entry after the group's last-delivered-id is *queued*; a
 *   delivered one sits in the group's PEL and is *running* until `complete` or `release` XACKs and
 *   XDELs it. `stats()` = {queued: XLEN − PEL size, running: PEL size}; a job whose worker died
 *   counts as running until another worker reclaims it. `position(id)` = 1-based rank of the
 *   job in the `queued` sorted set (joined at submit and release, left when taken, cancelled or
 *   expired), undefined once taken.
 * - **Live positions.** Each job leaving the queue adds `{left: its queue number}` to one
 *   queue-wide stream (`<p>:queue:moves`). An `events()` stream of a queued job asks once for its
 *   place (`queuePlace`: position, queue number, the moves stream's newest id), then follows the
 *   moves stream through the instance's shared reader — one XREAD for every stream the instance
 *   serves — and counts the jobs ahead of it that left, sending `queued` {position} at each
 *   change. A change costs one XADD, whatever the queue's length, and no command per waiting
 *   client (one that fell behind asks for its place again). Publishing each position into every
 *   waiting job's stream would cost O(queue length) writes per change, O(n²) stored events for a
 *   queue of n.
 * - **Deadlines.** A job with a deadline is in `<p>:deadlines` until it ends; `expire` (every
 *   instance's `DeadlineSweeper`) ends in one script the queued ones past it, and the running ones
 *   whose worker stopped heartbeating.
 * - **Webhooks.** `add_event` makes the delivery of an event the job's request wants in the same
 *   script (`functions/webhooks/redis_webhook_outbox.ts`).
 * - **take** = XREADGROUP BLOCK on its own connection (aborting the signal closes that connection,
 *   so `take` returns at once). Consumers are named `<worker>@<instance>` and heartbeat a key with
 *   a short TTL while they are in `take` or hold a job; before reading new entries, `take`
 *   XCLAIMs entries pending longer than `claimIdleMs` whose consumer has no heartbeat. A reclaimed
 *   job that had started publishes `queued` {position: 1, reason: "worker_lost"} and runs again
 *   from the start; once `maxAttempts` runs lost their worker it ends with `error`
 *   {code: "worker_lost"} instead.
 * - **finish** records a job's end in one script — the clip, the record, the terminal event, the
 *   XACK + XDEL — fenced by the pending entry: only the consumer that holds it writes, so a
 *   worker taken for lost (and its job reclaimed) can never overwrite the new run. While Redis is
 *   unreachable it throws and the job stays held and heartbeated; the worker loop retries. After
 *   Redis (re)starts, nothing is reclaimed for max(`claimIdleMs`, `heartbeatTtlMs`): nobody
 *   could heartbeat while it was down, and a failed heartbeat is retried every 250 ms.
 * - **check** (the worker's poll) answers `lost` once the job's record or events stream is gone
 *   (evicted, flushed); `events` then ends with an `error` event {code: "job_lost"}.
 * - **release** XACKs + XDELs the entry and XADDs a new one: unlike the embedded queue, a released
 *   job goes to the back of the queue (a stream cannot insert at its front). It publishes `queued`
 *   {position}; a release does not count as an attempt.
 * - **Events** live in a stream per job whose entry ids (`1732530000000-0`) are the event ids, so
 *   `Last-Event-ID` resumes on any instance; `events` = XRANGE after the id, then the live ones
 *   through the instance's one shared reader (`redis_event_reader.ts`: one XREAD BLOCK over the
 *   streams of every open `events`), ending after a terminal event, when the job expires, or when
 *   the signal aborts. An id beyond the newest event is taken as the end.
 * - **Expiry.** All keys of a job expire together: 24 h (`aliveTtlMs`) after its last write while
 *   it has not ended, `retentionMs` after it ended (terminal status or event). The image is
 *   deleted as soon as the job ends. Clips above `maxVideoBytes` (default 64 MiB) are refused.
 * - **Outages.** Commands fail fast while Redis is unreachable (no offline queue; each command
 *   times out after `commandTimeoutMs`): every method throws {@linkcode StoreUnavailableError},
 *   `ready()` answers false, and the client reconnects by itself when Redis is back. A connection
 *   that stops answering without closing (a failover, a dropped NAT entry) is replaced after its
 *   first timeout.
 * - **Connections.** One for commands, one for the shared event reader (however many `events`
 *   are open), plus one per `take` while it waits in a blocking read (up to 8 idle ones are
 *   kept). Call `take` once at a time per worker name (the worker loop's slots have distinct
 *   names). `close()` leaves jobs alone — unlike the embedded
 *   queue it cancels nothing, since other instances carry on with them.
 *
 * @example
 * ```ts
 * import { RedisJobQueue } from "./redis_job_queue.ts";
 * const queue = await RedisJobQueue.connect({
 *   url: Deno.env.get("REDIS_URL")!,
 *   capacity: 16,
 *   retentionMs: 3_600_000,
 * });
 * const record = await queue.submit(request, pngBytes); // publishes "queued" {position}
 * ```
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { ErrorReply } from "redis";
import {
  type ClaimedJob,
  isJobId,
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
import {
  compareStreamIds,
  decodeEvent,
  decodeRecord,
  decodeVideo,
  encodeEventData,
  encodePatch,
  encodeRequest,
  encodeVideo,
  fieldOf,
  isStreamId,
  type StreamEntry,
  type StreamReply,
  toBuffer,
} from "./redis_codec.ts";
import { ABORTED, AS_BUFFERS, type CommandOptions, RedisConnection } from "./redis_connection.ts";
import {
  decodePublishedModel,
  encodePublishedModel,
  type PublishedModel,
} from "./published_model.ts";
import {
  type NextEntries,
  RedisEventReader,
  type StreamSubscription,
} from "./redis_event_reader.ts";
import { deadlineMessage, deadlineOf } from "./deadlines.ts";
import { RedisWebhookOutbox } from "../webhooks/redis_webhook_outbox.ts";
import { webhookEventsOf } from "../webhooks/webhook_outbox.ts";
import { type JobKeys, type RedisLayout, redisLayout } from "./redis_layout.ts";
import { scriptArguments, type ScriptContext, type ScriptName, SCRIPTS } from "./redis_scripts.ts";

/** Largest clip stored by default: 64 MiB. */
export const DEFAULT_MAX_VIDEO_BYTES = 64 * 1024 * 1024;

/** Options of {@linkcode RedisJobQueue.connect}. */
export interface RedisJobQueueOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…`. */
  readonly url: string;
  /** Key prefix (default `svd`); deployments sharing one Redis use different prefixes. */
  readonly prefix?: string;
  /** Most jobs queued and running at once, cluster-wide; ≥ 1. */
  readonly capacity: number;
  /** How long a finished job, its events and its clip are kept, in milliseconds. */
  readonly retentionMs: number;
  /** Largest clip `putVideo` stores, in bytes (default 64 MiB). */
  readonly maxVideoBytes?: number;
  /** Consumer group of the workers (default `workers`). */
  readonly group?: string;
  /** A job pending this long whose worker has no heartbeat is reclaimed, in ms (default 30 s). */
  readonly claimIdleMs?: number;
  /** TTL of a worker's heartbeat key, refreshed every third of it, in ms (default 15 s). */
  readonly heartbeatTtlMs?: number;
  /** Runs of a job that may lose their worker before it ends with `worker_lost` (default 2). */
  readonly maxAttempts?: number;
  /** Expiry of a job that has not ended, pushed back by each of its writes, in ms (default 24 h). */
  readonly aliveTtlMs?: number;
  /** Longest wait for one command before `StoreUnavailableError`, in ms (default 5 s). */
  readonly commandTimeoutMs?: number;
  /** Expiry of a webhook delivery never sent (no sender running), in ms (default a week). */
  readonly webhookTtlMs?: number;
  /** Longest single XREAD / XREADGROUP BLOCK, in ms (default 2 s). */
  readonly blockMs?: number;
  /** Longest wait for the first connection in `connect`, in ms (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Suggested wait for a client refused with `QueueFullError`, in seconds (default 10). */
  readonly retryAfterSeconds?: () => number;
  /** Clock for the record's timestamps, milliseconds since the epoch (tests). */
  readonly now?: () => number;
  /**
   * Called when this instance's `requestCancel` ends a job that no worker had taken yet (the
   * worker loop reports the others), for the cancelled-jobs counter.
   */
  readonly onCancelledWhileQueued?: (record: JobRecord) => void;
}

type Resolved = Required<
  Omit<RedisJobQueueOptions, "prefix" | "group" | "onCancelledWhileQueued">
>;

/** Consumer that owns deliveries no `take` received (an aborted read): reclaimable at once. */
const ORPHANED = "(orphaned)";
/** Wait before a failed heartbeat is sent again, in ms. */
const BEAT_RETRY_MS = 250;
/** Events read per XRANGE / XREAD. */
const EVENT_PAGE = 100;
/** Jobs `expire` looks at per call. */
const EXPIRE_BATCH = 1000;

interface Held {
  readonly entry: string;
  readonly consumer: string;
}

/** Redis Streams job queue shared by many instances; see the module doc. */
export class RedisJobQueue implements JobQueue {
  readonly #options: Resolved;
  readonly #redis: RedisConnection;
  readonly #layout: RedisLayout;
  /** What every script gets first. */
  readonly #context: ScriptContext;
  readonly #group: string;
  /** Random per instance: consumers are `<worker>@<instance>`. */
  readonly #instance = crypto.randomUUID().slice(0, 8);
  readonly #closing = new AbortController();
  /** Waits for the live events of every `events()` of this instance, on one connection. */
  readonly #reader: RedisEventReader;
  /** Jobs taken here and not yet completed or released, by job id. */
  readonly #held = new Map<string, Held>();
  /** Consumers in `take` now, with how many calls. */
  readonly #taking = new Map<string, number>();
  /** Worker name of each consumer that heartbeats. */
  readonly #workers = new Map<string, string>();
  readonly #onCancelledWhileQueued?: (record: JobRecord) => void;
  #beat?: ReturnType<typeof setInterval>;
  #beatRetry?: ReturnType<typeof setTimeout>;
  /** The deliveries of webhooks, in this Redis. */
  readonly webhooks: RedisWebhookOutbox;

  private constructor(options: RedisJobQueueOptions, resolved: Resolved) {
    this.#options = resolved;
    this.#onCancelledWhileQueued = options.onCancelledWhileQueued;
    this.#redis = new RedisConnection(resolved);
    this.#layout = redisLayout(options.prefix ?? "svd");
    this.#group = options.group ?? "workers";
    this.#context = {
      jobs: this.#layout.jobs,
      group: this.#group,
      jobPrefix: this.#layout.jobPrefix,
      workerPrefix: this.#layout.workerPrefix,
      aliveTtlMs: resolved.aliveTtlMs,
      retentionMs: resolved.retentionMs,
      maxAttempts: resolved.maxAttempts,
      queued: this.#layout.queued,
      queueSeq: this.#layout.queueSeq,
      moves: this.#layout.moves,
      deadlines: this.#layout.deadlines,
      webhooksDue: this.#layout.webhooksDue,
      webhookPrefix: this.#layout.webhookPrefix,
      webhookTtlMs: resolved.webhookTtlMs,
    };
    this.webhooks = new RedisWebhookOutbox({
      evalScript: (name, args) => this.#eval(name, args),
      send: (args) => this.#send(args),
      webhooksKey: (id) => this.#keys(id)?.webhooks,
    });
    this.#reader = new RedisEventReader({
      connection: this.#redis,
      wakeKey: this.#layout.reader(this.#instance),
      blockMs: resolved.blockMs,
    });
  }

  /**
   * Connects (waiting at most `connectTimeoutMs`) and creates the consumer group if missing.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   */
  static async connect(options: RedisJobQueueOptions): Promise<RedisJobQueue> {
    const queue = new RedisJobQueue(options, resolveOptions(options));
    try {
      await queue.#redis.connect();
      await queue.#eval("ensureGroup", []);
    } catch (error) {
      queue.#redis.close();
      throw new StoreUnavailableError(
        `Cannot connect to Redis at ${queue.#redis.where}: ${messageOf(error)}`,
        { cause: error },
      );
    }
    return queue;
  }

  async submit(request: JobRequest, image: Uint8Array): Promise<JobRecord> {
    const id = newJobId();
    const createdAt = this.#options.now();
    const deadline = deadlineOf({ createdAt, request });
    const [accepted] = await this.#eval("submit", [
      String(this.#options.capacity),
      id,
      encodeRequest(request),
      String(createdAt),
      toBuffer(image),
      deadline === undefined ? "" : String(deadline),
      webhookEventsOf({ request }) ?? "",
    ]) as [number, ...unknown[]];
    if (accepted === 0) {
      throw new QueueFullError(
        `The queue is full (${this.#options.capacity} jobs queued or running); retry later`,
        this.#options.retryAfterSeconds(),
      );
    }
    return { id, status: "queued", request, createdAt, attempts: 0 };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const keys = this.#keys(id);
    if (!keys) return undefined;
    const flat = await this.#send(["HGETALL", keys.record]) as string[];
    return decodeRecord(flat);
  }

  async position(id: string): Promise<number | undefined> {
    if (!isJobId(id)) return undefined;
    const position = await this.#eval("position", [id]) as number | null;
    return position ?? undefined;
  }

  async take(worker: string, signal: AbortSignal): Promise<ClaimedJob | undefined> {
    if (worker === "") throw new TypeError("A worker name must not be empty");
    const consumer = `${worker}@${this.#instance}`;
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    if (stop.aborted) return undefined;
    this.#taking.set(consumer, (this.#taking.get(consumer) ?? 0) + 1);
    this.#workers.set(consumer, worker);
    this.#startBeating();
    try {
      await this.#sendBeat(consumer, worker);
      await this.#returnOrphans(consumer);
      let reclaimAt = 0;
      while (!stop.aborted) {
        if (Date.now() >= reclaimAt) {
          reclaimAt = Date.now() + Math.min(this.#options.blockMs, this.#options.claimIdleMs);
          const found = await this.#eval("reclaim", [
            consumer,
            worker,
            String(this.#options.claimIdleMs),
            // After a Redis restart, time for every live worker to heartbeat again.
            String(Math.max(this.#options.claimIdleMs, this.#options.heartbeatTtlMs)),
          ]) as [string, string] | null;
          if (found) {
            const job = await this.#claimed(found[0], found[1], consumer);
            if (job) return job;
            continue;
          }
        }
        const block = Math.max(1, Math.min(this.#options.blockMs, reclaimAt - Date.now()));
        // deno-fmt-ignore
        const reply = await this.#blocking([
          "XREADGROUP", "GROUP", this.#group, consumer, "COUNT", "1", "BLOCK", String(block),
          "STREAMS", this.#layout.jobs, ">",
        ], stop);
        if (reply === ABORTED) break;
        const entry = (reply as StreamReply | null)?.[0]?.[1]?.[0];
        if (!entry) continue;
        const [entryId, fields] = entry;
        const id = fieldOf(fields, "id");
        // Not a job entry (another writer's): left pending, then dropped as an orphan.
        if (id === undefined || !isJobId(id)) continue;
        const outcome = await this.#eval("take", [entryId, id, worker]);
        if (outcome !== "ok") continue;
        const job = await this.#claimed(entryId, id, consumer);
        if (job) return job;
      }
      // A read cut short by the abort may have been delivered all the same.
      await this.#returnOrphans(consumer).catch(() => {});
      return undefined;
    } finally {
      const left = (this.#taking.get(consumer) ?? 1) - 1;
      if (left > 0) this.#taking.set(consumer, left);
      else this.#taking.delete(consumer);
      this.#stopBeatingIfIdle(consumer);
    }
  }

  async complete(job: ClaimedJob): Promise<void> {
    const id = job.record.id;
    const held = this.#held.get(id);
    if (!held) return;
    try {
      await this.#eval("complete", [held.entry, held.consumer, id]);
    } finally {
      // Even when Redis failed: without this consumer's heartbeat the entry is reclaimed later.
      this.#held.delete(id);
      this.#stopBeatingIfIdle(held.consumer);
    }
  }

  async finish(job: ClaimedJob, ending: JobEnding): Promise<"finished" | "dropped"> {
    const id = job.record.id;
    const held = this.#held.get(id);
    if (!held) return "dropped";
    const video = ending.video;
    if (video) this.#checkVideoSize(id, video);
    const outcome = await this.#eval("finish", [
      held.entry,
      held.consumer,
      job.record.worker ?? "",
      id,
      ending.status,
      encodeEventData(ending.data),
      ...(video ? ["1", ...encodeVideo(video)] : ["0", "", "", ""]),
      ...encodePatch(ending.patch),
    ]);
    // Failed above (Redis unreachable): the job stays held, and heartbeated, for the next try.
    this.#held.delete(id);
    this.#stopBeatingIfIdle(held.consumer);
    return outcome === "ok" || outcome === "ended" ? "finished" : "dropped";
  }

  async release(job: ClaimedJob): Promise<void> {
    const id = job.record.id;
    const held = this.#held.get(id);
    if (!held) return;
    try {
      await this.#eval("release", [held.entry, held.consumer, id]);
    } finally {
      this.#held.delete(id);
      this.#stopBeatingIfIdle(held.consumer);
    }
  }

  async update(id: string, patch: JobPatch): Promise<void> {
    if (!isJobId(id)) return;
    await this.#eval("update", [id, ...encodePatch(patch)]);
  }

  async publish(id: string, type: JobEventType, data: Record<string, unknown>): Promise<JobEvent> {
    if (!isJobId(id)) {
      throw new RangeError(`Cannot publish "${type}": no job ${JSON.stringify(id)}`);
    }
    const eventId = await this.#eval("publish", [id, type, encodeEventData(data)]) as
      | string
      | null;
    if (eventId === null) throw new RangeError(`Cannot publish "${type}": no job "${id}"`);
    return { id: eventId, type, data };
  }

  async *events(
    id: string,
    afterId: string | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<JobEvent> {
    const keys = this.#keys(id);
    if (!keys) return;
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    if (stop.aborted) return;
    // An id that is not a stream id (another queue's, garbage) replays from the start.
    let last = afterId !== undefined && isStreamId(afterId) ? afterId : "0-0";
    if (await this.#send(["EXISTS", keys.record]) === 0) {
      // Resumed on a job that is gone (vanished while its stream was read); unknown: nothing.
      if (afterId !== undefined) yield lostEvent(last);
      return;
    }
    /** The position this stream told last (undefined: none yet, or not queued since). */
    let told: number | undefined;
    // Stored events, a page at a time.
    for (;;) {
      const page = await this.#eventsAfter(keys, last);
      for (const entry of page) {
        const event = decodeEvent(entry);
        last = event.id;
        yield event;
        if (isTerminalEvent(event.type)) return;
        if (stop.aborted) return;
        told = event.type === "queued" ? Number(event.data.position) : undefined;
      }
      if (page.length < EVENT_PAGE) break;
    }
    // Asked for what follows the end (or beyond it): nothing will.
    const newest = await this.#send([
      "XREVRANGE",
      keys.events,
      "+",
      "-",
      "COUNT",
      "1",
    ]) as StreamEntry[];
    if (!newest[0] || await this.#vanished(keys)) {
      yield lostEvent(last);
      return;
    }
    const newestType = decodeEvent(newest[0]).type;
    if (isTerminalEvent(newestType)) return;
    // An id beyond the newest event (stale or crafted) resumes from the end: the events that
    // follow are sent (a read after the future id would wait until the job expired).
    if (compareStreamIds(last, newest[0][0]) > 0) last = newest[0][0];
    // Waiting in the queue: its place now, then the queue's moves (see the module doc).
    let place = newestType === "queued" ? await this.#queuePlace(id) : undefined;
    if (place && place.position !== told) {
      told = place.position;
      yield queuedEvent(last, told);
    }
    // Live ones, through the instance's one shared reader.
    const subscription = this.#reader.subscribe(keys.events, last);
    let moves = place ? this.#reader.subscribe(this.#layout.moves, place.movesAfter) : undefined;
    const leaveQueue = () => {
      moves?.close();
      moves = undefined;
      place = undefined;
    };
    try {
      while (!stop.aborted) {
        const { job, moved } = await this.#nextOfEither(subscription, last, moves, place, stop);
        if (stop.aborted) return;
        if (place && moved !== undefined) {
          place = moved === "behind" ? await this.#queuePlace(id) : followMoves(place, moved);
          if (!place) leaveQueue();
          else if (place.position !== told) {
            told = place.position;
            yield queuedEvent(last, told);
            if (stop.aborted) return;
          }
        }
        if (job === undefined) {
          // Nothing for a while: the job's keys may have vanished (evicted, flushed).
          if (moved === undefined && await this.#vanished(keys)) {
            yield lostEvent(last);
            return;
          }
          continue;
        }
        const entries = job === "behind" ? await this.#eventsAfter(keys, last) : job;
        for (const entry of entries) {
          const event = decodeEvent(entry);
          last = event.id;
          yield event;
          if (isTerminalEvent(event.type)) return;
          if (stop.aborted) return;
          told = event.type === "queued" ? Number(event.data.position) : undefined;
          if (event.type !== "queued") leaveQueue();
        }
      }
    } finally {
      subscription.close();
      moves?.close();
    }
  }

  /**
   * The next entries of the job's stream or of the queue's moves, whichever come first (the
   * other read is cut short and its answer, if any, returned too); undefined for a stream that
   * had nothing within `blockMs`.
   */
  async #nextOfEither(
    job: StreamSubscription,
    after: string,
    moves: StreamSubscription | undefined,
    place: QueuePlace | undefined,
    stop: AbortSignal,
  ): Promise<{ job: NextEntries; moved: NextEntries }> {
    const blockMs = this.#options.blockMs;
    if (!moves || !place) return { job: await job.next(after, blockMs, stop), moved: undefined };
    const cut = new AbortController();
    const either = AbortSignal.any([stop, cut.signal]);
    const jobNext = job.next(after, blockMs, either);
    const movesNext = moves.next(place.movesAfter, blockMs, either);
    try {
      await Promise.race([jobNext, movesNext]);
    } finally {
      cut.abort();
    }
    const [jobEntries, moved] = await Promise.all([jobNext, movesNext]);
    return { job: jobEntries, moved };
  }

  /** Where job `id` waits in the queue, undefined when it is not queued (one script). */
  async #queuePlace(id: string): Promise<QueuePlace | undefined> {
    const found = await this.#eval("queuePlace", [id]) as [number, string, string] | null;
    if (!found) return undefined;
    return { position: found[0], seq: Number(found[1]), movesAfter: found[2] };
  }

  async expire(now: number): Promise<JobRecord[]> {
    const ids = await this.#eval("expire", [
      String(now),
      String(EXPIRE_BATCH),
      deadlineMessage("%s", "%s"), // the script fills in the timeout and the stage
    ]) as string[];
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((record) => record !== undefined);
  }

  async requestCancel(id: string): Promise<JobRecord | undefined> {
    if (!isJobId(id)) return undefined;
    const known = await this.#eval("cancel", [id, String(this.#options.now())]);
    if (known === 0) return undefined;
    const record = await this.get(id);
    if (known === 2 && record) this.#onCancelledWhileQueued?.(record);
    return record;
  }

  async check(id: string): Promise<JobCheck> {
    if (!isJobId(id)) return "lost";
    return await this.#eval("check", [id]) as JobCheck;
  }

  async cancelRequested(id: string): Promise<boolean> {
    const keys = this.#keys(id);
    return keys !== undefined && await this.#send(["EXISTS", keys.cancel]) === 1;
  }

  async putVideo(id: string, video: StoredVideo): Promise<void> {
    if (!isJobId(id)) return;
    this.#checkVideoSize(id, video);
    await this.#eval("putVideo", [id, ...encodeVideo(video)]);
  }

  async getVideo(id: string): Promise<StoredVideo | undefined> {
    const keys = this.#keys(id);
    if (!keys) return undefined;
    const flat = await this.#send(["HGETALL", keys.video], {
      typeMapping: AS_BUFFERS,
    }) as Buffer[];
    return decodeVideo(flat);
  }

  /**
   * Publishes the model this worker serves, for the API processes (`published_model.ts`).
   * `replace: false` stores it only when no model is published (a Redis that lost its data).
   * @returns whether it was stored.
   */
  async publishModel(model: PublishedModel, options: { replace: boolean }): Promise<boolean> {
    const args = ["SET", this.#layout.model, encodePublishedModel(model)];
    return await this.#send(options.replace ? args : [...args, "NX"]) === "OK";
  }

  /**
   * The model the workers published, undefined when none is.
   * @throws {SyntaxError} or `ModelJsonError` for a stored value that is not a valid one.
   */
  async publishedModel(): Promise<PublishedModel | undefined> {
    const text = await this.#send(["GET", this.#layout.model]) as string | null;
    return text === null
      ? undefined
      : decodePublishedModel(text, `Redis key ${this.#layout.model}`);
  }

  async stats(): Promise<QueueStats> {
    const [queued, running] = await this.#eval("stats", []) as [number, number];
    return { queued, running };
  }

  async ready(): Promise<boolean> {
    if (this.#redis.closed) return false;
    try {
      // Short: readiness probes give up after a second or so.
      await this.#send(["PING"], {}, Math.min(1000, this.#options.commandTimeoutMs));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends waiting `take`s and `events`, stops heartbeating (jobs still held here become reclaimable
   * after `claimIdleMs`) and closes the connections. Jobs are left as they are: other instances
   * go on with them.
   */
  async close(): Promise<void> {
    if (this.#redis.closed) return;
    this.#closing.abort(new Error("the Redis job queue is closing"));
    this.#reader.close();
    clearInterval(this.#beat);
    clearTimeout(this.#beatRetry);
    const beats = [...this.#workers.keys()].map((consumer) => this.#layout.worker(consumer));
    const wake = this.#layout.reader(this.#instance);
    await this.#redis.tryToSend(["DEL", wake, ...beats], 1000);
    this.#redis.close();
  }

  // -------------------------------------------------------------------------------------------

  /**
   * The keys of job `id`, or undefined when `id` is not of the form the queue gives out: an id
   * from a request never reaches a key name unchecked (`<id>:events` would name the job's stream).
   */
  #keys(id: string): JobKeys | undefined {
    return isJobId(id) ? this.#layout.job(id) : undefined;
  }

  /** @throws {RangeError} for a clip above `maxVideoBytes`. */
  #checkVideoSize(id: string, video: StoredVideo): void {
    const limit = this.#options.maxVideoBytes;
    if (video.bytes.length > limit) {
      throw new RangeError(
        `Cannot store the video of job "${id}": ${video.bytes.length} bytes exceed the Redis ` +
          `store's limit of ${limit} bytes (${(limit / 2 ** 20).toFixed(1)} MiB, maxVideoBytes)`,
      );
    }
  }

  /** True when the job's record or its events stream is gone (a job always has both). */
  async #vanished(keys: JobKeys): Promise<boolean> {
    return await this.#send(["EXISTS", keys.record, keys.events]) as number < 2;
  }

  /** Up to a page of the stored events after `last`. */
  async #eventsAfter(keys: JobKeys, last: string): Promise<StreamEntry[]> {
    // deno-fmt-ignore
    return await this.#send([
      "XRANGE", keys.events, `(${last}`, "+", "COUNT", String(EVENT_PAGE),
    ]) as StreamEntry[];
  }

  /** One command (see `RedisConnection.send`). */
  #send(
    args: ReadonlyArray<string | Buffer>,
    options?: CommandOptions,
    timeoutMs?: number,
  ): Promise<unknown> {
    return this.#redis.send(args, options, timeoutMs);
  }

  /** Runs script `name` with the common arguments and `args`. */
  #eval(name: ScriptName, args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    return this.#redis.evalScript(SCRIPTS[name], scriptArguments(this.#context, args));
  }

  /**
   * One blocking read (see `RedisConnection.blocking`). Redis lost the group (it restarted without
   * persistence): it is made again and the read answers null, to be retried.
   */
  async #blocking(args: string[], signal: AbortSignal): Promise<unknown> {
    try {
      return await this.#redis.blocking(args, signal);
    } catch (error) {
      if (!(error instanceof ErrorReply && error.message.startsWith("NOGROUP"))) throw error;
      await this.#eval("ensureGroup", []);
      return null;
    }
  }

  async #claimed(entry: string, id: string, consumer: string): Promise<ClaimedJob | undefined> {
    const keys = this.#layout.job(id);
    const [flat, image] = await Promise.all([
      this.#send(["HGETALL", keys.record]) as Promise<string[]>,
      this.#send(["GET", keys.image], { typeMapping: AS_BUFFERS }) as Promise<Buffer | null>,
    ]);
    const record = decodeRecord(flat);
    if (!record) return undefined; // expired meanwhile; the entry is an orphan now
    this.#held.set(id, { entry, consumer });
    return { record, image: image ? new Uint8Array(image) : new Uint8Array() };
  }

  /** Hands deliveries this consumer never received (an aborted read) to any worker. */
  async #returnOrphans(consumer: string): Promise<void> {
    const held = [...this.#held.values()]
      .filter((h) => h.consumer === consumer)
      .map((h) => h.entry);
    await this.#eval("orphans", [consumer, ORPHANED, String(this.#options.claimIdleMs), ...held]);
  }

  async #sendBeat(consumer: string, worker: string): Promise<void> {
    const ttl = String(Math.ceil(this.#options.heartbeatTtlMs));
    await this.#send(["SET", this.#layout.worker(consumer), worker, "PX", ttl]);
  }

  #startBeating(): void {
    if (this.#beat !== undefined) return;
    this.#beat = setInterval(
      () => this.#beatAll(),
      Math.max(50, this.#options.heartbeatTtlMs / 3),
    );
  }

  #beatAll(): void {
    for (const [consumer, worker] of this.#workers) {
      this.#sendBeat(consumer, worker).catch(() => this.#beatSoon());
    }
  }

  /**
   * A beat failed (Redis down): beat again soon rather than at the next interval, so that a job
   * held here (a finished job whose ending is being retried) shows its worker alive as soon as
   * Redis is back.
   */
  #beatSoon(): void {
    if (this.#beatRetry !== undefined || this.#redis.closed) return;
    this.#beatRetry = setTimeout(() => {
      this.#beatRetry = undefined;
      if (this.#workers.size > 0) this.#beatAll();
    }, BEAT_RETRY_MS);
  }

  /** A consumer heartbeats while it is in `take` or holds a job. */
  #stopBeatingIfIdle(consumer: string): void {
    if (this.#taking.has(consumer)) return;
    for (const held of this.#held.values()) if (held.consumer === consumer) return;
    this.#workers.delete(consumer);
    if (!this.#redis.closed) {
      this.#send(["DEL", this.#layout.worker(consumer)]).catch(() => {});
    }
  }
}

/** Where a job waits: its position, its queue number, and the last move of the queue seen. */
interface QueuePlace {
  readonly position: number;
  readonly seq: number;
  readonly movesAfter: string;
}

/**
 * `place` after the queue's `moves` (entries `{left: queue number}`): one place up for each job
 * ahead that left; undefined once the job itself left.
 */
function followMoves(place: QueuePlace, moves: readonly StreamEntry[]): QueuePlace | undefined {
  let position = place.position;
  for (const [, fields] of moves) {
    const seq = Number(fieldOf(fields, "left"));
    if (seq === place.seq) return undefined;
    if (seq < place.seq) position--;
  }
  const movesAfter = moves.length > 0 ? moves[moves.length - 1][0] : place.movesAfter;
  return { ...place, position: Math.max(1, position), movesAfter };
}

/** A `queued` event telling a new position, not stored: it repeats the id of the last event. */
function queuedEvent(last: string, position: number): JobEvent {
  return { id: last, type: "queued", data: { position } };
}

/**
 * The `error` event that ends the stream of a job gone from Redis. It is not stored (there is no
 * job to store it in); its id follows `last`, so that a client resuming after it is told 404.
 */
function lostEvent(last: string): JobEvent {
  const [ms, seq] = last.split("-").map(BigInt);
  return { id: `${ms}-${seq + 1n}`, type: "error", data: JOB_LOST_ERROR };
}

function resolveOptions(options: RedisJobQueueOptions): Resolved {
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const resolved: Resolved = {
    url: options.url,
    capacity: options.capacity,
    retentionMs: options.retentionMs,
    maxVideoBytes: options.maxVideoBytes ?? DEFAULT_MAX_VIDEO_BYTES,
    claimIdleMs,
    heartbeatTtlMs: options.heartbeatTtlMs ?? Math.min(15_000, claimIdleMs),
    maxAttempts: options.maxAttempts ?? 2,
    aliveTtlMs: options.aliveTtlMs ?? 24 * 3_600_000,
    webhookTtlMs: options.webhookTtlMs ?? 7 * 24 * 3_600_000,
    commandTimeoutMs: options.commandTimeoutMs ?? 5000,
    blockMs: options.blockMs ?? 2000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    retryAfterSeconds: options.retryAfterSeconds ?? (() => 10),
    now: options.now ?? Date.now,
  };
  try {
    const url = new URL(resolved.url);
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") throw new Error("not redis:");
  } catch (error) {
    // The URL is not quoted: it may hold a password.
    throw new TypeError("Invalid Redis URL: expected redis://[:password@]host[:port][/db]", {
      cause: error,
    });
  }
  for (const name of ["capacity", "maxAttempts"] as const) {
    const value = resolved[name];
    if (!(Number.isInteger(value) && value >= 1)) {
      throw new RangeError(`${name} must be an integer ≥ 1, got ${value}`);
    }
  }
  // deno-fmt-ignore
  for (const name of [
    "retentionMs", "maxVideoBytes", "claimIdleMs", "heartbeatTtlMs", "aliveTtlMs", "webhookTtlMs",
    "commandTimeoutMs", "blockMs", "connectTimeoutMs",
  ] as const) {
    const value = resolved[name];
    if (!(Number.isFinite(value) && value > 0)) {
      throw new RangeError(`${name} must be a positive number, got ${value}`);
    }
  }
  return resolved;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
