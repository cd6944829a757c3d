/**
 * Sends the webhooks of a job queue's {@linkcode WebhookOutbox}, beside the worker loop and never
 * in its way: a loop of its own claims due deliveries (at most `concurrency` at once, each leased
 * for the attempt's time plus a margin), posts each one signed (`webhook_signature.ts`) through
 * the SSRF guard (`webhook_sender.ts`), and settles it:
 *
 * - a 2xx: delivered;
 * - 410 Gone: given up at once (the receiver asks to stop, as the spec says);
 * - anything else (another status, a 3xx — redirects are not followed —, a refused address, a
 *   timeout, a connection error): due again after 2 s, 4 s, 8 s, … (doubling, at most 5 minutes,
 *   ±20 % jitter; a longer `Retry-After` of a 429 or 503 is honoured up to that cap), until
 *   `retryWindowMs` (1 hour) after the event: then given up.
 *
 * Each attempt is recorded (time, duration, status or error) and shows in the job's status JSON
 * (`webhook_deliveries`), and logged: `webhook_delivered`, `webhook_retrying`, `webhook_failed`.
 *
 * The body is the job's status JSON as of the event (the record the queue kept with the delivery,
 * so a `started` delivery sent late still says `running`), with the spec's `type`
 * (`generation.done`, …) and `timestamp` (the event's time) on top; it is the same bytes at every
 * attempt. With `publicUrl` the body's URLs are absolute.
 *
 * @example
 * ```ts
 * import { WebhookDispatcher } from "./webhook_dispatcher.ts";
 * const dispatcher = new WebhookDispatcher({
 *   outbox: queue.webhooks,
 *   keys: parseWebhookSecrets(Deno.env.get("WEBHOOK_SECRET")!),
 *   policy: { allowPrivate: false },
 * });
 * dispatcher.start();
 * // on shutdown (embedded: after the queue's close made its `cancelled` deliveries):
 * await dispatcher.stop(2000, { sendDue: true });
 * ```
 *
 * @module
 */

import { statusJson } from "../generation_json.ts";
import { errorMessage, getLog, type Log } from "../logging.ts";
import type { AddressPolicy } from "./address_guard.ts";
import type {
  DeliveryNext,
  LeasedDelivery,
  WebhookAttempt,
  WebhookOutbox,
} from "./webhook_outbox.ts";
import {
  type PostOptions,
  type PostResult,
  postWebhook,
  type WebhookPost,
} from "./webhook_sender.ts";
import { signWebhook } from "./webhook_signature.ts";

/** Options of {@linkcode WebhookDispatcher}. */
export interface WebhookDispatcherOptions {
  readonly outbox: WebhookOutbox;
  /** The HMAC keys (`parseWebhookSecrets(WEBHOOK_SECRET)`); the first signs, the rest too. */
  readonly keys: readonly Uint8Array[];
  readonly policy: AddressPolicy;
  /** How long after its event a delivery is retried, in ms (default 1 hour). */
  readonly retryWindowMs?: number;
  /** Wait before the first retry, in ms (default 2000); it doubles with each failure. */
  readonly firstRetryMs?: number;
  /** Longest wait between attempts, in ms (default 5 minutes). */
  readonly maxRetryMs?: number;
  /** Longest attempt, in ms (default 15 s). */
  readonly timeoutMs?: number;
  /** Attempts in flight at once (default 8). */
  readonly concurrency?: number;
  /** Longest wait between looks for due deliveries, in ms (default 500). */
  readonly pollMs?: number;
  /** Prefix of the URLs in bodies (`https://svd.example.com`); default: relative URLs. */
  readonly publicUrl?: string;
  /** Where deliveries are logged (default `getLog("webhook")`). */
  readonly log?: Log;
  /** Extra CA certificates for https receivers (tests with a local one). */
  readonly caCerts?: readonly string[];
  /** Sends one attempt (default {@linkcode postWebhook}; tests). */
  readonly post?: (post: WebhookPost, options: PostOptions) => Promise<PostResult>;
  /** A number in [0, 1) for the jitter (default `Math.random`). */
  readonly random?: () => number;
}

/** Options of {@linkcode WebhookDispatcher.stop}. */
export interface DispatcherStopOptions {
  /**
   * Within the grace period, claim and attempt the deliveries that are due (as slots free up)
   * before stopping: those made just before the stop, which the loop may not have seen (the
   * embedded queue's `cancelled` ones at shutdown, lost with the process otherwise). Default
   * false: claim nothing more and leave them to the next sender (Redis, a spool).
   */
  readonly sendDue?: boolean;
}

/** Sends an outbox's deliveries; see the module doc. */
export class WebhookDispatcher {
  readonly #o: Required<Omit<WebhookDispatcherOptions, "publicUrl" | "caCerts" | "log">>;
  readonly #publicUrl?: string;
  readonly #caCerts?: readonly string[];
  readonly #log: Log;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stopping = new AbortController();
  #wake?: () => void;
  /** A wake came while the loop was not asleep: its next sleep is skipped. */
  #woken = false;
  #loop?: Promise<void>;
  /** The claim failure last logged (an outage is logged once, not every poll). */
  #failing = "";

  constructor(options: WebhookDispatcherOptions) {
    if (options.keys.length === 0) throw new RangeError("A webhook dispatcher needs a key");
    this.#o = {
      outbox: options.outbox,
      keys: options.keys,
      policy: options.policy,
      retryWindowMs: options.retryWindowMs ?? 3_600_000,
      firstRetryMs: options.firstRetryMs ?? 2000,
      maxRetryMs: options.maxRetryMs ?? 300_000,
      timeoutMs: options.timeoutMs ?? 15_000,
      concurrency: options.concurrency ?? 8,
      pollMs: options.pollMs ?? 500,
      post: options.post ?? postWebhook,
      random: options.random ?? Math.random,
    };
    this.#publicUrl = options.publicUrl?.replace(/\/+$/, "");
    this.#caCerts = options.caCerts;
    this.#log = options.log ?? getLog("webhook");
    options.outbox.onEnqueued?.(() => this.#wakeUp());
  }

  /** Attempts in flight now. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Starts the loop (once). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Stops the loop and waits up to `graceMs` for the attempts in flight; with `sendDue`, also
   * claims and attempts, within that time, what is due (see {@linkcode DispatcherStopOptions}).
   * An attempt still running after that is abandoned: its lease runs out and the delivery is
   * tried again (by the next process, with a spool or Redis).
   */
  async stop(graceMs: number, options: DispatcherStopOptions = {}): Promise<void> {
    const deadline = Date.now() + graceMs;
    this.#stopping.abort();
    this.#wakeUp();
    await this.#loop;
    while (Date.now() < deadline) {
      if (options.sendDue) await this.#claim();
      if (this.#inFlight.size === 0) return;
      // One attempt ends (its slot frees), or the grace period does.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.race(this.#inFlight),
        new Promise((resolve) => timer = setTimeout(resolve, deadline - Date.now())),
      ]);
      clearTimeout(timer);
    }
  }

  async #run(): Promise<void> {
    const { concurrency, pollMs } = this.#o;
    while (!this.#stopping.signal.aborted) {
      let waitMs = pollMs;
      this.#woken = false; // this look sees whatever woke it
      const claimed = await this.#claim();
      if (claimed === "failed") {
        waitMs = Math.max(pollMs, 1000);
      } else if (claimed !== "full") {
        const { leased, free, nextDueAt } = claimed;
        if (nextDueAt !== undefined) {
          waitMs = Math.max(0, Math.min(pollMs, nextDueAt - Date.now()));
        }
        if (leased === free) waitMs = 0; // more may be due
      }
      if (this.#stopping.signal.aborted) break;
      if (waitMs > 0 || this.#inFlight.size >= concurrency) await this.#sleep(waitMs);
    }
  }

  /**
   * Claims what is due, as many as there are free slots, and starts their attempts. `full`: no
   * slot free; `failed`: the outbox could not be read (logged once per outage).
   */
  async #claim(): Promise<
    { leased: number; free: number; nextDueAt?: number } | "full" | "failed"
  > {
    const { outbox, concurrency, timeoutMs } = this.#o;
    const free = concurrency - this.#inFlight.size;
    if (free <= 0) return "full";
    try {
      // The lease outlasts the attempt and its settling.
      const { leased, nextDueAt } = await outbox.claim(free, timeoutMs + 15_000);
      this.#failing = "";
      for (const delivery of leased) this.#track(this.#attempt(delivery));
      return { leased: leased.length, free, nextDueAt };
    } catch (error) {
      const message = errorMessage(error);
      if (message !== this.#failing) {
        this.#log.warning(`cannot claim webhook deliveries: ${message}`, {
          event: "webhook_claim_failed",
          error: message,
        });
      }
      this.#failing = message;
      return "failed";
    }
  }

  #wakeUp(): void {
    if (this.#wake) this.#wake();
    else this.#woken = true;
  }

  /** Waits `ms`, or less when woken (a delivery made here, an attempt ended, the stop). */
  #sleep(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #track(attempt: Promise<void>): void {
    this.#inFlight.add(attempt);
    void attempt.finally(() => {
      this.#inFlight.delete(attempt);
      this.#wakeUp();
    });
  }

  async #attempt(delivery: LeasedDelivery): Promise<void> {
    const at = Date.now();
    const timestamp = Math.floor(at / 1000);
    const body = webhookBody(delivery, this.#publicUrl);
    const headers = {
      "webhook-id": delivery.id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signWebhook(this.#o.keys, delivery.id, timestamp, body),
    };
    const result = await this.#o.post({ url: delivery.url, headers, body }, {
      policy: this.#o.policy,
      timeoutMs: this.#o.timeoutMs,
      ...(this.#caCerts ? { caCerts: this.#caCerts } : {}),
    }).catch((error): PostResult => ({ error: errorMessage(error) }));
    const attempt: WebhookAttempt = {
      at,
      ms: Date.now() - at,
      ...("status" in result ? { status: result.status } : { error: result.error }),
    };
    const next = this.#next(delivery, result);
    try {
      const settled = await this.#o.outbox.settle(delivery, attempt, next);
      if (!settled) {
        this.#log.warning(
          `webhook ${delivery.id}: its lease ran out during the attempt; another sender has it`,
          { event: "webhook_lease_lost", webhook_id: delivery.id, generation: delivery.jobId },
        );
        return;
      }
    } catch (error) {
      // Not recorded: the lease runs out and the delivery is tried again.
      this.#log.warning(
        `webhook ${delivery.id}: its attempt could not be recorded: ${errorMessage(error)}`,
        {
          event: "webhook_settle_failed",
          webhook_id: delivery.id,
          generation: delivery.jobId,
          error: errorMessage(error),
        },
      );
      return;
    }
    this.#logAttempt(delivery, attempt, next);
  }

  /** What follows an attempt (see the module doc). */
  #next(delivery: LeasedDelivery, result: PostResult): DeliveryNext {
    if ("status" in result && result.status >= 200 && result.status < 300) {
      return { state: "delivered" };
    }
    if ("status" in result && result.status === 410) return { state: "failed" };
    const { firstRetryMs, maxRetryMs, retryWindowMs, random } = this.#o;
    const failures = delivery.attempts.length + 1;
    const backoff = Math.min(maxRetryMs, firstRetryMs * 2 ** Math.min(30, failures - 1));
    const jittered = backoff * (0.8 + 0.4 * random());
    const asked = "status" in result ? result.retryAfterMs : undefined;
    const delay = Math.min(maxRetryMs, Math.max(jittered, asked ?? 0));
    const retryAt = Date.now() + delay;
    return retryAt > delivery.createdAt + retryWindowMs
      ? { state: "failed" }
      : { state: "pending", retryAt };
  }

  #logAttempt(delivery: LeasedDelivery, attempt: WebhookAttempt, next: DeliveryNext): void {
    const target = new URL(delivery.url).origin; // not the path or query: they may hold tokens
    const outcome = attempt.status !== undefined ? `HTTP ${attempt.status}` : attempt.error;
    const fields = {
      webhook_id: delivery.id,
      generation: delivery.jobId,
      webhook_event: delivery.event,
      target,
      attempt: delivery.attempts.length + 1,
      ms: attempt.ms,
      ...(attempt.status !== undefined ? { status: attempt.status } : { error: attempt.error }),
    };
    if (next.state === "delivered") {
      this.#log.info(
        `webhook ${delivery.event} of job ${delivery.jobId} delivered to ${target} (${outcome})`,
        { event: "webhook_delivered", ...fields },
      );
    } else if (next.state === "pending") {
      this.#log.warning(
        `webhook ${delivery.event} of job ${delivery.jobId} to ${target} failed (${outcome}); ` +
          `retrying in ${Math.round((next.retryAt - Date.now()) / 100) / 10} s`,
        { event: "webhook_retrying", ...fields, retry_at: new Date(next.retryAt).toISOString() },
      );
    } else {
      this.#log.error(
        `webhook ${delivery.event} of job ${delivery.jobId} to ${target} given up after ` +
          `${fields.attempt} attempt${fields.attempt === 1 ? "" : "s"} (${outcome})`,
        { event: "webhook_failed", ...fields },
      );
    }
  }
}

/**
 * The body of a delivery: `type` (`generation.<event>`), `timestamp` (the event's, ISO 8601),
 * then the job's status JSON as of its event; URLs absolute when `publicUrl` is given.
 */
export function webhookBody(delivery: LeasedDelivery, publicUrl?: string): string {
  const status = statusJson(delivery.record, undefined);
  if (publicUrl !== undefined) {
    for (const key of ["events_url", "video_url"]) {
      if (typeof status[key] === "string") status[key] = `${publicUrl}${status[key]}`;
    }
  }
  return JSON.stringify({
    type: `generation.${delivery.event}`,
    timestamp: new Date(delivery.createdAt).toISOString(),
    ...status,
  });
}
