/**
 * The Lua of the Redis webhook outbox (`redis_webhook_outbox.ts`), joined to the job queue's
 * scripts (`functions/jobs/redis_scripts.ts`): the prelude function that makes a delivery in the
 * same script that stores its event, and the bodies of `claimWebhooks` and `settleWebhook`. Key
 * names are in `functions/jobs/redis_layout.ts`.
 *
 * @module
 */

/**
 * `make_delivery(k, type, event_id)`: called by the queue's `add_event` for every event it
 * stores; for an event the job's request wants (its record's `webhookEvents`), the delivery hash
 * (with the record as the event left it), its place in the due set (score 0: due at once,
 * whatever the senders' clocks say) and its line in the job's `webhooks` hash. Needs the
 * prelude's `now_ms`, `WEBHOOKS_DUE`, `WEBHOOK_PREFIX` and `WEBHOOK_TTL_MS`.
 */
export const LUA_MAKE_DELIVERY = `
local HOOKED = { started = true, done = true, error = true, cancelled = true }

local function make_delivery(k, type, event_id)
  if not HOOKED[type] then return end
  local f = redis.call('HMGET', k.record, 'webhookEvents', 'id')
  local wanted, id = f[1], f[2]
  if not wanted or not string.find(',' .. wanted .. ',', ',' .. type .. ',', 1, true) then return end
  local did = 'msg_' .. id .. '_' .. event_id
  local key = WEBHOOK_PREFIX .. did
  local now = now_ms()
  redis.call('HSET', key, 'id', did, 'job', id, 'event', type, 'createdAt', now,
    'attempts', '[]', 'record', cjson.encode(redis.call('HGETALL', k.record)))
  redis.call('PEXPIRE', key, WEBHOOK_TTL_MS)
  redis.call('ZADD', WEBHOOKS_DUE, 0, did)
  redis.call('HSET', k.webhooks, did,
    '{"event":"' .. type .. '","state":"pending","attempts":[],"at":' .. now .. '}')
end
`;

/** The scripts' bodies; the comment above each gives its arguments → result. */
export const WEBHOOK_BODIES = {
  /**
   * now (ms, the sender's clock), max, lease ms, lease token → {{delivery hash (flat)…}, the
   * next due time (ms) | false}
   */
  claimWebhooks: `
local now, max = tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local lease, token = tonumber(ARGV[A + 3]), ARGV[A + 4]
local due = redis.call('ZRANGEBYSCORE', WEBHOOKS_DUE, '-inf', now, 'LIMIT', 0, max)
local out = {}
for _, did in ipairs(due) do
  local key = WEBHOOK_PREFIX .. did
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', WEBHOOKS_DUE, did) -- expired unsent (no sender for a week)
  else
    redis.call('ZADD', WEBHOOKS_DUE, now + lease, did)
    redis.call('HSET', key, 'lease', token)
    table.insert(out, redis.call('HGETALL', key))
  end
end
local first = redis.call('ZRANGE', WEBHOOKS_DUE, 0, 0, 'WITHSCORES')
return {out, first[2] or false}`,

  /**
   * webhook-id, lease token, attempts JSON, state (pending | delivered | failed), retry at (ms)
   * | '', the job's line JSON → 1 | 0 (the lease is not the caller's: nothing written)
   */
  settleWebhook: `
local did, token, state = ARGV[A + 1], ARGV[A + 2], ARGV[A + 4]
local key = WEBHOOK_PREFIX .. did
local f = redis.call('HMGET', key, 'lease', 'job')
if f[1] ~= token then return 0 end
if state == 'pending' then
  redis.call('HSET', key, 'attempts', ARGV[A + 3])
  redis.call('HDEL', key, 'lease')
  redis.call('ZADD', WEBHOOKS_DUE, ARGV[A + 5], did)
else
  redis.call('DEL', key)
  redis.call('ZREM', WEBHOOKS_DUE, did)
end
local k = job_keys(JOB_PREFIX, f[2])
if redis.call('EXISTS', k.record) == 1 then
  redis.call('HSET', k.webhooks, did, ARGV[A + 6])
  touch(k, now_ms(), false)
end
return 1`,
} as const;
