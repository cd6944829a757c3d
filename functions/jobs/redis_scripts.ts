/**
 * The Lua scripts of {@linkcode RedisJobQueue}: every change that touches more than one key runs
 * as one script, so no instance ever sees half a job. Each script is the shared prelude (key names,
 * stream-id comparison, queue position, expiry, the start of a run) plus its own body, and gets
 * KEYS[1] = the jobs stream and the same first ARGV ({@linkcode scriptArguments}); its own
 * arguments follow from ARGV[A + 1]. The comment above each body gives its arguments → result.
 *
 * Key names come from `redis_layout.ts` (`job_keys` in Lua).
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { LUA_MAKE_DELIVERY, WEBHOOK_BODIES } from "../webhooks/redis_webhook_lua.ts";
import { luaJobKeys } from "./redis_layout.ts";

const PRELUDE = `
local JOBS = KEYS[1]
local GROUP = ARGV[1]
local JOB_PREFIX = ARGV[2]
local WORKER_PREFIX = ARGV[3]
local ALIVE_MS = tonumber(ARGV[4])
local RETENTION_MS = tonumber(ARGV[5])
local MAX_ATTEMPTS = tonumber(ARGV[6])
local QUEUED = ARGV[7]
local QUEUE_SEQ = ARGV[8]
local MOVES = ARGV[9]
local DEADLINES = ARGV[10]
local WEBHOOKS_DUE = ARGV[11]
local WEBHOOK_PREFIX = ARGV[12]
local WEBHOOK_TTL_MS = tonumber(ARGV[13])
local A = 13 -- a script's own arguments start at ARGV[A + 1]
local TERMINAL = { done = true, error = true, cancelled = true }
${luaJobKeys()}

local H = '[0-9a-f]'
local JOB_ID = '^' .. H:rep(8) .. '%-' .. H:rep(4) .. '%-4' .. H:rep(3) .. '%-[89ab]' .. H:rep(3) ..
  '%-' .. H:rep(12) .. '$'

-- The form of the ids the queue gives out (JOB_ID_PATTERN in job_queue.ts).
local function is_job_id(id)
  return type(id) == 'string' and string.match(id, JOB_ID) ~= nil
end

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

-- How long this Redis has run, to the second.
local function redis_uptime_ms()
  local info = redis.call('INFO', 'server')
  return tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) * 1000
end

local function ensure_group()
  redis.pcall('XGROUP', 'CREATE', JOBS, GROUP, '0', 'MKSTREAM') -- BUSYGROUP when it exists
end

-- Entries after the group's last-delivered-id are the undelivered ones.
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

-- 1-based rank of a job among the queued ones; false once it left the queue.
local function queue_position(id)
  local rank = redis.call('ZRANK', QUEUED, id)
  if not rank then return false end
  return rank + 1
end

-- A job joins the queue at its back: its position.
local function join_queue(k, id)
  local seq = redis.call('INCR', QUEUE_SEQ)
  redis.call('ZADD', QUEUED, seq, id)
  redis.call('HSET', k.record, 'qseq', seq)
  return queue_position(id)
end

-- A job leaves the queue (taken, cancelled, past its deadline): the jobs behind it move up, and
-- the event streams waiting on them learn it from the moves stream.
local function leave_queue(id)
  local seq = redis.call('ZSCORE', QUEUED, id)
  if not seq then return end
  redis.call('ZREM', QUEUED, id)
  redis.call('XADD', MOVES, 'MAXLEN', '~', '10000', '*', 'left', seq)
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
    redis.call('ZREM', DEADLINES, string.sub(k.record, #JOB_PREFIX + 1))
  end
  local at = ended and (tonumber(ended) + RETENTION_MS) or (now + ALIVE_MS)
  for _, key in pairs(k) do redis.call('PEXPIREAT', key, at) end
end

${LUA_MAKE_DELIVERY}

-- Every event is stored here, with its webhook delivery when the job's request wants one.
local function add_event(k, type, data)
  local event = redis.call('XADD', k.events, '*', 'type', type, 'data', data)
  make_delivery(k, type, event)
  return event
end

-- A delivered entry becomes the job of \`worker\`: 'ok'; or 'skip' (job gone or ended) / 'lost'
-- (MAX_ATTEMPTS runs already lost their worker), the entry removed.
local function start(entry, id, worker, reclaimed)
  local k = job_keys(JOB_PREFIX, id)
  local f = redis.call('HMGET', k.record, 'status', 'worker', 'attempts', 'released')
  local status, previous = f[1], f[2]
  leave_queue(id)
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

const BODIES = {
  ensureGroup: `ensure_group() return 1`,

  /**
   * capacity, id, request JSON, createdAt, image, deadline (ms) | '', webhook events | '' →
   * {0, size} full | {1, event id, position}
   */
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
if ARGV[A + 6] ~= '' then redis.call('ZADD', DEADLINES, ARGV[A + 6], id) end
if ARGV[A + 7] ~= '' then redis.call('HSET', k.record, 'webhookEvents', ARGV[A + 7]) end
local position = join_queue(k, id)
local event = add_event(k, 'queued', '{"position":' .. position .. '}')
touch(k, now_ms(), false)
return {1, event, position}`,

  /** id → position | nil */
  position: `return queue_position(ARGV[A + 1])`,

  /** id → {position, queue number, the moves stream's newest id} | nil (not queued) */
  queuePlace: `
local id = ARGV[A + 1]
local position = queue_position(id)
if not position then return false end
local newest = redis.call('XREVRANGE', MOVES, '+', '-', 'COUNT', 1)
return {position, redis.call('ZSCORE', QUEUED, id), newest[1] and newest[1][1] or '0-0'}`,

  /**
   * now (ms), max, message format (%s: timeout_seconds, then queued | running) → ids of the
   * jobs ended: queued ones past their deadline, and running ones whose worker stopped
   * heartbeating (a live worker ends its own)
   */
  expire: `
local now, max, message = tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]), ARGV[A + 3]
local ended = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', now, 'LIMIT', 0, max)) do
  local k = job_keys(JOB_PREFIX, id)
  local f = redis.call('HMGET', k.record, 'status', 'entry', 'request')
  local status, entry = f[1], f[2]
  local stage = false
  if not status or TERMINAL[status] then
    redis.call('ZREM', DEADLINES, id)
  elseif redis.call('ZSCORE', QUEUED, id) then
    stage = 'queued'
    leave_queue(id)
    -- Delivered already (a take in flight)? Its take finds the job ended and drops the entry.
    if entry and id_after(entry, last_delivered()) then redis.call('XDEL', JOBS, entry) end
  elseif entry then
    local owner = pending_owner(entry)
    if owner and redis.call('EXISTS', WORKER_PREFIX .. owner) == 0 then
      stage = 'running'
      drop_entry(entry)
    end
  end
  if stage then
    local timeout = cjson.decode(f[3]).timeoutSeconds
    local failure = cjson.encode({ code = 'deadline_exceeded',
      message = string.format(message, tostring(timeout), stage) })
    redis.call('HSET', k.record, 'status', 'error', 'finishedAt', now, 'error', failure)
    add_event(k, 'error', failure)
    touch(k, now_ms(), true)
    table.insert(ended, id)
  end
end
return ended`,

  /** → {queued, running} */
  stats: `
local size = redis.call('XLEN', JOBS)
local summary = redis.pcall('XPENDING', JOBS, GROUP)
local running = 0
if not summary.err then running = tonumber(summary[1]) end
return {size - running, running}`,

  /** entry, id, worker → 'ok' | 'skip' | 'lost' */
  take: `return start(ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], false)`,

  /** consumer, worker, claimIdleMs, graceMs → {entry, id} | nil */
  reclaim: `
local consumer, worker, min_idle = ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
local grace = tonumber(ARGV[A + 4])
local pending = redis.pcall('XPENDING', JOBS, GROUP, 'IDLE', min_idle, '-', '+', 100)
if pending.err then return false end
local found = false
for _, p in ipairs(pending) do
  local entry, owner = p[1], p[2]
  if owner ~= consumer and redis.call('EXISTS', WORKER_PREFIX .. owner) == 0 then
    -- Just after Redis (re)started nobody could have heartbeated while it was down: every
    -- worker gets grace ms to beat again before its jobs look lost.
    if redis_uptime_ms() < grace then break end
    local claimed = redis.call('XCLAIM', JOBS, GROUP, consumer, min_idle, entry)
    local fields = claimed[1] and claimed[1][2]
    local id = false
    if fields then
      for i = 1, #fields, 2 do if fields[i] == 'id' then id = fields[i + 1] end end
    end
    if not is_job_id(id) then
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

  /**
   * entry, consumer, worker, id, status, event data, has video ('1' | '0'), bytes, contentType,
   * format, n, n × (field, value), fields to delete… → 'ok' | 'ended' (an earlier call of this
   * worker did it) | 'not_owner' (taken over or handed back: nothing written) | 'gone' (no record)
   */
  finish: `
local entry, consumer, worker, id = ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], ARGV[A + 4]
local status, data = ARGV[A + 5], ARGV[A + 6]
local k = job_keys(JOB_PREFIX, id)
-- The pending entry is the fence: only the consumer that holds it writes the job's end.
if pending_owner(entry) ~= consumer then
  local f = redis.call('HMGET', k.record, 'status', 'worker')
  if f[1] and TERMINAL[f[1]] and f[2] == worker then return 'ended' end
  return 'not_owner'
end
if redis.call('EXISTS', k.record) == 0 then
  drop_entry(entry)
  return 'gone'
end
if ARGV[A + 7] == '1' then
  redis.call('HSET', k.video, 'bytes', ARGV[A + 8], 'contentType', ARGV[A + 9], 'format', ARGV[A + 10])
end
local n = tonumber(ARGV[A + 11])
for i = 0, n - 1 do redis.call('HSET', k.record, ARGV[A + 12 + 2 * i], ARGV[A + 13 + 2 * i]) end
for i = A + 12 + 2 * n, #ARGV do redis.call('HDEL', k.record, ARGV[i]) end
redis.call('HSET', k.record, 'status', status)
add_event(k, status, data)
drop_entry(entry)
touch(k, now_ms(), true)
return 'ok'`,

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
local position = join_queue(k, id)
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

  /** id, finishedAt → 2 (cancelled here, while queued) | 1 (known job) | 0 (unknown job) */
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
  leave_queue(ARGV[A + 1])
  redis.call('XDEL', JOBS, entry)
  redis.call('HSET', k.record, 'status', 'cancelled', 'finishedAt', ARGV[A + 2])
  add_event(k, 'cancelled', '{}')
  touch(k, now, true)
  return 2
end
touch(k, now, false)
return 1`,

  /** id → 'run' | 'cancel' | 'lost' (the record or the events stream is gone) */
  check: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
if redis.call('EXISTS', k.record, k.events) < 2 then return 'lost' end
if redis.call('EXISTS', k.cancel) == 1 then return 'cancel' end
return 'run'`,

  /** id, bytes, contentType, format → 1 | 0 (unknown job) */
  putVideo: `
local k = job_keys(JOB_PREFIX, ARGV[A + 1])
if redis.call('EXISTS', k.record) == 0 then return 0 end
redis.call('HSET', k.video, 'bytes', ARGV[A + 2], 'contentType', ARGV[A + 3], 'format', ARGV[A + 4])
touch(k, now_ms(), false)
return 1`,

  ...WEBHOOK_BODIES,
} as const;

/** Name of one of the scripts. */
export type ScriptName = keyof typeof BODIES;

/** One script: its whole source and the SHA1 that EVALSHA runs it by. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/** Every script of the queue, prelude included. */
export const SCRIPTS = Object.fromEntries(
  Object.entries(BODIES).map(([name, body]) => {
    const source = PRELUDE + body;
    return [name, { source, sha: createHash("sha1").update(source).digest("hex") }];
  }),
) as Record<ScriptName, LuaScript>;

/** What every script gets before its own arguments (the prelude's KEYS[1] and ARGV[1..13]). */
export interface ScriptContext {
  /** The jobs stream. */
  readonly jobs: string;
  readonly group: string;
  readonly jobPrefix: string;
  readonly workerPrefix: string;
  readonly aliveTtlMs: number;
  readonly retentionMs: number;
  readonly maxAttempts: number;
  readonly queued: string;
  readonly queueSeq: string;
  readonly moves: string;
  readonly deadlines: string;
  readonly webhooksDue: string;
  readonly webhookPrefix: string;
  /** Expiry of a delivery hash never sent (no sender running), in ms. */
  readonly webhookTtlMs: number;
}

/** The EVAL / EVALSHA arguments after the script: numkeys, the key, the common ARGV, `args`. */
export function scriptArguments(
  context: ScriptContext,
  args: ReadonlyArray<string | Buffer>,
): (string | Buffer)[] {
  const c = context;
  // deno-fmt-ignore
  return [
    "1", c.jobs, c.group, c.jobPrefix, c.workerPrefix,
    String(c.aliveTtlMs), String(c.retentionMs), String(c.maxAttempts),
    c.queued, c.queueSeq, c.moves, c.deadlines, c.webhooksDue, c.webhookPrefix,
    String(c.webhookTtlMs), ...args,
  ];
}
