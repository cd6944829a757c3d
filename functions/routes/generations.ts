/**
 * `/v1/generations`: submit (202 JSON, or the job's event stream with `Accept: text/event-stream`),
 * status, events (resumable with `Last-Event-ID`), the finished clip (with byte ranges) and cancel.
 * A job's transitions seen here are logged (`getLog("job")`): `job_queued`, and `job_cancelled`
 * for a job cancelled while queued (the worker loop logs the others).
 *
 * A submission is checked in this order, each refusal answered at once (nothing is queued):
 *
 * 1. draining (503), the concurrent-upload cap (503 `too_many_uploads`) and a full queue (429),
 *    before a byte of the body is read (`upload_admission.ts`);
 * 2. the body, read once as it streams, against `MAX_UPLOAD_BYTES` (413) and the body timeouts
 *    (408, connection closed) (`body_limit.ts`);
 * 3. the multipart form and its fields (400, 415, 422; `multipart.ts`), then a `webhook`'s host,
 *    resolved and judged public (422 naming `webhook`; the lookup is bounded by 5 s, and the
 *    upload keeps its place meanwhile: `webhooks/address_guard.ts`);
 * 4. the whole image, decoded in the image pool off the main thread: corrupt 422 `corrupt_image`,
 *    unsupported 415, over `MAX_PIXELS` 413;
 * 5. the job's cost at the size it will be generated at (known now for every size policy) against
 *    the service's limits, 422 `job_too_large` (`job_admission.ts`);
 * 6. draining again (503 `shutting_down`): an upload admitted before SIGTERM and received after
 *    it is refused as a new one would be (in the embedded queue it would only be cancelled when
 *    the drain ends);
 * 7. the queue (429 if it filled meanwhile).
 *
 * @module
 */

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  AcceptedSchema,
  errorResponse,
  EventStreamSchema,
  statusSchema,
  UNAUTHORIZED,
  uploadSchema,
  webhookBodySchema,
} from "../api_schemas.ts";
import { parseByteRange } from "../byte_range.ts";
import { HttpError } from "../errors.ts";
import { generationUrls, statusJson } from "../generation_json.ts";
import type { JobQueue, JobRecord } from "../jobs/job_queue.ts";
import { logJobQueued, logQueuedJobCancelled } from "../jobs/job_log.ts";
import { getLog, type Log } from "../logging.ts";
import type { ImageInfo, ValidateImageOptions } from "../../pipeline/image/mod.ts";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { type JobAdmission, jobShape } from "../job_admission.ts";
import { bodyLimit } from "../middleware/body_limit.ts";
import { rejectWhileDraining, shuttingDown } from "../middleware/reject_while_draining.ts";
import { ConcurrentUploads, uploadAdmission } from "../middleware/upload_admission.ts";
import { parseUpload, type UploadModel } from "../multipart.ts";
import { resumeSseResponse, sseResponse } from "../sse.ts";

/** What the generation routes need. */
export interface GenerationRoutesDeps {
  readonly queue: JobQueue;
  readonly model: UploadModel;
  readonly maxUploadBytes: number;
  readonly maxPixels: number;
  /** Checks the whole uploaded image off the main thread (the service's `ImagePool`). */
  readonly imagePool: ImageChecker;
  /**
   * The process's upload places, shared by every app it builds (`main.ts` creates them once: the
   * API role rebuilds its app when the published model changes). Default: places of this app's
   * own, `maxConcurrentUploads` of them.
   */
  readonly uploads?: ConcurrentUploads;
  /**
   * Uploads read at once, at most, without `uploads` (default
   * {@linkcode DEFAULT_UPLOAD_LIMITS}).
   */
  readonly maxConcurrentUploads?: number;
  /** Longest wait for an upload's next bytes, ms (default {@linkcode DEFAULT_UPLOAD_LIMITS}). */
  readonly bodyIdleMs?: number;
  /** Longest time to receive a whole upload, ms (default {@linkcode DEFAULT_UPLOAD_LIMITS}). */
  readonly bodyTimeoutMs?: number;
  /**
   * Jobs the queue holds, queued and running (`SLOTS + QUEUE_SIZE`): a full queue is refused
   * before the body is read. Undefined: only the queue's own check at submit.
   */
  readonly queueCapacity?: number;
  /** The queue's suggested wait when it is full, seconds (default 10). */
  readonly retryAfterSeconds?: () => number;
  /** Admission by cost: throws for a job over the service's limits (default: none). */
  readonly admitJob?: JobAdmission;
  /** SSE comment heartbeat interval, in milliseconds. */
  readonly heartbeatMs: number;
  /** True while the service drains: new submissions get 503. */
  readonly draining: () => boolean;
  /** Where jobs queued, and jobs cancelled while queued, are logged (default: `getLog("job")`). */
  readonly jobLog?: Log;
  /** `MAX_JOB_SECONDS`: the largest and default `timeout_seconds` (default: no limit). */
  readonly maxJobSeconds?: number;
  /** Where webhooks may go (default: nowhere, the `webhook` field is refused). */
  readonly webhookTargets?: WebhookTargets;
}

/** The webhooks a service sends: which URLs it accepts, and the check of their hosts. */
export interface WebhookTargets {
  /** `https` URLs only, or `http` too (`WEBHOOK_ALLOW_PRIVATE`, tests). */
  readonly scheme: "https" | "http";
  /**
   * Checks the host of a request's `webhook` (`checkWebhookTarget`: it must resolve to public
   * addresses only).
   * @throws {ParameterError} naming `webhook`, for a 422
   * @throws {HttpError} 503 `webhook_check_unavailable` when the resolver failed for now
   * @throws `signal.reason` once `signal` (the request's) is aborted
   */
  check(url: string, signal?: AbortSignal): Promise<void>;
}

/** What the routes need of an `ImagePool`. */
export type ImageChecker = {
  validate(bytes: Uint8Array, options: ValidateImageOptions): Promise<ImageInfo>;
};

/** Defaults of the upload limits (`MAX_CONCURRENT_UPLOADS`, `BODY_IDLE_SECONDS`, `BODY_TIMEOUT_SECONDS`). */
export const DEFAULT_UPLOAD_LIMITS = {
  maxConcurrentUploads: 16,
  bodyIdleMs: 15_000,
  bodyTimeoutMs: 120_000,
} as const;

/** The routes, to be mounted at `/v1/generations`; each is documented beside its handler. */
export function generationRoutes(deps: GenerationRoutesDeps): OpenAPIHono {
  const { queue } = deps;
  const jobLog = deps.jobLog ?? getLog("job");
  const app = new OpenAPIHono();
  const docs = routeDocs(deps);
  // Documented only: the upload is parsed by parseUpload (field names, duplicates, the image's
  // magic bytes, in that order), not by the integration's form validator.
  for (const route of Object.values(docs)) app.openAPIRegistry.registerPath(route);

  app.post(
    "/",
    rejectWhileDraining(deps.draining),
    uploadAdmission({
      uploads: deps.uploads ??
        new ConcurrentUploads(
          deps.maxConcurrentUploads ?? DEFAULT_UPLOAD_LIMITS.maxConcurrentUploads,
        ),
      queue,
      capacity: deps.queueCapacity,
      retryAfterSeconds: deps.retryAfterSeconds,
    }),
    bodyLimit({
      maxBytes: deps.maxUploadBytes,
      idleMs: deps.bodyIdleMs ?? DEFAULT_UPLOAD_LIMITS.bodyIdleMs,
      totalMs: deps.bodyTimeoutMs ?? DEFAULT_UPLOAD_LIMITS.bodyTimeoutMs,
    }),
    async (c) => {
      const { request, image } = await parseUpload(c.req.raw, deps.model, {
        maxPixels: deps.maxPixels,
        maxBytes: deps.maxUploadBytes,
        maxJobSeconds: deps.maxJobSeconds,
        webhooks: deps.webhookTargets?.scheme ?? "off",
      });
      if (request.webhook !== undefined && deps.webhookTargets) {
        await checkWebhook(deps.webhookTargets, request.webhook, c.req.raw.signal);
      }
      const info = await checkImage(deps.imagePool, image, deps.maxPixels, c.req.raw.signal);
      deps.admitJob?.(jobShape(request, info));
      if (deps.draining()) throw shuttingDown();
      const record = await queue.submit(request, image);
      logJobQueued(jobLog, record);
      const urls = generationUrls(record.id);
      const headers = { Location: urls.status_url, "X-Generation-Id": record.id };
      if (wantsEventStream(c.req.header("Accept"))) {
        return sseResponse(queue, record.id, {
          heartbeatMs: deps.heartbeatMs,
          headers,
          clientSignal: c.req.raw.signal,
          // The client that asked for this stream left: nobody is waiting for the video.
          onClientGone: request.keepRunning
            ? undefined
            : () =>
              void queue.requestCancel(record.id).then(
                (after) => logQueuedJobCancelled(jobLog, after, "the client left its stream"),
                () => {},
              ),
        });
      }
      return c.json({ id: record.id, status: record.status, ...urls }, 202, headers);
    },
  );

  app.get("/:id", async (c) => {
    const record = await found(queue, c.req.param("id"));
    const json = await statusOf(queue, record);
    if (record.status === "running" && await queue.cancelRequested(record.id)) {
      json.cancel_requested = true;
    }
    return c.json(json);
  });

  app.get("/:id/events", async (c) => {
    const record = await found(queue, c.req.param("id"));
    return await resumeSseResponse(queue, record, {
      afterId: c.req.header("Last-Event-ID") ?? c.req.query("last_event_id"),
      heartbeatMs: deps.heartbeatMs,
    });
  });

  app.get("/:id/video", async (c) => {
    const record = await found(queue, c.req.param("id"));
    if (record.status === "error") {
      throw new HttpError(
        409,
        "generation_failed",
        `Generation "${record.id}" failed: ${record.error?.message ?? "unknown error"}`,
      );
    }
    if (record.status === "cancelled") {
      throw new HttpError(409, "generation_cancelled", `Generation "${record.id}" was cancelled`);
    }
    if (record.status !== "done") {
      throw new HttpError(
        404,
        "video_not_ready",
        `Generation "${record.id}" is ${record.status}; the video exists once it is done`,
      );
    }
    const video = await queue.getVideo(record.id);
    if (!video) throw new HttpError(404, "not_found", `The video of "${record.id}" has expired`);

    const size = video.bytes.length;
    const etag = `"${record.id}"`;
    const headers: Record<string, string> = {
      "Content-Type": video.contentType,
      "Accept-Ranges": "bytes",
      "Content-Disposition": `inline; filename="${record.id}.${video.format}"`,
      "Cache-Control": "private, max-age=3600, immutable",
      ETag: etag,
    };
    const ifRange = c.req.header("If-Range");
    const range = ifRange === undefined || ifRange === etag
      ? parseByteRange(c.req.header("Range"), size)
      : undefined;
    if (range === "unsatisfiable") {
      throw new HttpError(
        416,
        "range_not_satisfiable",
        `The range ${JSON.stringify(c.req.header("Range"))} is outside the ${size}-byte video`,
        { headers: { "Content-Range": `bytes */${size}`, "Accept-Ranges": "bytes" } },
      );
    }
    if (range === undefined) {
      return new Response(video.bytes as Uint8Array<ArrayBuffer>, {
        headers: { ...headers, "Content-Length": String(size) },
      });
    }
    const body = video.bytes.subarray(range.start, range.end + 1);
    return new Response(body as Uint8Array<ArrayBuffer>, {
      status: 206,
      headers: {
        ...headers,
        "Content-Range": `bytes ${range.start}-${range.end}/${size}`,
        "Content-Length": String(body.length),
      },
    });
  });

  app.delete("/:id", async (c) => {
    const before = await queue.get(c.req.param("id"));
    const record = await queue.requestCancel(c.req.param("id"));
    if (!record) throw notFound(c.req.param("id"));
    if (before?.status === "queued") logQueuedJobCancelled(jobLog, record, "DELETE");
    if (record.status === "done" || record.status === "error") {
      throw new HttpError(
        409,
        "already_finished",
        `Generation "${record.id}" has already ended (${record.status}); nothing to cancel`,
      );
    }
    const json = await statusOf(queue, record);
    // A running job stops at its next step: the answer is "accepted", the stream says when.
    if (record.status === "cancelled") return c.json(json, 200);
    return c.json({ ...json, cancel_requested: true }, 202);
  });

  return app;
}

/** The OpenAPI description of every route above. */
function routeDocs(deps: GenerationRoutesDeps) {
  const id = z.object({
    id: z.string().openapi({ description: "Generation id", param: { name: "id", in: "path" } }),
  });
  const status = statusSchema(deps.model);
  const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
  const eventStream = { "text/event-stream": { schema: EventStreamSchema } };
  const unknownId = errorResponse("Unknown or expired id (`not_found`)");
  return {
    create: createRoute({
      method: "post",
      path: "/",
      operationId: "createGeneration",
      summary: "Queue a generation",
      description: "With `Accept: text/event-stream` the response is the generation's event " +
        "stream (first event `queued`); a client that leaves cancels the job within a step " +
        "unless `keep_running` is true. Otherwise 202 with the generation's URLs.",
      request: {
        body: {
          required: true,
          content: { "multipart/form-data": { schema: uploadSchema(deps.model) } },
        },
      },
      responses: {
        200: { description: "The generation's event stream", content: eventStream },
        202: {
          description: "Queued",
          headers: {
            Location: { schema: { type: "string" }, description: "The status URL" },
            "X-Generation-Id": { schema: { type: "string" }, description: "The generation's id" },
          },
          content: json(AcceptedSchema),
        },
        400: errorResponse(
          "Malformed multipart body (`malformed_request`; the message says what is wrong)",
        ),
        401: UNAUTHORIZED,
        408: errorResponse(
          "The body stalled longer than BODY_IDLE_SECONDS, or took longer than " +
            "BODY_TIMEOUT_SECONDS (`request_timeout`); the connection is closed",
        ),
        413: errorResponse(
          "Body over MAX_UPLOAD_BYTES (`body_too_large`) or image header over MAX_PIXELS " +
            "(`image_too_large`)",
        ),
        415: errorResponse(
          "Not multipart (`unsupported_content_type`) or not a PNG, JPEG or WebP image this " +
            "service decodes (`unsupported_media_type`: e.g. a GIF, a lossless JPEG, an animated " +
            "WebP)",
        ),
        422: errorResponse(
          "A field unknown (`unknown_field`), repeated (`duplicate_field`), missing " +
            "(`missing_field`) or out of range (`invalid_parameter`: also a `webhook` whose " +
            "host is loopback, private, link-local or otherwise not public, and a `webhook` " +
            "on a service without WEBHOOK_SECRET); `field` names it, `allowed` says what it " +
            "may be. A damaged image (`corrupt_image`: truncated, a bad CRC, bad zlib data). A " +
            "job over the service's limits (`job_too_large`: its cost or planned memory; the " +
            "message names the limit and the request's value)",
        ),
        429: {
          ...errorResponse("The queue is full (`queue_full`), answered before the body is read"),
          headers: {
            "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait" },
          },
        },
        503: {
          ...errorResponse(
            "Too many uploads being received (`too_many_uploads`), the image could not be " +
              "checked (`image_check_unavailable`), the webhook's host could not be resolved " +
              "for now (`webhook_check_unavailable`), shutting down (`shutting_down`), the job " +
              "store is unavailable (`store_unavailable`) or, in the API role, the workers' " +
              "model is not published or disagrees with MODEL_DIR (`model_unavailable`)",
          ),
          headers: {
            "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait" },
          },
        },
      },
    }),
    status: createRoute({
      method: "get",
      path: "/{id}",
      operationId: "getGeneration",
      summary: "Status of a generation",
      request: { params: id },
      responses: {
        200: { description: "Its status", content: json(status) },
        401: UNAUTHORIZED,
        404: unknownId,
      },
    }),
    events: createRoute({
      method: "get",
      path: "/{id}/events",
      operationId: "getGenerationEvents",
      summary: "Event stream of a generation",
      description:
        "Resumable: missed events after `Last-Event-ID` are replayed, then live ones. A finished " +
        "generation with nothing after `Last-Event-ID` answers 204, so an EventSource stops.",
      request: {
        params: id,
        headers: z.object({
          "Last-Event-ID": z.string().optional().openapi({
            description: "Resume after this event id",
          }),
        }),
        query: z.object({
          last_event_id: z.string().optional().openapi({
            description: "Same as the Last-Event-ID header (for the first EventSource connection)",
          }),
        }),
      },
      responses: {
        200: { description: "The event stream", content: eventStream },
        204: { description: "The generation has ended and no event follows `Last-Event-ID`" },
        401: UNAUTHORIZED,
        404: unknownId,
      },
    }),
    video: createRoute({
      method: "get",
      path: "/{id}/video",
      operationId: "getGenerationVideo",
      summary: "The finished clip",
      request: {
        params: id,
        headers: z.object({
          Range: z.string().optional().openapi({
            description: "One byte range: `bytes=start-end`, `bytes=start-` or `bytes=-suffix`",
          }),
        }),
      },
      responses: {
        200: {
          description: "The clip",
          headers: { "Accept-Ranges": { schema: { type: "string", enum: ["bytes"] } } },
          content: {
            "video/mp4": { schema: { type: "string", contentMediaType: "video/mp4" } },
            "video/webm": { schema: { type: "string", contentMediaType: "video/webm" } },
            "image/gif": { schema: { type: "string", contentMediaType: "image/gif" } },
          },
        },
        206: {
          description: "The requested byte range",
          headers: { "Content-Range": { schema: { type: "string" } } },
        },
        401: UNAUTHORIZED,
        404: errorResponse("Unknown id (`not_found`) or not done yet (`video_not_ready`)"),
        409: errorResponse(
          "The generation failed (`generation_failed`) or was cancelled (`generation_cancelled`)",
        ),
        416: errorResponse("Range not satisfiable (`range_not_satisfiable`)"),
      },
    }),
    cancel: createRoute({
      method: "delete",
      path: "/{id}",
      operationId: "cancelGeneration",
      summary: "Cancel a queued or running generation",
      request: { params: id },
      responses: {
        200: {
          description: "Cancelled (it was queued, or already cancelled)",
          content: json(status),
        },
        202: {
          description: "Cancellation requested; the job stops at its next step",
          content: json(status),
        },
        401: UNAUTHORIZED,
        404: unknownId,
        409: errorResponse("Already done or failed (`already_finished`)"),
      },
    }),
  };
}

/**
 * The whole image decoded off the main thread; a client that leaves meanwhile stops the check
 * (the answer is for no one: 400 `request_aborted` in the log).
 */
async function checkImage(
  pool: ImageChecker,
  image: Uint8Array,
  maxPixels: number,
  signal: AbortSignal,
): Promise<ImageInfo> {
  try {
    return await pool.validate(image, { maxPixels, signal });
  } catch (error) {
    if (error instanceof GenerationCancelledError && signal.aborted) {
      throw new HttpError(400, "request_aborted", "The client left before its image was checked", {
        cause: error,
      });
    }
    throw error;
  }
}

/** The webhook's host checked; a client that leaves meanwhile stops the wait (400 `request_aborted`). */
async function checkWebhook(
  targets: WebhookTargets,
  url: string,
  signal: AbortSignal,
): Promise<void> {
  try {
    await targets.check(url, signal);
  } catch (error) {
    if (signal.aborted) {
      throw new HttpError(
        400,
        "request_aborted",
        "The client left before its webhook was checked",
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/**
 * The OpenAPI description of the webhook deliveries, for the document's `webhooks` (registered on
 * the root app: a mounted app's registry would prefix its name with the mount path).
 */
export function webhookDocs(deps: Pick<GenerationRoutesDeps, "model">) {
  const header = (description: string) => z.string().openapi({ description });
  return createRoute({
    method: "post",
    path: "generation",
    operationId: "generationWebhook",
    summary: "A generation's event, sent to its webhook",
    description: "Sent for each of the request's `webhook_events`, signed as Standard Webhooks " +
      "specify (verify with any Standard Webhooks library and the service's WEBHOOK_SECRET). " +
      "Retried with exponential backoff (2 s doubling, at most 5 min apart, for an hour) until " +
      "a 2xx; 410 stops it; redirects are not followed. Deduplicate by `webhook-id`: an attempt " +
      "may arrive twice when a sender dies after sending it.",
    request: {
      headers: z.object({
        "webhook-id": header("Unique per event, the same at every attempt"),
        "webhook-timestamp": header("This attempt's time, Unix seconds"),
        "webhook-signature": header(
          "`v1,` + base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` " +
            "(several, space-separated, while the secret is rotated)",
        ),
      }),
      body: {
        required: true,
        content: { "application/json": { schema: webhookBodySchema(deps.model) } },
      },
    },
    responses: {
      200: { description: "Any 2xx: delivered" },
      410: { description: "Gone: no more attempts" },
    },
  });
}

/** True when the client asked for an event stream. */
function wantsEventStream(accept: string | undefined): boolean {
  return accept !== undefined &&
    accept.split(",").some((part) => {
      const [type, ...params] = part.trim().toLowerCase().split(";");
      const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
      return type.trim() === "text/event-stream" && (q === undefined || Number(q.slice(2)) > 0);
    });
}

/** The status JSON of `record`: with its position while queued, and its webhook's deliveries. */
async function statusOf(queue: JobQueue, record: JobRecord): Promise<Record<string, unknown>> {
  const [position, deliveries] = await Promise.all([
    record.status === "queued" ? queue.position(record.id) : undefined,
    record.request.webhook === undefined ? undefined : queue.webhooks.deliveries(record.id),
  ]);
  return statusJson(record, position, deliveries);
}

async function found(queue: JobQueue, id: string): Promise<JobRecord> {
  const record = await queue.get(id);
  if (!record) throw notFound(id);
  return record;
}

function notFound(id: string): HttpError {
  return new HttpError(
    404,
    "not_found",
    `No generation ${JSON.stringify(id)} (unknown or expired)`,
  );
}
