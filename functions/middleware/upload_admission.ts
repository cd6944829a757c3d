/**
 * Whether an upload may be read at all, decided before its first byte:
 *
 * 1. **Concurrent uploads are capped** (`MAX_CONCURRENT_UPLOADS`): one more is refused with 503
 *    `too_many_uploads` and `Retry-After`. 503 rather than 429: the client is over no rate of
 *    its own; this instance is momentarily saturated (the definition of 503, RFC 9110 §15.6.4),
 *    a load balancer may send the retry to another instance, and 429 keeps meaning "the queue is
 *    full", the backlog signal clients and autoscalers read.
 * 2. **A full queue answers 429 `queue_full` first**: the jobs queued and running (from the
 *    queue's stats) plus the uploads being read here must leave room for one more, else 429 with
 *    the queue's `Retry-After`, without reading the body. A queue that fills while the body is
 *    read still refuses it at submit (429, after reading).
 *
 * Each upload holds its place until its response is decided, so the memory of uploads being read
 * is bounded by `maxConcurrent` × (twice `MAX_UPLOAD_BYTES`, see `multipart.ts`).
 *
 * @example
 * ```ts
 * import { uploadAdmission } from "./upload_admission.ts";
 * app.post("/v1/generations", uploadAdmission({ maxConcurrent: 16, queue, capacity: 9, retryAfterSeconds: () => 10 }), handler);
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";
import { type JobQueue, QueueFullError } from "../jobs/job_queue.ts";

/** Options of {@linkcode uploadAdmission}. */
export interface UploadAdmissionOptions {
  /** Uploads read at once, at most (`MAX_CONCURRENT_UPLOADS`). */
  readonly maxConcurrent: number;
  readonly queue: Pick<JobQueue, "stats">;
  /** Jobs the queue holds, queued and running (`SLOTS + QUEUE_SIZE`); undefined: not checked here. */
  readonly capacity?: number;
  /** The queue's suggested wait when it is full, seconds. */
  readonly retryAfterSeconds?: () => number;
}

/** Middleware admitting uploads; see the module doc. Its `uploading` counts those being read. */
export function uploadAdmission(
  options: UploadAdmissionOptions,
): MiddlewareHandler & { readonly uploading: number } {
  const { maxConcurrent, queue, capacity } = options;
  if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) {
    throw new RangeError(`maxConcurrent must be an integer ≥ 1, got ${maxConcurrent}`);
  }
  let uploading = 0;
  const admit: MiddlewareHandler = async function admitUpload(_c, next) {
    if (uploading >= maxConcurrent) {
      throw new HttpError(
        503,
        "too_many_uploads",
        `${uploading} uploads are being received, the most this instance takes at once ` +
          "(MAX_CONCURRENT_UPLOADS); retry in a moment",
        { headers: { "Retry-After": "1" } },
      );
    }
    uploading++;
    try {
      if (capacity !== undefined) {
        const { queued, running } = await queue.stats();
        const others = uploading - 1;
        if (queued + running + others >= capacity) {
          throw new QueueFullError(
            `The queue is full: ${queued} queued and ${running} running of ${capacity} places` +
              `${others > 0 ? `, ${others} more being uploaded` : ""}; retry later`,
            options.retryAfterSeconds?.() ?? 10,
          );
        }
      }
      await next();
    } finally {
      uploading--;
    }
  };
  return Object.defineProperty(admit, "uploading", { get: () => uploading }) as
    & MiddlewareHandler
    & { readonly uploading: number };
}
