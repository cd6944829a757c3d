/**
 * `/v1/generations`: submit (202 JSON, or the job's event stream with `Accept: text/event-stream`),
 * status, events (resumable with `Last-Event-ID`), the finished clip (with byte ranges) and cancel.
 * A job's transitions seen here are logged (`getLog("job")`): `job_queued`, and `job_cancelled`
 * for a job cancelled while queued (the worker loop logs the others).
 *
 * @module
 */

import { Hono } from "hono";
import { parseByteRange } from "../byte_range.ts";
import { HttpError } from "../errors.ts";
import { generationUrls, statusJson } from "../generation_json.ts";
import type { JobQueue, JobRecord } from "../jobs/job_queue.ts";
import { logJobQueued, logQueuedJobCancelled } from "../jobs/job_log.ts";
import { getLog, type Log } from "../logging.ts";
import { bodyLimit } from "../middleware/body_limit.ts";
import { rejectWhileDraining } from "../middleware/reject_while_draining.ts";
import { parseUpload, type UploadModel } from "../multipart.ts";
import { resumeSseResponse, sseResponse } from "../sse.ts";

/** What the generation routes need. */
export interface GenerationRoutesDeps {
  readonly queue: JobQueue;
  readonly model: UploadModel;
  readonly maxUploadBytes: number;
  readonly maxPixels: number;
  readonly heartbeatMs: number;
  /** True while the service drains: new submissions get 503. */
  readonly draining: () => boolean;
  /** Where jobs queued, and jobs cancelled while queued, are logged (default: `getLog("job")`). */
  readonly jobLog?: Log;
}

/** The routes, to be mounted at `/v1/generations`. */
export function generationRoutes(deps: GenerationRoutesDeps): Hono {
  const { queue } = deps;
  const jobLog = deps.jobLog ?? getLog("job");
  const app = new Hono();

  app.post(
    "/",
    rejectWhileDraining(deps.draining),
    bodyLimit(deps.maxUploadBytes),
    async (c) => {
      const { request, image } = await parseUpload(c.req.raw, deps.model, deps);
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
    const position = record.status === "queued" ? await queue.position(record.id) : undefined;
    const json = statusJson(record, position);
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
    const position = record.status === "queued" ? await queue.position(record.id) : undefined;
    const json = statusJson(record, position);
    // A running job stops at its next step: the answer is "accepted", the stream says when.
    if (record.status === "cancelled") return c.json(json, 200);
    return c.json({ ...json, cancel_requested: true }, 202);
  });

  return app;
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
