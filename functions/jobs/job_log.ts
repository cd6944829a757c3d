/**
 * The log lines of a job's transitions that the HTTP side sees: `job_queued` when a generation is
 * accepted, `job_cancelled` when it is cancelled before any worker took it. The worker loop logs
 * the rest (`job_started`, `job_done`, `job_failed`, `job_cancelled`, `job_released`).
 *
 * @module
 */

import type { Log } from "../logging.ts";
import type { JobRecord } from "./job_queue.ts";

/** Logs a job just queued: its id and what it will make. */
export function logJobQueued(log: Log, record: JobRecord): void {
  const { request } = record;
  const p = request.params;
  log.info(
    `job ${record.id} queued: ${request.model}, ${p.numFrames} frames ${p.width}×${p.height}, ` +
      `${p.numSteps} steps, ${request.format}`,
    {
      event: "job_queued",
      generation: record.id,
      model: request.model,
      frames: p.numFrames,
      steps: p.numSteps,
      width: p.width,
      height: p.height,
      seed: p.seed,
      format: request.format,
      preview: request.preview,
    },
  );
}

/** Logs a cancellation that ended a job while it was queued (`record` as it is after the cancel). */
export function logQueuedJobCancelled(
  log: Log,
  record: JobRecord | undefined,
  reason: string,
): void {
  if (record?.status !== "cancelled" || record.startedAt !== undefined) return;
  log.info(`job ${record.id} cancelled while queued: ${reason}`, {
    event: "job_cancelled",
    generation: record.id,
    at: "queued",
    reason,
  });
}
