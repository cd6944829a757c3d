/**
 * The outbox of webhook deliveries: what a job queue keeps for the {@linkcode WebhookDispatcher}
 * (`webhook_dispatcher.ts`) to send. A delivery is made by the queue itself, in the same step
 * that stores the event it is for (a Lua script in Redis), for each event of `webhook_events`
 * (`started`, `done`, `error`, `cancelled`) of a job that has a `webhook`: an event is never
 * stored without its delivery, nor the other way round.
 *
 * A sender *claims* due deliveries for a lease (`claim`): no other sender gets them until the
 * lease runs out. It tries each once and *settles* it (`settle`): the attempt (time, status or
 * error) is recorded and the delivery is done, given up, or due again later. A sender that dies
 * mid-attempt leaves its lease to run out; another sender then tries again (the receiver may see
 * that attempt twice, with the same `webhook-id`). A delivery waiting for its next attempt is
 * nobody's: any sender takes it when it is due, so a restart loses nothing.
 *
 * @module
 */

import {
  DEFAULT_WEBHOOK_EVENTS,
  WEBHOOK_EVENTS,
  type WebhookEvent,
} from "../../pipeline/request/mod.ts";
import type { JobEventType, JobRecord } from "../jobs/job_queue.ts";

export { WEBHOOK_EVENTS, type WebhookEvent };

/** One try of a delivery. */
export interface WebhookAttempt {
  /** When it started, ms since the epoch. */
  readonly at: number;
  /** How long it took, in ms. */
  readonly ms: number;
  /** The receiver's HTTP status, when it answered. */
  readonly status?: number;
  /** Why it failed without a status (refused address, timeout, connection error). */
  readonly error?: string;
}

/** `pending` (to be tried, or retried), `delivered` (a 2xx), `failed` (given up). */
export type DeliveryState = "pending" | "delivered" | "failed";

/** A delivery as the status JSON shows it. */
export interface DeliveryStatus {
  /** The `webhook-id` header: the same for every attempt (receivers dedupe by it). */
  readonly id: string;
  readonly event: WebhookEvent;
  readonly state: DeliveryState;
  readonly attempts: readonly WebhookAttempt[];
  /** When the next attempt is due (`pending` after a failed attempt). */
  readonly nextAttemptAt?: number;
}

/** A delivery claimed by one sender. */
export interface LeasedDelivery {
  readonly id: string;
  readonly jobId: string;
  readonly event: WebhookEvent;
  readonly url: string;
  /** The job's record as it was when the event was stored: the body is made from it. */
  readonly record: JobRecord;
  /** When the event was stored, ms since the epoch. */
  readonly createdAt: number;
  readonly attempts: readonly WebhookAttempt[];
  /** Fences {@linkcode WebhookOutbox.settle}: a lease taken over by another sender writes nothing. */
  readonly lease: string;
}

/** What follows an attempt. */
export type DeliveryNext =
  | { readonly state: "delivered" }
  | { readonly state: "failed" }
  | { readonly state: "pending"; readonly retryAt: number };

/** Due deliveries, and when the next one falls due. */
export interface ClaimedDeliveries {
  readonly leased: LeasedDelivery[];
  /** When the earliest delivery not claimed now is due (ms since the epoch), if there is one. */
  readonly nextDueAt?: number;
}

/** Attempts kept per delivery (the first and the latest ones). */
export const MAX_ATTEMPTS_SHOWN = 30;

/** The store of deliveries behind a job queue; see the module doc. */
export interface WebhookOutbox {
  /** Leases up to `max` deliveries due now to this caller for `leaseMs`. */
  claim(max: number, leaseMs: number): Promise<ClaimedDeliveries>;
  /**
   * Records `attempt` of a delivery this caller leased and what follows it.
   * @returns false when the lease was no longer the caller's (it ran out and another sender
   *   took the delivery): nothing was written.
   */
  settle(delivery: LeasedDelivery, attempt: WebhookAttempt, next: DeliveryNext): Promise<boolean>;
  /** The deliveries of job `jobId`, oldest first (none for an unknown job). */
  deliveries(jobId: string): Promise<DeliveryStatus[]>;
  /** Calls `listener` when a delivery is made (in-process outboxes), so a sender need not poll. */
  onEnqueued?(listener: () => void): void;
}

/** True for the event types a webhook can be sent for. */
export function isWebhookEvent(type: JobEventType): type is WebhookEvent {
  return (WEBHOOK_EVENTS as readonly string[]).includes(type);
}

/**
 * The `webhook-id` of the delivery of event `eventId` of job `jobId`: unique per event (a rerun's
 * second `started` has its own), the same for all its attempts, and without a `.` (the spec signs
 * `id.timestamp.body`).
 */
export function deliveryId(jobId: string, eventId: string): string {
  return `msg_${jobId}_${eventId}`;
}

/**
 * The events of a job's request that get a webhook, comma-separated (`done,error`), or undefined
 * when it has no webhook. What the Redis record keeps, for its scripts to match events against.
 */
export function webhookEventsOf(record: Pick<JobRecord, "request">): string | undefined {
  const { webhook, webhookEvents = DEFAULT_WEBHOOK_EVENTS } = record.request;
  return webhook === undefined ? undefined : [...new Set(webhookEvents)].join(",");
}

/** True when event `type` of the job of `record` gets a webhook. */
export function wantsWebhook(record: Pick<JobRecord, "request">, type: JobEventType): boolean {
  const { webhook, webhookEvents = DEFAULT_WEBHOOK_EVENTS } = record.request;
  return isWebhookEvent(type) && webhook !== undefined &&
    (webhookEvents as readonly string[]).includes(type);
}

/** `attempts` with `attempt` added, keeping the first one and the latest ones. */
export function withAttempt(
  attempts: readonly WebhookAttempt[],
  attempt: WebhookAttempt,
): WebhookAttempt[] {
  const all = [...attempts, attempt];
  return all.length <= MAX_ATTEMPTS_SHOWN
    ? all
    : [all[0], ...all.slice(all.length - MAX_ATTEMPTS_SHOWN + 1)];
}
