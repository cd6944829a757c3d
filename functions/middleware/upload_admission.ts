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
 * is bounded by `MAX_CONCURRENT_UPLOADS` × (twice `MAX_UPLOAD_BYTES`, see `multipart.ts`).
 *
 * The places are a {@linkcode ConcurrentUploads}, the process's: `main.ts` creates it once and
 * every app it builds shares it (the API role rebuilds its app when the workers publish another
 * model, while uploads to the old one are still being read).
 *
 * @example
 * ```ts
 * import { ConcurrentUploads, uploadAdmission } from "./upload_admission.ts";
 * const uploads = new ConcurrentUploads(16); // once per process
 * app.post("/v1/generations", uploadAdmission({ uploads, queue, capacity: 9, retryAfterSeconds: () => 10 }), handler);
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";
import { type JobQueue, QueueFullError } from "../jobs/job_queue.ts";

/**
 * The uploads a process is reading, at most `max` at once (`MAX_CONCURRENT_UPLOADS`). One per
 * process, shared by every app built in it, so the cap holds across app rebuilds.
 */
export class ConcurrentUploads {
  #count = 0;

  /** @param max uploads read at once, at most: an integer ≥ 1 */
  constructor(readonly max: number) {
    if (!(Number.isInteger(max) && max >= 1)) {
      throw new RangeError(`MAX_CONCURRENT_UPLOADS must be an integer ≥ 1, got ${max}`);
    }
  }

  /** Uploads being read now. */
  get count(): number {
    return this.#count;
  }

  /** Takes a place for one upload: false when all `max` are taken. */
  tryTake(): boolean {
    if (this.#count >= this.max) return false;
    this.#count++;
    return true;
  }

  /** Gives back a place {@linkcode tryTake} took. */
  release(): void {
    if (this.#count === 0) throw new Error("ConcurrentUploads.release() without a place taken");
    this.#count--;
  }
}

/** Options of {@linkcode uploadAdmission}. */
export interface UploadAdmissionOptions {
  /** The process's upload places (`MAX_CONCURRENT_UPLOADS`), shared by its apps. */
  readonly uploads: ConcurrentUploads;
  readonly queue: Pick<JobQueue, "stats">;
  /** Jobs the queue holds, queued and running (`SLOTS + QUEUE_SIZE`); undefined: not checked here. */
  readonly capacity?: number;
  /** The queue's suggested wait when it is full, seconds. */
  readonly retryAfterSeconds?: () => number;
}

/** Middleware admitting uploads; see the module doc. */
export function uploadAdmission(options: UploadAdmissionOptions): MiddlewareHandler {
  const { uploads, queue, capacity } = options;
  return async function admitUpload(_c, next) {
    if (!uploads.tryTake()) {
      throw new HttpError(
        503,
        "too_many_uploads",
        `${uploads.count} uploads are being received, the most this instance takes at once ` +
          "(MAX_CONCURRENT_UPLOADS); retry in a moment",
        { headers: { "Retry-After": "1" } },
      );
    }
    try {
      if (capacity !== undefined) {
        const { queued, running } = await queue.stats();
        const others = uploads.count - 1;
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
      uploads.release();
    }
  };
}
