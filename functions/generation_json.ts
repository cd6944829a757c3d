/**
 * The JSON shapes of a generation: its URLs and its status document, whose `params` are the
 * request under the API's field names (`requestJson`, from the request declaration).
 *
 * @module
 */

import { requestJson } from "../pipeline/request/mod.ts";
import { deadlineOf } from "./jobs/deadlines.ts";
import type { JobRecord } from "./jobs/job_queue.ts";
import type { DeliveryStatus } from "./webhooks/webhook_outbox.ts";

/** URL paths of a generation (relative to the service's origin). */
export function generationUrls(id: string): {
  status_url: string;
  events_url: string;
  video_url: string;
} {
  const base = `/v1/generations/${encodeURIComponent(id)}`;
  return { status_url: base, events_url: `${base}/events`, video_url: `${base}/video` };
}

/**
 * `GET /v1/generations/:id`: status, times as ISO 8601, position while queued, the deadline when
 * there is one, and the webhook's deliveries when given (a webhook's body has none: it is the
 * status as of its event).
 */
export function statusJson(
  record: JobRecord,
  position: number | undefined,
  deliveries?: readonly DeliveryStatus[],
): Record<string, unknown> {
  const urls = generationUrls(record.id);
  const deadline = deadlineOf(record);
  return {
    id: record.id,
    status: record.status,
    ...(position === undefined ? {} : { position }),
    created_at: iso(record.createdAt),
    ...(record.startedAt === undefined ? {} : { started_at: iso(record.startedAt) }),
    ...(record.finishedAt === undefined ? {} : { finished_at: iso(record.finishedAt) }),
    ...(deadline === undefined ? {} : { deadline_at: iso(deadline) }),
    params: requestJson(record.request),
    ...(record.error ? { error: record.error } : {}),
    events_url: urls.events_url,
    ...(record.status === "done" ? { video_url: urls.video_url } : {}),
    ...(record.video
      ? {
        video: {
          format: record.video.format,
          bytes: record.video.bytes,
          content_type: record.video.contentType,
        },
      }
      : {}),
    ...(deliveries === undefined ? {} : { webhook_deliveries: deliveries.map(deliveryJson) }),
  };
}

/** One webhook delivery as the status JSON shows it. */
export function deliveryJson(delivery: DeliveryStatus): Record<string, unknown> {
  return {
    id: delivery.id,
    event: delivery.event,
    state: delivery.state,
    attempts: delivery.attempts.map((attempt) => ({
      at: iso(attempt.at),
      ms: attempt.ms,
      ...(attempt.status === undefined ? {} : { status: attempt.status }),
      ...(attempt.error === undefined ? {} : { error: attempt.error }),
    })),
    ...(delivery.nextAttemptAt === undefined
      ? {}
      : { next_attempt_at: iso(delivery.nextAttemptAt) }),
  };
}

function iso(ms: number): string;
function iso(ms: number | undefined): string | undefined;
function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
