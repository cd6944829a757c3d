/**
 * The Redis Streams {@linkcode JobQueue}: one queue shared by every API instance and GPU worker
 * that points at the same Redis (`REDIS_URL`). Keys are listed in `redis_layout.ts`; every
 * multi-key change is one Lua script, so instances never see half a job.
 *
 * - **submit** checks `queued + running < capacity` (the jobs stream's length) and XADDs the job,
 *   its record, its image and its `queued` {position} event in one script: the capacity holds
 *   cluster-wide.
 * - **Queued / running.** A jobs-stream entry after the group's last-delivered-id is *queued*; a
 *   delivered one sits in the group's PEL and is *running* until `complete` or `release` XACKs and
 *   XDELs it. `stats()` = {queued: XLEN − PEL size, running: PEL size}; a job whose worker died
 *   counts as running until another worker reclaims it. `position(id)` = 1-based rank of the
 *   job's entry among the queued ones (stream order), undefined once delivered.
 * - **take** = XREADGROUP BLOCK on its own connection (aborting the signal closes that connection,
 *   so `take` returns at once). Consumers are named `<worker>@<instance>` and heartbeat a key with
 *   a short TTL while they are in `take` or hold a job; before reading new entries, `take`
 *   XCLAIMs entries pending longer than `claimIdleMs` whose consumer has no heartbeat. A reclaimed
 *   job that had started publishes `queued` {position: 1, reason: "worker_lost"} and runs again
 *   from the start; once `maxAttempts` runs lost their worker it ends with `error`
 *   {code: "worker_lost"} instead.
 * - **release** XACKs + XDELs the entry and XADDs a new one: unlike the embedded queue, a released
 *   job goes to the back of the queue (a stream cannot insert at its front). It publishes `queued`
 *   {position}; a release does not count as an attempt.
 * - **Events** live in a stream per job whose entry ids (`1732530000000-0`) are the event ids, so
 *   `Last-Event-ID` resumes on any instance; `events` = XRANGE after the id, then XREAD BLOCK,
 *   ending after a terminal event, when the job expires, or when the signal aborts.
 * - **Expiry.** All keys of a job expire together: 24 h (`aliveTtlMs`) after its last write while
 *   it has not ended, `retentionMs` after it ended (terminal status or event). The image is
 *   deleted as soon as the job ends. Clips above `maxVideoBytes` (default 64 MiB) are refused.
 * - **Outages.** Commands fail fast while Redis is unreachable (no offline queue; each command
 *   times out after `commandTimeoutMs`): every method throws {@linkcode StoreUnavailableError},
 *   `ready()` answers false, and the client reconnects by itself when Redis is back. A connection
 *   that stops answering without closing (a failover, a dropped NAT entry) is replaced after its
 *   first timeout.
 * - **Connections.** One for commands, plus one per `take` or `events` while it waits in a
 *   blocking read (up to 8 idle ones are kept). Call `take` once at a time per worker name (the
 *   worker loop's slots have distinct names). `close()` leaves jobs alone — unlike the embedded
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

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { createClient, ErrorReply, RESP_TYPES } from "redis";
import {
  type ClaimedJob,
  isTerminalEvent,
  type JobEvent,
  type JobEventType,
  type JobPatch,
  type JobQueue,
  type JobRecord,
  type JobRequest,
  QueueFullError,
  type QueueStats,
  type StoredVideo,
  StoreUnavailableError,
} from "./job_queue.ts";
import { luaJobKeys, type RedisLayout, redisLayout } from "./redis_layout.ts";

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
  /** Longest single XREAD / XREADGROUP BLOCK, in ms (default 2 s). */
  readonly blockMs?: number;
  /** Longest wait for the first connection in `connect`, in ms (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Suggested wait for a client refused with `QueueFullError`, in seconds (default 10). */
  readonly retryAfterSeconds?: () => number;
  /** Clock for the record's timestamps, milliseconds since the epoch (tests). */
  readonly now?: () => number;
}

type Resolved = Required<Omit<RedisJobQueueOptions, "prefix" | "group">>;

/** The few client calls this module makes (node-redis v5). */
interface Connection {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  destroy(): void;
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: CommandOptions): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

interface CommandOptions {
  readonly typeMapping?: typeof AS_BUFFERS;
}

/** A command or connection got no answer in time. */
class NoAnswerError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "NoAnswerError";
  }
}

/** Bulk strings as Buffers, for image and clip bytes. */
const AS_BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer };

/** Consumer that owns deliveries no `take` received (an aborted read): reclaimable at once. */
const ORPHANED = "(orphaned)";
/** Idle blocking connections kept for the next `take` / `events`. */
const MAX_IDLE_BLOCKING = 8;
/** Events read per XRANGE / XREAD. */
const EVENT_PAGE = 100;
/** Redis errors that mean "not now" rather than "wrong command". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

// ---------------------------------------------------------------------------------------------
// Lua. Every script gets KEYS[1] = the jobs stream and the same first ARGV (see #eval).

const PRELUDE = `
local JOBS = KEYS[1]
local GROUP = ARGV[1]
local JOB_PREFIX = ARGV[2]
local WORKER_PREFIX = ARGV[3]
local ALIVE_MS = tonumber(ARGV[4])
local RETENTION_MS = tonumber(ARGV[5])
local MAX_ATTEMPTS = tonumber(ARGV[6])
local A = 6 -- a script's own arguments start at ARGV[A + 1]
local TERMINAL = { done = true, error = true, cancelled = true }
${luaJobKeys()}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Stream ids "ms-seq" compared as numbers (ms stays exact in Lua's doubles).
local function id_after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end

local function ensure_group()
  redis.pcall('XGROUP', 'CREATE', JOBS, GROUP, '0', 'MKSTREAM') -- BUSYGROUP when it exists
end

-- Entries after the group's last-delivered-id are the queued ones.
local function last_delivered()
  local groups = redis.pcall('XINFO', 'GROUPS', JOBS)
  if groups.err then return '0-0' end
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == GROUP then return info['last-delivered-id'] end
  end
  return '0-0'
end

-- 1-based rank of an entry among the queued ones; false once it was delivered.
local function queue_position(entry)
  local last = last_delivered()
  if not id_after(entry, last) then return false end
  return #redis.call('XRANGE', JOBS, '(' .. last, entry)
end

-- The consumer an entry is pending for; false when it is not pending.
local function pending_owner(entry)
  local p = redis.pcall('XPENDING', JOBS, GROUP, entry, entry, 1)
  if p.err or #p == 0 then return false end
  return p[1][2]
end

-- Acked entries are deleted at once, so the stream holds exactly the queued and running jobs.
local function drop_entry(entry)
  redis.call('XACK', JOBS, GROUP, entry)
  redis.call('XDEL', JOBS, entry)
end

-- One expiry for every key of a job: the retention after it ended, the alive TTL before.
local function touch(k, now, ending)
  local ended = redis.call('HGET', k.record, 'endedAt')
  if not ended and ending then
    ended = now
    redis.call('HSET', k.record, 'endedAt', now)
    redis.call('DEL', k.image)
  end
  local at = ended and (tonumber(ended) + RETENTION_MS) or (now + ALIVE_MS)
  for _, key in pairs(k) do redis.call('PEXPIREAT', key, at) end
end

local function add_event(k, type, data)
  return redis.call('XADD', k.events, '*', 'type', type, 'data', data)
end

-- A delivered entry becomes the job of \`worker\`: 'ok'; or 'skip' (job gone or ended) / 'lost'
-- (MAX_ATTEMPTS runs already lost their worker), the entry removed.
local function start(entry, id, worker, reclaimed)
  local k = job_keys(JOB_PREFIX, id)
  local f = redis.call('HMGET', k.record, 'status', 'worker', 'attempts', 'released')
  local status, previous = f[1], f[2]
  if not status or TERMINAL[status] then
    drop_entry(entry)
    return 'skip'
  end
  local attempts, released = tonumber(f[3]) or 0, tonumber(f[4]) or 0
  local now = now_ms()
  if reclaimed and previous then
    -- It had started on a worker that stopped heartbeating: run it again, or give up.
    local lost = attempts - released
    if lost >= MAX_ATTEMPTS then
      local failure = cjson.encode({ code = 'worker_lost', message =
        'The worker running this job stopped responding (' .. lost .. ' times); it is not run again' })
      redis.call('HSET', k.record, 'status', 'error', 'finishedAt', now, 'error', failure)
      add_event(k, 'error', failure)
      drop_entry(entry)
      touch(k, now, true)
      return 'lost'
    end
    redis.call('HSET', k.record, 'status', 'queued')
    redis.call('HDEL', k.record, 'startedAt')
    add_event(k, 'queued', '{"position":1,"reason":"worker_lost"}')
  end
  redis.call('HSET', k.record, 'attempts', attempts + 1, 'worker', worker)
  touch(k, now, false)
  return 'ok'
end
`;

const SCRIPTS = {
  ensureGroup: `ensure_group() return 1`,

  /** capacity, id, request JSON, createdAt, image → {0, size} full | {1, event id, position} */
  submit: `
local capacity, id = tonumber(ARGV[A + 1]), ARGV[A + 2]
ensure_group()
local size = redis.call('XLEN', JOBS)
if size >= capacity then return {0, size} end
local k = job_keys(JOB_PREFIX, id)
local entry = redis.call('XADD', JOBS, '*', 'id', id)
redis.call('HSET', k.record, 'id', id, 'status', 'queued', 'request', ARGV[A + 3],
  'createdAt', ARGV[A + 4], 'attempts', 0, 'released', 0, 'entry', entry)
redis.call('SET', k.image, ARGV[A + 5])
local position = queue_position(entry)
local event = add_event(k, 'queued', '{"position":' .. position .. '}')
touch(k, now_ms(), false)
return {1, event, position}`,

  /** id → position | nil */
  position: `
local f = redis.call('HMGET', job_keys(JOB_PREFIX, ARGV[A + 1]).record, 'status', 'entry')
if f[1] ~= 'queued' or not f[2] then return false end
return queue_position(f[2])`,

  /** → {queued, running} */
  stats: `
local size = redis.call('XLEN', JOBS)
local summary = redis.pcall('XPENDING', JOBS, GROUP)
local running = 0
if not summary.err then running = tonumber(summary[1]) end
return {size - running, running}`,

  /** entry, id, worker → 'ok' | 'skip' | 'lost' */
  take: `return start(ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], false)`,

  /** consumer, worker, claimIdleMs → {entry, id} | nil */
  reclaim: `
local consumer, worker, min_idle = ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
local pending = redis.pcall('XPENDING', JOBS, GROUP, 'IDLE', min_idle, '-', '+', 100)
if pending.err then return false end
local found = false
for _, p in ipairs(pending) do
  local entry, owner = p[1], p[2]
  if owner ~= consumer and redis.call('EXISTS', WORKER_PREFIX .. owner) == 0 then
    local claimed = redis.call('XCLAIM', JOBS, GROUP, consumer, min_idle, entry)
    local fields = claimed[1] and claimed[1][2]
    local id = false
    if fields then
      for i = 1, #fields, 2 do if fields[i] == 'id' then id = fields[i + 1] end end
    end
    if not id then
      drop_entry(entry)
    elseif start(entry, id, worker, true) == 'ok' then
      found = {entry, id}
      break
    end
  end
end
-- Forget consumers that hold nothing and stopped heartbeating (every stopped instance leaves some).
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', JOBS, GROUP)) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and info['name'] ~= consumer
    and redis.call('EXISTS', WORKER_PREFIX .. info['name']) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', JOBS, GROUP, info['name'])
  end
end
return found`,

  /** consumer, orphaned consumer, idle, held entries… → count handed over */
  orphans: `
local consumer, orphaned, idle = ARGV[A + 1], ARGV[A + 2], ARGV[A + 3]
local held = {}
for i = A + 4, #ARGV do held[ARGV[i]] = true end
local pending = redis.pcall('XPENDING', JOBS, GROUP, '-', '+', 100, consumer)
if pending.err then return 0 end
local n = 0
for _, p in ipairs(pending) do
  if not held[p[1]] then
    redis.call('XCLAIM', JOBS, GROUP, orphaned, 0, p[1], 'IDLE', idle, 'JUSTID')
    n = n + 1
  end
end
return n`,

  /** entry, consumer, id → 1 | 0 (not ours any more) */
  complete: `
local entry, consumer = ARGV[A + 1], ARGV[A + 2]
if pending_owner(entry) ~= consumer then return 0 end
drop_entry(entry)
redis.call('DEL', job_keys(JOB_PREFIX, ARGV[A + 3]).image)
return 1`,

  /** entry, consumer, id → new position | nil (not ours, gone or ended) */
  release: `
local entry, consumer, id = ARGV[A + 1], ARGV[A + 2], ARGV[A + 3]
if pending_owner(entry) ~= consumer then return false end
drop_entry(entry)
local k = job_keys(JOB_PREFIX, id)
local status = redis.call('HGET', k.record, 'status')
if not status or TERMINAL[status] then return false end
local again = redis.call('XADD', JOBS, '*', 'id', id)
redis.call('HSET', k.record, 'status', 'queued', 'entry', again)
redis.call('HDEL', k.record, 'startedAt', 'worker')
redis.call('HINCRBY', k.record, 'released', 1)
local position = queue_position(again)
add_event(k, 'queued', '{"position":' .. position .. '}')
touch(k, now_ms(), false)
return position`,

  /** id, n, n × (field, value), fields to delete… → 1 | 0 (unknown job) */
  update: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
if redis.call('EXISTS', k.record) == 0 then return 0 end
local n = tonumber(ARGV[A + 2])
for i = 0, n - 1 do redis.call('HSET', k.record, ARGV[A + 3 + 2 * i], ARGV[A + 4 + 2 * i]) end
for i = A + 3 + 2 * n, #ARGV do redis.call('HDEL', k.record, ARGV[i]) end
touch(k, now_ms(), TERMINAL[redis.call('HGET', k.record, 'status')] or false)
return 1`,

  /** id, type, data JSON → event id | nil (unknown job) */
  publish: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
if redis.call('EXISTS', k.record) == 0 then return false end
local event = add_event(k, ARGV[A + 2], ARGV[A + 3])
touch(k, now_ms(), TERMINAL[ARGV[A + 2]] or false)
return event`,

  /** id, finishedAt → 1 | 0 (unknown job) */
  cancel: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
local f = redis.call('HMGET', k.record, 'status', 'entry')
local status, entry = f[1], f[2]
if not status then return 0 end
if TERMINAL[status] then return 1 end
redis.call('SET', k.cancel, '1')
local now = now_ms()
if status == 'queued' and entry and id_after(entry, last_delivered()) then
  -- Not delivered yet: nobody runs it, so it ends here.
  redis.call('XDEL', JOBS, entry)
  redis.call('HSET', k.record, 'status', 'cancelled', 'finishedAt', ARGV[A + 2])
  add_event(k, 'cancelled', '{}')
  touch(k, now, true)
else
  touch(k, now, false)
end
return 1`,

  /** id, bytes, contentType, format → 1 | 0 (unknown job) */
  putVideo: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
if redis.call('EXISTS', k.record) == 0 then return 0 end
redis.call('HSET', k.video, 'bytes', ARGV[A + 2], 'contentType', ARGV[A + 3], 'format', ARGV[A + 4])
touch(k, now_ms(), false)
return 1`,
} as const;

type ScriptName = keyof typeof SCRIPTS;

const SOURCES = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, body]) => {
    const source = PRELUDE + body;
    return [name, { source, sha: createHash("sha1").update(source).digest("hex") }];
  }),
) as Record<ScriptName, { source: string; sha: string }>;

// ---------------------------------------------------------------------------------------------

/** What `#blocking` returns when its signal aborted the read. */
const ABORTED = Symbol("aborted");

interface Held {
  readonly entry: string;
  readonly consumer: string;
}

/** Redis Streams job queue shared by many instances; see the module doc. */
export class RedisJobQueue implements JobQueue {
  readonly #options: Resolved;
  readonly #url: string;
  /** `host:port` for messages (never the password). */
  readonly #where: string;
  readonly #layout: RedisLayout;
  readonly #group: string;
  /** Random per instance: consumers are `<worker>@<instance>`. */
  readonly #instance = crypto.randomUUID().slice(0, 8);
  /** Commands; replaced when it stops answering (a connection that died silently). */
  #client: Connection;
  #replacing = false;
  readonly #idle: Connection[] = [];
  readonly #closing = new AbortController();
  /** Jobs taken here and not yet completed or released, by job id. */
  readonly #held = new Map<string, Held>();
  /** Consumers in `take` now, with how many calls. */
  readonly #taking = new Map<string, number>();
  /** Worker name of each consumer that heartbeats. */
  readonly #workers = new Map<string, string>();
  #beat?: ReturnType<typeof setInterval>;
  #lastError?: Error;
  #closed = false;

  private constructor(options: RedisJobQueueOptions, resolved: Resolved) {
    this.#options = resolved;
    this.#url = options.url;
    this.#layout = redisLayout(options.prefix ?? "svd");
    this.#group = options.group ?? "workers";
    const url = new URL(options.url);
    this.#where = `${url.hostname}:${url.port || "6379"}`;
    this.#client = this.#connection(true);
  }

  /**
   * Connects (waiting at most `connectTimeoutMs`) and creates the consumer group if missing.
   * @throws {StoreUnavailableError} when Redis cannot be reached in time.
   */
  static async connect(options: RedisJobQueueOptions): Promise<RedisJobQueue> {
    const queue = new RedisJobQueue(options, resolveOptions(options));
    try {
      await deadline(queue.#client.connect(), queue.#options.connectTimeoutMs);
      await queue.#eval("ensureGroup", []);
    } catch (error) {
      discard(queue.#client);
      throw new StoreUnavailableError(
        `Cannot connect to Redis at ${queue.#where}: ${messageOf(error)}`,
        { cause: error },
      );
    }
    return queue;
  }

  async submit(request: JobRequest, image: Uint8Array): Promise<JobRecord> {
    const id = crypto.randomUUID();
    const createdAt = this.#options.now();
    const [accepted] = await this.#eval("submit", [
      String(this.#options.capacity),
      id,
      JSON.stringify(request),
      String(createdAt),
      toBuffer(image),
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
    const flat = await this.#send(["HGETALL", this.#layout.job(id).record]) as string[];
    return parseRecord(flat);
  }

  async position(id: string): Promise<number | undefined> {
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
        if (id === undefined) continue; // not a job entry; reclaimed as an orphan
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
    const set: string[] = [];
    const unset: string[] = [];
    for (const [field, value] of Object.entries(patch)) {
      if (value === undefined) unset.push(field);
      else set.push(field, typeof value === "object" ? JSON.stringify(value) : String(value));
    }
    await this.#eval("update", [id, String(set.length / 2), ...set, ...unset]);
  }

  async publish(id: string, type: JobEventType, data: Record<string, unknown>): Promise<JobEvent> {
    const eventId = await this.#eval("publish", [id, type, JSON.stringify(data)]) as string | null;
    if (eventId === null) throw new RangeError(`Cannot publish "${type}": no job "${id}"`);
    return { id: eventId, type, data };
  }

  async *events(
    id: string,
    afterId: string | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<JobEvent> {
    const keys = this.#layout.job(id);
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    if (stop.aborted || await this.#send(["EXISTS", keys.record]) === 0) return;
    // An id that is not a stream id (another queue's, garbage) replays from the start.
    let last = afterId !== undefined && /^\d+-\d+$/.test(afterId) ? afterId : "0-0";
    // Stored events, a page at a time.
    for (;;) {
      const page = await this.#send([
        "XRANGE",
        keys.events,
        `(${last}`,
        "+",
        "COUNT",
        String(EVENT_PAGE),
      ]) as StreamEntry[];
      for (const entry of page) {
        const event = parseEvent(entry);
        last = event.id;
        yield event;
        if (isTerminalEvent(event.type)) return;
        if (stop.aborted) return;
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
    if (newest[0] && isTerminalEvent(parseEvent(newest[0]).type)) return;
    // Live ones.
    while (!stop.aborted) {
      // deno-fmt-ignore
      const reply = await this.#blocking([
        "XREAD", "COUNT", String(EVENT_PAGE), "BLOCK", String(this.#options.blockMs),
        "STREAMS", keys.events, last,
      ], stop);
      if (reply === ABORTED) return;
      const entries = (reply as StreamReply | null)?.[0]?.[1];
      if (!entries) {
        if (await this.#send(["EXISTS", keys.record]) === 0) return; // expired
        continue;
      }
      for (const entry of entries) {
        const event = parseEvent(entry);
        last = event.id;
        yield event;
        if (isTerminalEvent(event.type)) return;
        if (stop.aborted) return;
      }
    }
  }

  async requestCancel(id: string): Promise<JobRecord | undefined> {
    const known = await this.#eval("cancel", [id, String(this.#options.now())]);
    return known === 1 ? await this.get(id) : undefined;
  }

  async cancelRequested(id: string): Promise<boolean> {
    return await this.#send(["EXISTS", this.#layout.job(id).cancel]) === 1;
  }

  async putVideo(id: string, video: StoredVideo): Promise<void> {
    const limit = this.#options.maxVideoBytes;
    if (video.bytes.length > limit) {
      throw new RangeError(
        `Cannot store the video of job "${id}": ${video.bytes.length} bytes exceed the Redis ` +
          `store's limit of ${limit} bytes (${(limit / 2 ** 20).toFixed(1)} MiB, maxVideoBytes)`,
      );
    }
    await this.#eval("putVideo", [id, toBuffer(video.bytes), video.contentType, video.format]);
  }

  async getVideo(id: string): Promise<StoredVideo | undefined> {
    const flat = await this.#send(["HGETALL", this.#layout.job(id).video], {
      typeMapping: AS_BUFFERS,
    }) as Buffer[];
    const fields = new Map<string, Buffer>();
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i].toString(), flat[i + 1]);
    const bytes = fields.get("bytes");
    if (!bytes) return undefined;
    return {
      bytes: new Uint8Array(bytes), // a copy: the reply buffer may be a slice of a larger one
      contentType: fields.get("contentType")?.toString() ?? "application/octet-stream",
      format: (fields.get("format")?.toString() ?? "mp4") as StoredVideo["format"],
    };
  }

  async stats(): Promise<QueueStats> {
    const [queued, running] = await this.#eval("stats", []) as [number, number];
    return { queued, running };
  }

  async ready(): Promise<boolean> {
    if (this.#closed) return false;
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
    if (this.#closed) return;
    this.#closing.abort(new Error("the Redis job queue is closing"));
    clearInterval(this.#beat);
    const beats = [...this.#workers.keys()].map((consumer) => this.#layout.worker(consumer));
    if (beats.length > 0 && this.#client.isReady) {
      await deadline(this.#client.sendCommand(["DEL", ...beats]), 1000).catch(() => {});
    }
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) discard(connection);
    discard(this.#client);
  }

  // -------------------------------------------------------------------------------------------

  #connection(reconnect: boolean): Connection {
    const connection: Connection = createClient({
      url: this.#url,
      // Fail at once while disconnected instead of queueing commands until Redis returns.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.#options.connectTimeoutMs,
        // The main connection comes back by itself; a blocking one is simply replaced.
        reconnectStrategy: reconnect
          ? (retries: number) => Math.min(100 * 2 ** retries, 1000)
          : false,
      },
    });
    connection.on("error", (error) => this.#lastError = error);
    return connection;
  }

  /**
   * One command on the main connection, answered within `timeoutMs` (node-redis's own command
   * timeout stops counting once the command is written, so a silent connection would hang).
   */
  async #send(
    args: ReadonlyArray<string | Buffer>,
    options: CommandOptions = {},
    timeoutMs = this.#options.commandTimeoutMs,
  ): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError("The Redis job queue is closed");
    try {
      return await deadline(this.#client.sendCommand(args, options), timeoutMs);
    } catch (error) {
      if (error instanceof NoAnswerError) this.#replaceClient();
      throw this.#storeError(error);
    }
  }

  /**
   * A command got no answer in time: the connection may be dead without the socket knowing
   * (a failover, a dropped NAT entry), and TCP keepalive takes minutes to notice. Commands go to
   * a new connection from now on; until it is up they fail fast, as during any outage.
   */
  #replaceClient(): void {
    if (this.#replacing || this.#closed) return;
    this.#replacing = true;
    const old = this.#client;
    this.#client = this.#connection(true);
    discard(old);
    this.#client.connect().catch(() => {}).finally(() => this.#replacing = false);
  }

  /** Runs a script by SHA, loading it again after a Redis restart (NOSCRIPT). */
  async #eval(name: ScriptName, args: ReadonlyArray<string | Buffer>): Promise<unknown> {
    const { source, sha } = SOURCES[name];
    const o = this.#options;
    // deno-fmt-ignore
    const common = [
      "1", this.#layout.jobs, this.#group, this.#layout.jobPrefix, this.#layout.workerPrefix,
      String(o.aliveTtlMs), String(o.retentionMs), String(o.maxAttempts),
    ];
    try {
      return await this.#send(["EVALSHA", sha, ...common, ...args]);
    } catch (error) {
      if (!(error instanceof ErrorReply && error.message.startsWith("NOSCRIPT"))) throw error;
      return await this.#send(["EVAL", source, ...common, ...args]);
    }
  }

  /**
   * One blocking read on a connection of its own; an abort closes that connection, so the read
   * ends at once. Returns {@linkcode ABORTED} then.
   */
  async #blocking(args: string[], signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return ABORTED;
    let connection = this.#idle.pop();
    while (connection && !connection.isReady) {
      discard(connection);
      connection = this.#idle.pop();
    }
    let aborted = false;
    let healthy = false;
    const fresh = connection ?? this.#connection(false);
    const onAbort = () => {
      aborted = true;
      discard(fresh);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (!connection) {
        await deadline(fresh.connect(), this.#options.connectTimeoutMs);
      }
      const reply = await deadline(
        fresh.sendCommand(args),
        this.#options.blockMs + this.#options.commandTimeoutMs,
      );
      healthy = true;
      return reply;
    } catch (error) {
      if (aborted) return ABORTED;
      if (error instanceof ErrorReply && error.message.startsWith("NOGROUP")) {
        // Redis lost the group (restarted without persistence): make it and read again.
        healthy = true;
        await this.#eval("ensureGroup", []);
        return null;
      }
      throw this.#storeError(error);
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (healthy && !aborted && !this.#closed && this.#idle.length < MAX_IDLE_BLOCKING) {
        this.#idle.push(fresh);
      } else if (!aborted) {
        discard(fresh);
      }
    }
  }

  async #claimed(entry: string, id: string, consumer: string): Promise<ClaimedJob | undefined> {
    const keys = this.#layout.job(id);
    const [flat, image] = await Promise.all([
      this.#send(["HGETALL", keys.record]) as Promise<string[]>,
      this.#send(["GET", keys.image], { typeMapping: AS_BUFFERS }) as Promise<Buffer | null>,
    ]);
    const record = parseRecord(flat);
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
    this.#beat = setInterval(() => {
      for (const [consumer, worker] of this.#workers) {
        this.#sendBeat(consumer, worker).catch(() => {}); // Redis down: the next beat retries
      }
    }, Math.max(50, this.#options.heartbeatTtlMs / 3));
  }

  /** A consumer heartbeats while it is in `take` or holds a job. */
  #stopBeatingIfIdle(consumer: string): void {
    if (this.#taking.has(consumer)) return;
    for (const held of this.#held.values()) if (held.consumer === consumer) return;
    this.#workers.delete(consumer);
    if (!this.#closed) this.#send(["DEL", this.#layout.worker(consumer)]).catch(() => {});
  }

  #storeError(error: unknown): Error {
    if (error instanceof StoreUnavailableError) return error;
    if (error instanceof ErrorReply && !TRANSIENT_REPLY.test(error.message)) return error;
    const cause = messageOf(error);
    const last = this.#lastError && this.#lastError.message !== cause
      ? ` (last connection error: ${this.#lastError.message})`
      : "";
    return new StoreUnavailableError(
      `Redis at ${this.#where} is unavailable: ${cause}${last}`,
      { cause: error },
    );
  }
}

type StreamEntry = [id: string, fields: string[]];
type StreamReply = [key: string, entries: StreamEntry[]][];

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
    "retentionMs", "maxVideoBytes", "claimIdleMs", "heartbeatTtlMs", "aliveTtlMs",
    "commandTimeoutMs", "blockMs", "connectTimeoutMs",
  ] as const) {
    const value = resolved[name];
    if (!(Number.isFinite(value) && value > 0)) {
      throw new RangeError(`${name} must be a positive number, got ${value}`);
    }
  }
  return resolved;
}

function parseRecord(flat: string[]): JobRecord | undefined {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i], flat[i + 1]);
  const id = h.get("id");
  const request = h.get("request");
  if (id === undefined || request === undefined) return undefined;
  const startedAt = h.get("startedAt");
  const finishedAt = h.get("finishedAt");
  const error = h.get("error");
  const video = h.get("video");
  const worker = h.get("worker");
  // Absent fields stay absent, as in the embedded queue's records.
  return {
    id,
    status: h.get("status") as JobRecord["status"],
    request: JSON.parse(request),
    createdAt: Number(h.get("createdAt")),
    ...(startedAt !== undefined ? { startedAt: Number(startedAt) } : {}),
    ...(finishedAt !== undefined ? { finishedAt: Number(finishedAt) } : {}),
    ...(error !== undefined ? { error: JSON.parse(error) } : {}),
    ...(video !== undefined ? { video: JSON.parse(video) } : {}),
    ...(worker !== undefined ? { worker } : {}),
    attempts: Number(h.get("attempts") ?? 0),
  };
}

function parseEvent([id, fields]: StreamEntry): JobEvent {
  return {
    id,
    type: fieldOf(fields, "type") as JobEventType,
    data: JSON.parse(fieldOf(fields, "data") ?? "{}"),
  };
}

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `promise`, or a {@linkcode NoAnswerError} after `ms` (a late outcome is dropped). */
async function deadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  promise.catch(() => {}); // a rejection after the deadline is nobody's business
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswerError(ms)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection now; one that is closed already is fine. */
function discard(connection: Connection): void {
  try {
    connection.destroy();
  } catch { /* ClientClosedError: closed already */ }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
