/**
 * The JSON shapes of a generation: its URLs, its request as the snake_case fields it was sent
 * with, and its status document.
 *
 * @module
 */

import type { JobRecord, JobRequest } from "./jobs/job_queue.ts";

/** URL paths of a generation (relative to the service's origin). */
export function generationUrls(id: string): {
  status_url: string;
  events_url: string;
  video_url: string;
} {
  const base = `/v1/generations/${encodeURIComponent(id)}`;
  return { status_url: base, events_url: `${base}/events`, video_url: `${base}/video` };
}

/** The request as the API's field names, every default filled (seed included). */
export function requestJson(request: JobRequest): Record<string, unknown> {
  const p = request.params;
  return {
    model: request.model,
    num_frames: p.numFrames,
    steps: p.numSteps,
    fps: p.fps,
    motion_bucket_id: p.motionBucketId,
    cond_aug: p.condAug,
    seed: p.seed,
    min_guidance: p.minGuidance,
    max_guidance: p.maxGuidance,
    guider: p.guider,
    decoding_t: p.decodingT,
    width: p.width,
    height: p.height,
    format: request.format,
    size: request.size,
    preview: request.preview,
    keep_running: request.keepRunning,
    ...(request.crf === undefined ? {} : { crf: request.crf }),
  };
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
