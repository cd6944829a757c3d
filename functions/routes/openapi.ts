/**
 * `GET /openapi.json`: the API as an OpenAPI 3.1 document. The sampling fields' ranges come from
 * `SAMPLING_LIMITS` and the choices from the upload parser's tables, so the document cannot drift
 * from what the service checks.
 *
 * @module
 */

import { Hono } from "hono";
import { type FieldLimit, SAMPLING_LIMITS } from "../../pipeline/config/mod.ts";
import { UPLOAD_CHOICES } from "../multipart.ts";

type Json = Record<string, unknown>;

/** The OpenAPI 3.1 document of the service. */
export function openApiDocument(): Json {
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const error = (description: string) => ({
    description,
    content: { "application/json": { schema: ref("Error") } },
  });
  const id = {
    name: "id",
    in: "path",
    required: true,
    schema: { type: "string" },
    description: "Generation id",
  };
  const eventStream = {
    "text/event-stream": {
      schema: { type: "string" },
      description: "Server-sent events: `retry:` once, then `id:`, `event:` and one JSON " +
        "`data:` line per event (see the GenerationEvent schemas), a `: heartbeat` comment " +
        "every HEARTBEAT_SECONDS; the stream ends after `done`, `error` or `cancelled`.",
    },
  };

  return {
    openapi: "3.1.0",
    info: {
      title: "svd-stream",
      version: "1.0.0",
      description: "Stable Video Diffusion image-to-video: queue a generation, stream every " +
        "step's previews as server-sent events, fetch the clip.",
    },
    security: [{ bearer: [] }],
    paths: {
      "/v1/generations": {
        post: {
          summary: "Queue a generation",
          description: "With `Accept: text/event-stream` the response is the generation's event " +
            "stream (first event `queued`); a client that leaves cancels the job within one " +
            "step unless `keep_running` is true. Otherwise 202 with the generation's URLs.",
          requestBody: {
            required: true,
            content: { "multipart/form-data": { schema: ref("GenerationUpload") } },
          },
          responses: {
            "200": { description: "The event stream of the generation", content: eventStream },
            "202": {
              description: "Queued",
              headers: {
                Location: { schema: { type: "string" }, description: "The status URL" },
                "X-Generation-Id": { schema: { type: "string" } },
              },
              content: { "application/json": { schema: ref("GenerationAccepted") } },
            },
            "400": error("Malformed multipart body"),
            "401": error("Missing or wrong bearer token"),
            "413": error(
              "Body over MAX_UPLOAD_BYTES (`body_too_large`) or image header over " +
                "MAX_PIXELS (`image_too_large`)",
            ),
            "415": error(
              "Not multipart (`unsupported_content_type`) or not a PNG, JPEG or " +
                "WebP image by its magic bytes (`unsupported_media_type`)",
            ),
            "422": error("A field unknown, repeated, missing or out of range; `field` names it"),
            "429": {
              ...error("The queue is full"),
              headers: { "Retry-After": { schema: { type: "integer" } } },
            },
            "503": error("Shutting down or the job store is unavailable"),
          },
        },
      },
      "/v1/generations/{id}": {
        parameters: [id],
        get: {
          summary: "Status of a generation",
          responses: {
            "200": {
              description: "Status",
              content: { "application/json": { schema: ref("GenerationStatus") } },
            },
            "404": error("Unknown or expired id"),
          },
        },
        delete: {
          summary: "Cancel a queued or running generation",
          responses: {
            "200": {
              description: "Cancelled (it was queued, or already cancelled)",
              content: { "application/json": { schema: ref("GenerationStatus") } },
            },
            "202": {
              description: "Cancellation requested; the job stops at its next step",
              content: { "application/json": { schema: ref("GenerationStatus") } },
            },
            "404": error("Unknown or expired id"),
            "409": error("Already done or failed"),
          },
        },
      },
      "/v1/generations/{id}/events": {
        parameters: [
          id,
          {
            name: "Last-Event-ID",
            in: "header",
            schema: { type: "string" },
            description: "Resume after this event id: missed events are replayed, then live ones",
          },
          {
            name: "last_event_id",
            in: "query",
            schema: { type: "string" },
            description: "Same as the Last-Event-ID header (for the first EventSource connection)",
          },
        ],
        get: {
          summary: "Event stream of a generation",
          responses: {
            "200": { description: "The event stream", content: eventStream },
            "404": error("Unknown or expired id"),
          },
        },
      },
      "/v1/generations/{id}/video": {
        parameters: [
          id,
          {
            name: "Range",
            in: "header",
            schema: { type: "string" },
            description: "One byte range, `bytes=start-end`, `bytes=start-` or `bytes=-suffix`",
          },
        ],
        get: {
          summary: "The finished clip",
          responses: {
            "200": {
              description: "The clip",
              headers: { "Accept-Ranges": { schema: { type: "string", const: "bytes" } } },
              content: {
                "video/mp4": { schema: { type: "string", contentMediaType: "video/mp4" } },
                "video/webm": { schema: { type: "string", contentMediaType: "video/webm" } },
                "image/gif": { schema: { type: "string", contentMediaType: "image/gif" } },
              },
            },
            "206": {
              description: "The requested byte range",
              headers: { "Content-Range": { schema: { type: "string" } } },
            },
            "404": error("Unknown id (`not_found`) or not done yet (`video_not_ready`)"),
            "409": error("The generation failed or was cancelled"),
            "416": error("Range not satisfiable"),
          },
        },
      },
      "/healthz": {
        get: {
          summary: "Liveness",
          security: [],
          responses: { "200": { description: "The process answers" } },
        },
      },
      "/readyz": {
        get: {
          summary: "Readiness",
          security: [],
          responses: {
            "200": {
              description: "Models loaded",
              content: { "application/json": { schema: ref("Readiness") } },
            },
            "503": {
              description: "Loading, draining or the store is unavailable",
              content: { "application/json": { schema: ref("Readiness") } },
            },
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          security: [],
          responses: {
            "200": {
              description: "svd_queue_depth, svd_jobs_running, svd_jobs_total{outcome}, " +
                "svd_step_seconds, svd_generation_seconds, svd_provider_info{provider}",
              content: { "text/plain": { schema: { type: "string" } } },
            },
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: {
            "200": {
              description: "OpenAPI 3.1",
              content: { "application/json": { schema: { type: "object" } } },
            },
          },
        },
      },
      "/": {
        get: {
          summary: "Demo page",
          security: [],
          responses: {
            "200": {
              description: "HTML page driving the API",
              content: { "text/html": { schema: { type: "string" } } },
            },
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "API_TOKEN; not required when the service runs without one",
        },
      },
      schemas: {
        GenerationUpload: uploadSchema(),
        GenerationAccepted: {
          type: "object",
          required: ["id", "status", "status_url", "events_url", "video_url"],
          properties: {
            id: { type: "string" },
            status: { const: "queued" },
            status_url: { type: "string" },
            events_url: { type: "string" },
            video_url: { type: "string" },
          },
        },
        GenerationStatus: {
          type: "object",
          required: ["id", "status", "created_at", "params"],
          properties: {
            id: { type: "string" },
            status: { enum: ["queued", "running", "done", "error", "cancelled"] },
            position: { type: "integer", minimum: 1, description: "While queued" },
            created_at: { type: "string", format: "date-time" },
            started_at: { type: "string", format: "date-time" },
            finished_at: { type: "string", format: "date-time" },
            params: { type: "object", description: "The request, every default filled" },
            error: ref("JobError"),
            events_url: { type: "string" },
            video_url: { type: "string", description: "When done" },
            cancel_requested: { type: "boolean" },
          },
        },
        Readiness: {
          type: "object",
          properties: {
            status: { enum: ["ready", "loading", "draining", "store_unavailable"] },
            provider: { type: "string" },
            model: { type: "string" },
            queued: { type: "integer" },
            running: { type: "integer" },
          },
        },
        JobError: {
          type: "object",
          required: ["code", "message"],
          properties: { code: { type: "string" }, message: { type: "string" } },
        },
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: { type: "string" },
                message: { type: "string" },
                field: { type: "string", description: "The request field at fault" },
                allowed: { type: "string", description: "Its allowed values" },
              },
            },
          },
        },
        ...eventSchemas(),
      },
    },
  };
}

/** `GET /openapi.json`, mounted at `/`. */
export function openApiRoutes(): Hono {
  const document = openApiDocument();
  const app = new Hono();
  app.get("/openapi.json", (c) => c.json(document));
  return app;
}

function uploadSchema(): Json {
  const properties: Record<string, Json> = {
    image: {
      type: "string",
      contentMediaType: "application/octet-stream",
      description: "PNG, JPEG or WebP (told by magic bytes), at most MAX_PIXELS pixels",
    },
    model: { type: "string", description: "Must name the loaded model (default: it)" },
  };
  for (const limit of Object.values(SAMPLING_LIMITS)) properties[limit.key] = limitSchema(limit);
  properties.format = { enum: [...UPLOAD_CHOICES.format], default: "mp4" };
  properties.size = { enum: [...UPLOAD_CHOICES.size], default: "cover" };
  properties.preview = {
    enum: [...UPLOAD_CHOICES.preview],
    default: "latent",
    description: "latent: every step event carries one preview data URL per frame",
  };
  properties.keep_running = {
    enum: [...UPLOAD_CHOICES.keep_running],
    default: "false",
    description: "Keep generating when the client of a streaming POST leaves",
  };
  properties.crf = {
    type: "integer",
    minimum: 0,
    maximum: 63,
    description: "Quality: mp4 0..51 (default 18), webm 0..63 (default 24); not for gif",
  };
  return {
    type: "object",
    required: ["image"],
    additionalProperties: false,
    description: "Text fields sent empty take the model's default",
    properties,
  };
}

function limitSchema(limit: FieldLimit): Json {
  if (limit.kind === "choice") return { enum: [...limit.values] };
  return {
    type: limit.kind,
    ...(limit.kind === "number" && limit.exclusiveMin
      ? { exclusiveMinimum: limit.min }
      : { minimum: limit.min }),
    maximum: limit.max,
    ...(limit.kind === "integer" && limit.multipleOf ? { multipleOf: limit.multipleOf } : {}),
    ...(limit.kind === "integer" && limit.oneOf ? { enum: [...limit.oneOf] } : {}),
  };
}

function eventSchemas(): Record<string, Json> {
  const object = (properties: Record<string, Json>, description: string) => ({
    type: "object",
    description,
    properties,
  });
  const integer = { type: "integer" };
  const number = { type: "number" };
  return {
    QueuedEvent: object({ position: integer }, "`queued`: first event of every generation"),
    StartedEvent: object(
      {
        model: { type: "string" },
        frames: integer,
        steps: integer,
        width: integer,
        height: integer,
        seed: integer,
      },
      "`started`",
    ),
    StepEvent: object(
      {
        step: integer,
        total: integer,
        sigma: number,
        elapsed_ms: integer,
        eta_ms: integer,
        frames: {
          type: "array",
          items: { type: "string", description: "data:image/png;base64,…" },
          description: "One preview per video frame (with preview=latent)",
        },
      },
      "`step`: after each sampler step",
    ),
    DecodingEvent: object({ chunk: integer, total: integer }, "`decoding`: each VAE chunk"),
    EncodingEvent: object({}, "`encoding`"),
    DoneEvent: object(
      {
        video_url: { type: "string" },
        format: { type: "string" },
        bytes: integer,
        seed: integer,
        timings: { type: "object", additionalProperties: integer },
      },
      "`done`",
    ),
    ErrorEvent: object({ code: { type: "string" }, message: { type: "string" } }, "`error`"),
    CancelledEvent: object({}, "`cancelled`"),
  };
}
