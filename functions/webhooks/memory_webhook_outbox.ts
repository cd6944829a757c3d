/**
 * The embedded queue's {@linkcode WebhookOutbox}: deliveries in this process's memory, and, with a
 * spool folder (`WEBHOOK_SPOOL_DIR`), each pending delivery also in a file there, so that a
 * restarted process (after a crash or a kill too) sends what the last one had not delivered.
 *
 * What survives a restart, honestly: the embedded queue's jobs live in memory and die with the
 * process (on SIGTERM the queue cancels those not finished, which makes their `cancelled`
 * deliveries). Without a spool the pending deliveries die with them. With a spool, every pending
 * delivery — its URL, the record its body is made of, its attempts and when the next is due — is
 * in `<dir>/<webhook-id>.json`, written (to a temporary name, then renamed) before the event that
 * makes it is visible to anyone, rewritten after each attempt, and removed once delivered or given
 * up; the next process on the folder loads them and goes on with the schedule. The status JSON of
 * a job from before the restart is gone (its job is), and so are its attempts' details there.
 * Files are not fsynced: a process that dies keeps them, a machine that loses power may not.
 *
 * One process per folder: the folder is locked (`<dir>/.lock`, an exclusive `flock`) while open;
 * a second process on it fails to start rather than sending every delivery twice.
 *
 * @example
 * ```ts
 * import { MemoryWebhookOutbox } from "./memory_webhook_outbox.ts";
 * const outbox = await MemoryWebhookOutbox.open({ retentionMs: 3_600_000, dir: "/var/spool/svd" });
 * const queue = new MemoryJobQueue({ capacity: 9, retentionMs: 3_600_000, webhooks: outbox });
 * ```
 *
 * @module
 */

import type { JobRecord } from "../jobs/job_queue.ts";
import {
  type ClaimedDeliveries,
  deliveryId,
  type DeliveryNext,
  type DeliveryState,
  type DeliveryStatus,
  type LeasedDelivery,
  type WebhookAttempt,
  type WebhookEvent,
  type WebhookOutbox,
  withAttempt,
} from "./webhook_outbox.ts";

/** Options of {@linkcode MemoryWebhookOutbox}. */
export interface MemoryWebhookOutboxOptions {
  /** How long a delivered or failed delivery stays in its job's status, in milliseconds. */
  readonly retentionMs: number;
  /** Clock, milliseconds since the epoch (tests). */
  readonly now?: () => number;
}

/** Options of {@linkcode MemoryWebhookOutbox.open}. */
export interface SpoolOptions extends MemoryWebhookOutboxOptions {
  /** The spool folder (made when missing). */
  readonly dir: string;
  /** Longest wait for the folder's lock before giving up, in ms (default 3000). */
  readonly lockTimeoutMs?: number;
}

/** A spool file's content. */
interface SpooledDelivery {
  readonly version: 1;
  readonly id: string;
  readonly jobId: string;
  readonly event: WebhookEvent;
  readonly url: string;
  readonly record: JobRecord;
  readonly createdAt: number;
  readonly attempts: WebhookAttempt[];
  readonly dueAt: number;
}

interface Held {
  delivery: Omit<SpooledDelivery, "version">;
  state: DeliveryState;
  /** Lease token and its end, while a sender holds it. */
  lease?: { readonly token: string; readonly until: number };
  forget?: ReturnType<typeof setTimeout>;
}

/** The spool folder is used by another process. */
export class SpoolLockedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SpoolLockedError";
  }
}

/** In-process outbox, optionally spooled to files; see the module doc. */
export class MemoryWebhookOutbox implements WebhookOutbox {
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #dir?: string;
  #lock?: Deno.FsFile;
  /** Every delivery known, by id. */
  readonly #held = new Map<string, Held>();
  /** Delivery ids by job id, oldest first. */
  readonly #byJob = new Map<string, string[]>();
  readonly #listeners = new Set<() => void>();

  constructor(options: MemoryWebhookOutboxOptions, dir?: string) {
    if (!(options.retentionMs > 0)) {
      throw new RangeError(`retentionMs must be positive, got ${options.retentionMs}`);
    }
    this.#retentionMs = options.retentionMs;
    this.#now = options.now ?? Date.now;
    this.#dir = dir;
  }

  /**
   * An outbox spooled to `options.dir`: locks the folder and loads the deliveries a previous
   * process left there.
   * @throws {SpoolLockedError} when another process holds the folder.
   */
  static async open(options: SpoolOptions): Promise<MemoryWebhookOutbox> {
    await Deno.mkdir(options.dir, { recursive: true });
    const lock = await Deno.open(`${options.dir}/.lock`, {
      create: true,
      read: true,
      write: true,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = options.lockTimeoutMs ?? 3000;
    const locked = await Promise.race([
      lock.lock(true).then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), waited)),
    ]);
    clearTimeout(timer);
    if (!locked) {
      lock.close();
      throw new SpoolLockedError(
        `The webhook spool ${options.dir} is in use by another process (its .lock is held): ` +
          "give each process its own WEBHOOK_SPOOL_DIR",
      );
    }
    const outbox = new MemoryWebhookOutbox(options, options.dir);
    outbox.#lock = lock;
    for await (const entry of Deno.readDir(options.dir)) {
      if (!entry.isFile) continue;
      const path = `${options.dir}/${entry.name}`;
      if (entry.name.endsWith(".json.tmp")) {
        await Deno.remove(path).catch(() => {}); // a write cut short: its older version is there
        continue;
      }
      if (!entry.name.endsWith(".json")) continue;
      const spooled = JSON.parse(await Deno.readTextFile(path)) as SpooledDelivery;
      if (spooled.version !== 1 || `${spooled.id}.json` !== entry.name) {
        throw new SyntaxError(`${path} is not a webhook delivery of this version`);
      }
      const { version: _, ...delivery } = spooled;
      outbox.#add({ delivery, state: "pending" });
    }
    return outbox;
  }

  /** Deliveries not yet delivered nor given up (tests, logs). */
  get pending(): number {
    let n = 0;
    for (const held of this.#held.values()) if (held.state === "pending") n++;
    return n;
  }

  /**
   * Makes the delivery of event `eventId` (`event`) of the job of `record` (as it is now, with
   * the event's status): due at once, spooled before this returns.
   */
  enqueue(record: JobRecord, event: WebhookEvent, eventId: string): void {
    if (record.request.webhook === undefined) return;
    const now = this.#now();
    const held: Held = {
      delivery: {
        id: deliveryId(record.id, eventId),
        jobId: record.id,
        event,
        url: record.request.webhook,
        record,
        createdAt: now,
        attempts: [],
        dueAt: now,
      },
      state: "pending",
    };
    this.#spool(held);
    this.#add(held);
    for (const listener of this.#listeners) listener();
  }

  claim(max: number, leaseMs: number): Promise<ClaimedDeliveries> {
    const now = this.#now();
    const leased: LeasedDelivery[] = [];
    let nextDueAt: number | undefined;
    for (const held of this.#held.values()) {
      if (held.state !== "pending") continue;
      const dueAt = held.lease ? held.lease.until : held.delivery.dueAt;
      if (dueAt > now || leased.length >= max) {
        nextDueAt = Math.min(nextDueAt ?? Infinity, dueAt);
        continue;
      }
      held.lease = { token: crypto.randomUUID(), until: now + leaseMs };
      const { dueAt: _, ...delivery } = held.delivery;
      leased.push({ ...delivery, lease: held.lease.token });
    }
    return Promise.resolve({ leased, ...(nextDueAt === undefined ? {} : { nextDueAt }) });
  }

  settle(delivery: LeasedDelivery, attempt: WebhookAttempt, next: DeliveryNext): Promise<boolean> {
    const held = this.#held.get(delivery.id);
    if (!held || held.state !== "pending" || held.lease?.token !== delivery.lease) {
      return Promise.resolve(false);
    }
    held.lease = undefined;
    held.delivery = {
      ...held.delivery,
      attempts: withAttempt(held.delivery.attempts, attempt),
      dueAt: next.state === "pending" ? next.retryAt : held.delivery.dueAt,
    };
    held.state = next.state;
    if (next.state === "pending") {
      this.#spool(held);
    } else {
      this.#unspool(held.delivery.id);
      held.forget = setTimeout(() => this.#forget(held.delivery.id), this.#retentionMs);
      Deno.unrefTimer(held.forget);
    }
    return Promise.resolve(true);
  }

  deliveries(jobId: string): Promise<DeliveryStatus[]> {
    const ids = this.#byJob.get(jobId) ?? [];
    return Promise.resolve(ids.map((id) => {
      const { delivery, state } = this.#held.get(id)!;
      return {
        id,
        event: delivery.event,
        state,
        attempts: delivery.attempts,
        ...(state === "pending" && delivery.attempts.length > 0
          ? { nextAttemptAt: delivery.dueAt }
          : {}),
      };
    }));
  }

  onEnqueued(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** Stops the retention timers and unlocks the spool (its files stay for the next process). */
  close(): void {
    for (const held of this.#held.values()) clearTimeout(held.forget);
    this.#listeners.clear();
    this.#lock?.close();
    this.#lock = undefined;
  }

  #add(held: Held): void {
    this.#held.set(held.delivery.id, held);
    const ids = this.#byJob.get(held.delivery.jobId) ?? [];
    ids.push(held.delivery.id);
    this.#byJob.set(held.delivery.jobId, ids);
  }

  #forget(id: string): void {
    const held = this.#held.get(id);
    if (!held) return;
    this.#held.delete(id);
    const ids = this.#byJob.get(held.delivery.jobId)?.filter((other) => other !== id) ?? [];
    if (ids.length > 0) this.#byJob.set(held.delivery.jobId, ids);
    else this.#byJob.delete(held.delivery.jobId);
  }

  /** Writes the delivery's file (synchronously: it exists before the event is seen). */
  #spool(held: Held): void {
    if (this.#dir === undefined) return;
    const path = `${this.#dir}/${held.delivery.id}.json`;
    const spooled: SpooledDelivery = { version: 1, ...held.delivery };
    Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(spooled));
    Deno.renameSync(`${path}.tmp`, path);
  }

  #unspool(id: string): void {
    if (this.#dir === undefined) return;
    try {
      Deno.removeSync(`${this.#dir}/${id}.json`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}
