/**
 * Every Redis key {@linkcode RedisJobQueue} uses, named in one place (TypeScript and the Lua
 * scripts both build key names from here).
 *
 * ```text
 * <p>:jobs                STREAM  one entry {id} per job that is queued or running (no TTL; an
 *   │                             entry is XACKed and XDELed together when its job leaves)
 *   └─ group "workers"    XREADGROUP delivers entries in order; last-delivered-id splits them:
 *        entries after last-delivered-id .......... queued  (position = rank among them)
 *        entries in the PEL (delivered, not acked)  running (owned by a consumer <worker>@<instance>)
 *
 * <p>:job:<id>            HASH    the JobRecord: id status request(JSON) createdAt startedAt
 *                                 finishedAt error(JSON) video(JSON) worker attempts
 *                                 + internal: entry (its <p>:jobs entry id), released, endedAt
 * <p>:job:<id>:image      STRING  the uploaded image (deleted when the job ends)
 * <p>:job:<id>:events     STREAM  {type, data(JSON)}; the entry id is the SSE event id
 * <p>:job:<id>:cancel     STRING  "1" once cancellation was asked for
 * <p>:job:<id>:video      HASH    {bytes, contentType, format} of the finished clip
 * <p>:job:<id>:webhooks   HASH    <webhook-id> → JSON {event, state, attempts, nextAttemptAt, at}:
 *                                 its deliveries as the status JSON shows them
 *
 * <p>:queued              ZSET    job id → its queue number (INCR <p>:queue:seq): the queued jobs
 *                                 in order; position = ZRANK + 1 (joined at submit and release,
 *                                 left at take, cancel and deadline)
 * <p>:queue:seq           STRING  the last queue number given
 * <p>:queue:moves         STREAM  {left: queue number} per job leaving <p>:queued (MAXLEN ~10000):
 *                                 what each waiting event stream turns into its own position
 * <p>:deadlines           ZSET    job id → its deadline (ms), while it has not ended
 * <p>:webhooks:due        ZSET    webhook-id → when it is due (0: at once; a lease's end while a
 *                                 sender holds it)
 * <p>:webhook:<webhook-id> HASH   a pending delivery: id job event createdAt attempts(JSON)
 *                                 record(its job's hash as the event saw it, JSON) lease; deleted
 *                                 when delivered or given up (PX a week at most)
 *
 * <p>:worker:<consumer>   STRING  heartbeat of one consumer, PX heartbeatTtlMs, refreshed while
 *                                 its instance lives; a pending entry whose consumer has no
 *                                 heartbeat is reclaimed by another worker
 * <p>:reader:<instance>   STREAM  MAXLEN 1: XADDed to wake the instance's shared event reader
 *                                 (a new SSE stream joins its XREAD); expires an hour after use
 * <p>:model               STRING  the model the workers serve (published_model.ts): its
 *                                 model.json and default decoding_t, JSON; no TTL
 * ```
 *
 * Expiry: the keys of a job share one PEXPIREAT — now + the alive TTL while the job runs (pushed
 * forward by every write), then `endedAt` + the retention once it ended. Only `<p>:jobs`,
 * `<p>:queued` and `<p>:deadlines` (bounded by the capacity), `<p>:queue:seq` (a number),
 * `<p>:queue:moves` (by its MAXLEN),
 * `<p>:webhooks:due` (by the pending deliveries) and `<p>:model` live forever.
 *
 * The scripts build per-job key names from a job id they read from `<p>:jobs`, so the layout needs
 * a single Redis (standalone or Sentinel), not Redis Cluster.
 *
 * @module
 */

/** Suffixes of a job's keys after `<prefix>:job:<id>`. */
export const JOB_KEY_SUFFIXES = {
  record: "",
  image: ":image",
  events: ":events",
  cancel: ":cancel",
  video: ":video",
  webhooks: ":webhooks",
} as const;

/** The keys of one job. */
export type JobKeys = { readonly [K in keyof typeof JOB_KEY_SUFFIXES]: string };

/** Key names under one prefix. */
export interface RedisLayout {
  /** The jobs stream (`<prefix>:jobs`). */
  readonly jobs: string;
  /** The model the workers publish (`<prefix>:model`). */
  readonly model: string;
  /** The queued jobs in order (`<prefix>:queued`). */
  readonly queued: string;
  /** The last queue number given (`<prefix>:queue:seq`). */
  readonly queueSeq: string;
  /** Jobs leaving the queue (`<prefix>:queue:moves`). */
  readonly moves: string;
  /** Deadlines of the jobs that have one (`<prefix>:deadlines`). */
  readonly deadlines: string;
  /** Webhook deliveries by due time (`<prefix>:webhooks:due`). */
  readonly webhooksDue: string;
  /** Prefix of the delivery hashes (`<prefix>:webhook:`). */
  readonly webhookPrefix: string;
  /** Prefix of the job keys (`<prefix>:job:`); the Lua scripts append `<id>` and a suffix. */
  readonly jobPrefix: string;
  /** Prefix of the heartbeat keys (`<prefix>:worker:`). */
  readonly workerPrefix: string;
  /** The keys of job `id`. */
  job(id: string): JobKeys;
  /** The heartbeat key of a consumer. */
  worker(consumer: string): string;
  /** The wake stream of an instance's shared event reader. */
  reader(instance: string): string;
}

/**
 * The key names under `prefix`.
 *
 * @example
 * ```ts
 * import { redisLayout } from "./redis_layout.ts";
 * redisLayout("svd").job("3f2a").events; // "svd:job:3f2a:events"
 * ```
 */
export function redisLayout(prefix: string): RedisLayout {
  if (!/^[\w.-]+$/.test(prefix)) {
    throw new TypeError(`Invalid Redis key prefix "${prefix}": use letters, digits, "_", "-", "."`);
  }
  const jobPrefix = `${prefix}:job:`;
  const workerPrefix = `${prefix}:worker:`;
  return {
    jobs: `${prefix}:jobs`,
    model: `${prefix}:model`,
    queued: `${prefix}:queued`,
    queueSeq: `${prefix}:queue:seq`,
    moves: `${prefix}:queue:moves`,
    deadlines: `${prefix}:deadlines`,
    webhooksDue: `${prefix}:webhooks:due`,
    webhookPrefix: `${prefix}:webhook:`,
    jobPrefix,
    workerPrefix,
    job(id) {
      const base = jobPrefix + id;
      return {
        record: base + JOB_KEY_SUFFIXES.record,
        image: base + JOB_KEY_SUFFIXES.image,
        events: base + JOB_KEY_SUFFIXES.events,
        cancel: base + JOB_KEY_SUFFIXES.cancel,
        video: base + JOB_KEY_SUFFIXES.video,
        webhooks: base + JOB_KEY_SUFFIXES.webhooks,
      };
    },
    worker: (consumer) => workerPrefix + consumer,
    reader: (instance) => `${prefix}:reader:${instance}`,
  };
}

/**
 * Lua source of `job_keys(job_prefix, id)`, returning the table {record, image, events, cancel,
 * video} that {@linkcode RedisLayout.job} returns in TypeScript.
 */
export function luaJobKeys(): string {
  const fields = Object.entries(JOB_KEY_SUFFIXES)
    .map(([name, suffix]) => `${name} = base .. ${JSON.stringify(suffix)}`)
    .join(", ");
  return `local function job_keys(job_prefix, id)
  local base = job_prefix .. id
  return { ${fields} }
end`;
}
