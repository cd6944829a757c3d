/**
 * The JSON shapes of a generation: its URLs and its status document, whose `params` are the
 * request under the API's field names (`requestJson`, from the request declaration).
 *
 * @module
 */

import { requestJson } from "../pipeline/request/mod.ts";
import type { JobRecord } from "./jobs/job_queue.ts";

/** URL paths of a generation (relative to the service's origin). */
export function generationUrls(id: string): {
  status_url: string;
  events_url: string;
  video_url: string;
} {
  const base = `/v1/generations/${encodeURIComponent(id)}`;
  return { status_url: base, events_url: `${base}/events`, video_url: `${base}/video` };
}

/** `GET /v1/generations/:id`: status, times as ISO 8601, position while queued. */
export function statusJson(
  record: JobRecord,
  position: number | undefined,
): Record<string, unknown> {
  const urls = generationUrls(record.id);
  const iso = (ms: number | undefined) => ms === undefined ? undefined : new Date(ms).toISOString();
  return {
    id: record.id,
    status: record.status,
    ...(position === undefined ? {} : { position }),
    created_at: iso(record.createdAt),
    ...(record.startedAt === undefined ? {} : { started_at: iso(record.startedAt) }),
    ...(record.finishedAt === undefined ? {} : { finished_at: iso(record.finishedAt) }),
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
  };
}
