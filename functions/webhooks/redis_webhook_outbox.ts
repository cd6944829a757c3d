/**
 * The Redis queue's {@linkcode WebhookOutbox}, shared by every instance: deliveries are made by
 * the queue's scripts with their events (`redis_webhook_lua.ts`), each a hash
 * `<p>:webhook:<webhook-id>` and a member of the due set `<p>:webhooks:due` (score: when it is
 * due). `claim` leases the due ones in one script — moving their score to the lease's end and
 * writing a lease token — so no other instance gets them until then; `settle` (fenced by the
 * token) records the attempt in the delivery and in its job's `webhooks` hash, then deletes the
 * delivery or puts it back due at its retry time. A delivery is therefore sent by one instance at
 * a time, goes on from another instance when its sender dies (its lease runs out), and waits in
 * Redis between attempts, owned by nobody: a restart of every instance loses nothing.
 *
 * Due times are the senders' clocks (`claim` passes its `Date.now()`); a new delivery is due at
 * once (score 0), whatever the clocks.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { JobRecord } from "../jobs/job_queue.ts";
import { decodeRecord } from "../jobs/redis_codec.ts";
import type {
  ClaimedDeliveries,
  DeliveryNext,
  DeliveryStatus,
  LeasedDelivery,
  WebhookAttempt,
  WebhookEvent,
  WebhookOutbox,
} from "./webhook_outbox.ts";
import { withAttempt } from "./webhook_outbox.ts";

/** What the outbox needs of its queue: its scripts, its commands and its key names. */
export interface RedisOutboxBackend {
  /** Runs one of the queue's scripts (`claimWebhooks`, `settleWebhook`). */
  evalScript(name: "claimWebhooks" | "settleWebhook", args: string[]): Promise<unknown>;
  /** One command. */
  send(args: ReadonlyArray<string | Buffer>): Promise<unknown>;
  /** The `webhooks` hash of job `id`, undefined for an id the queue did not give out. */
  webhooksKey(id: string): string | undefined;
}

/** One line of a job's `webhooks` hash. */
interface JobLine {
  readonly event: WebhookEvent;
  readonly state: DeliveryStatus["state"];
  readonly attempts: WebhookAttempt[];
  readonly nextAttemptAt?: number;
  /** When the delivery was made (orders the lines). */
  readonly at: number;
}

/** Deliveries in Redis; see the module doc. */
export class RedisWebhookOutbox implements WebhookOutbox {
  readonly #backend: RedisOutboxBackend;

  constructor(backend: RedisOutboxBackend) {
    this.#backend = backend;
  }

  async claim(max: number, leaseMs: number): Promise<ClaimedDeliveries> {
    const token = crypto.randomUUID();
    const [rows, next] = await this.#backend.evalScript("claimWebhooks", [
      String(Date.now()),
      String(max),
      String(Math.ceil(leaseMs)),
      token,
    ]) as [string[][], string | null];
    const leased: LeasedDelivery[] = [];
    for (const flat of rows) {
      const delivery = decodeDelivery(flat, token);
      if (delivery) leased.push(delivery);
    }
    return { leased, ...(next === null ? {} : { nextDueAt: Number(next) }) };
  }

  async settle(
    delivery: LeasedDelivery,
    attempt: WebhookAttempt,
    next: DeliveryNext,
  ): Promise<boolean> {
    const attempts = withAttempt(delivery.attempts, attempt);
    const line: JobLine = {
      event: delivery.event,
      state: next.state,
      attempts,
      ...(next.state === "pending" ? { nextAttemptAt: next.retryAt } : {}),
      at: delivery.createdAt,
    };
    const written = await this.#backend.evalScript("settleWebhook", [
      delivery.id,
      delivery.lease,
      JSON.stringify(attempts),
      next.state,
      next.state === "pending" ? String(Math.round(next.retryAt)) : "",
      JSON.stringify(line),
    ]);
    return written === 1;
  }

  async deliveries(jobId: string): Promise<DeliveryStatus[]> {
    const key = this.#backend.webhooksKey(jobId);
    if (key === undefined) return [];
    const flat = await this.#backend.send(["HGETALL", key]) as string[];
    const lines: (JobLine & { id: string })[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      lines.push({ id: flat[i], ...JSON.parse(flat[i + 1]) as JobLine });
    }
    lines.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
    return lines.map(({ id, event, state, attempts, nextAttemptAt }) => ({
      id,
      event,
      state,
      attempts,
      ...(nextAttemptAt === undefined ? {} : { nextAttemptAt }),
    }));
  }
}

/** A claimed delivery from its hash, or undefined when the hash is not a whole delivery. */
function decodeDelivery(flat: string[], lease: string): LeasedDelivery | undefined {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i], flat[i + 1]);
  const id = h.get("id");
  const jobId = h.get("job");
  const recordFlat = h.get("record");
  if (id === undefined || jobId === undefined || recordFlat === undefined) return undefined;
  // cjson writes an empty array as an empty object.
  const flatRecord = JSON.parse(recordFlat) as string[] | Record<string, never>;
  const record: JobRecord | undefined = Array.isArray(flatRecord)
    ? decodeRecord(flatRecord)
    : undefined;
  if (!record?.request.webhook) return undefined;
  const attempts = JSON.parse(h.get("attempts") ?? "[]");
  return {
    id,
    jobId,
    event: h.get("event") as WebhookEvent,
    url: record.request.webhook,
    record,
    createdAt: Number(h.get("createdAt")),
    attempts: Array.isArray(attempts) ? attempts : [],
    lease,
  };
}
