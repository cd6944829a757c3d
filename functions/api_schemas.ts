/**
 * The API's data as zod schemas, named as the OpenAPI document's components (`@hono/zod-openapi`
 * turns them into JSON Schema): the upload and the status `params` are made from the request
 * declaration (`pipeline/request/fields.ts`), so `/openapi.json` (and the demo page, which reads
 * its limits there) says exactly what `parseRequest` accepts; the rest describes the responses
 * and the events of a generation's stream.
 *
 * @module
 */

import { z } from "@hono/zod-openapi";
import {
  declarationOf,
  fieldsOn,
  jsonSchemaOf,
  REQUEST_FIELDS,
  SAMPLING_NAMES,
  WEBHOOK_EVENTS,
} from "../pipeline/request/mod.ts";
import type { UploadModel } from "./multipart.ts";

/**
 * A request field's schema with its label, description and (where known) default. zod's own
 * JSON Schema of the field is laid over the integration's output, which leaves out some checks
 * (`multipleOf`). The schema is cloned first: zod 4 gives a schema its methods when it is made,
 * and the declaration's may have been made before `@hono/zod-openapi` added `.openapi()`.
 */
function fieldSchema(name: keyof typeof REQUEST_FIELDS, model: UploadModel): z.ZodType {
  const field = declarationOf(name);
  const fromModel: Record<string, unknown> = { ...model.sampling, model: model.name };
  const value = (SAMPLING_NAMES as readonly string[]).includes(name) || name === "model"
    ? fromModel[name]
    : field.default;
  return field.schema.clone().openapi({
    ...jsonSchemaOf(field),
    title: field.title,
    description: field.description,
    ...(value === undefined || value === null ? {} : { default: value }),
  });
}

/**
 * `POST /v1/generations`' multipart body: the image and every request field the HTTP surface
 * has, with the loaded model's defaults. Text fields sent empty take the default.
 */
export function uploadSchema(model: UploadModel): z.ZodType {
  const fields = Object.fromEntries(
    fieldsOn("http").map((name) => [REQUEST_FIELDS[name].key, fieldSchema(name, model).optional()]),
  );
  return z.object({
    image: z.string().meta({
      contentMediaType: "application/octet-stream",
      description: "PNG, JPEG or WebP (told by its magic bytes), at most MAX_PIXELS pixels",
    }),
    ...fields,
  }).strict().openapi("GenerationUpload", {
    description: "Text fields sent empty take the default (the loaded model's, for sampling)",
  });
}

/** The status JSON's `params`: the request under the API's names, every default filled. */
export function paramsSchema(model: UploadModel): z.ZodType {
  return z.object(Object.fromEntries(
    fieldsOn("http").map((name) => {
      const schema = fieldSchema(name, model);
      const optional = (declarationOf(name) as { optional?: boolean }).optional;
      return [REQUEST_FIELDS[name].key, optional ? schema.optional() : schema];
    }),
  )).openapi("GenerationParams", { description: "The request, every default filled" });
}

/** `{error: {code, message, field?, allowed?}}`: every error response. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ description: "Stable, machine-readable: `invalid_parameter`, …" }),
    message: z.string(),
    field: z.string().optional().openapi({ description: "The request field at fault" }),
    allowed: z.string().optional().openapi({ description: "Its allowed values, in words" }),
  }),
}).openapi("Error");

/** A failed job's `error` (in its status and its `error` event). */
export const JobErrorSchema = z.object({
  code: z.string().openapi({
    description: "Stable: `deadline_exceeded` (past timeout_seconds), `worker_lost`, " +
      "`job_lost`, `encoding_failed`, `inference_worker_crashed`, …",
  }),
  message: z.string(),
}).openapi("JobError");

/** One webhook delivery in the status JSON. */
export const WebhookDeliverySchema = z.object({
  id: z.string().openapi({ description: "The webhook-id header, the same at every attempt" }),
  event: z.enum(WEBHOOK_EVENTS),
  state: z.enum(["pending", "delivered", "failed"]).openapi({
    description: "pending: to be tried (again); delivered: a 2xx; failed: given up",
  }),
  attempts: z.array(z.object({
    at: z.iso.datetime(),
    ms: z.int().min(0),
    status: z.int().optional().openapi({ description: "The receiver's HTTP status" }),
    error: z.string().optional().openapi({
      description: "Why there was no status: refused address, timeout, connection error",
    }),
  })).openapi({ description: "The first and the latest 29 attempts" }),
  next_attempt_at: z.iso.datetime().optional(),
}).openapi("WebhookDelivery");

/** The 202 answer to a submission. */
export const AcceptedSchema = z.object({
  id: z.string(),
  status: z.literal("queued"),
  status_url: z.string(),
  events_url: z.string(),
  video_url: z.string(),
}).openapi("GenerationAccepted");

/** The status JSON's fields (the status, and a webhook's body). */
function statusFields(model: UploadModel) {
  return {
    id: z.string(),
    status: z.enum(["queued", "running", "done", "error", "cancelled"]),
    position: z.int().min(1).optional().openapi({ description: "While queued" }),
    created_at: z.iso.datetime(),
    started_at: z.iso.datetime().optional(),
    finished_at: z.iso.datetime().optional(),
    deadline_at: z.iso.datetime().optional().openapi({
      description: "created_at + timeout_seconds, when it has one",
    }),
    params: paramsSchema(model),
    error: JobErrorSchema.optional(),
    events_url: z.string(),
    video_url: z.string().optional().openapi({ description: "When done" }),
    video: z.object({ format: z.string(), bytes: z.int(), content_type: z.string() }).optional(),
  };
}

/** `GET /v1/generations/:id` (and `DELETE`'s answer). */
export function statusSchema(model: UploadModel): z.ZodType {
  return z.object({
    ...statusFields(model),
    cancel_requested: z.boolean().optional(),
    webhook_deliveries: z.array(WebhookDeliverySchema).optional().openapi({
      description: "With a webhook: one per event sent, oldest first",
    }),
  }).openapi("GenerationStatus");
}

/**
 * The body of a webhook delivery: the status JSON as of the event, under the Standard Webhooks
 * `type` and `timestamp`.
 */
export function webhookBodySchema(model: UploadModel): z.ZodType {
  return z.object({
    type: z.enum(WEBHOOK_EVENTS.map((event) => `generation.${event}`) as [string, ...string[]]),
    timestamp: z.iso.datetime().openapi({ description: "When the event happened" }),
    ...statusFields(model),
  }).openapi("GenerationWebhook", {
    description: "The generation's status as of the event (a late `started` still says " +
      "running); its URLs are absolute when the service has PUBLIC_URL",
  });
}

/** `/readyz`. */
export const ReadinessSchema = z.object({
  status: z.enum(["ready", "loading", "draining", "store_unavailable"]),
  provider: z.string(),
  provider_skipped: z.array(z.object({ provider: z.string(), reason: z.string() })).optional()
    .openapi({ description: "Providers `ORT_PROVIDER=auto` skipped, with the reason" }),
  model: z.string(),
  queued: z.int().optional(),
  running: z.int().optional(),
}).openapi("Readiness");

const count = z.int().min(0);

/** The `data` of each event of a generation's stream, by event name. */
export const EVENT_SCHEMAS = {
  queued: z.object({ position: z.int().min(0) }).openapi("QueuedEvent", {
    description: "`queued`: the first event of every generation, then one at each change of " +
      "its position while it waits (not stored: it repeats the id of the event before it)",
  }),
  started: z.object({
    model: z.string(),
    frames: count,
    steps: count,
    width: count,
    height: count,
    seed: count,
  }).openapi("StartedEvent", { description: "`started`: a worker took the job" }),
  step: z.object({
    step: count,
    total: count,
    sigma: z.number(),
    elapsed_ms: z.number(),
    eta_ms: z.number(),
    frames: z.array(z.string().openapi({ description: "data:image/png;base64,…" })).optional()
      .openapi({ description: "One preview per video frame (with preview=latent)" }),
  }).openapi("StepEvent", { description: "`step`: after each sampler step" }),
  decoding: z.object({ chunk: count, total: count }).openapi("DecodingEvent", {
    description: "`decoding`: before each VAE decoder chunk",
  }),
  encoding: z.object({}).openapi("EncodingEvent", { description: "`encoding`: ffmpeg runs" }),
  done: z.object({
    video_url: z.string(),
    format: z.string(),
    bytes: count,
    seed: count,
    width: count,
    height: count,
    frames: count,
    fps: z.number(),
    timings: z.record(z.string(), z.number()).openapi({
      description: "queued_ms, preparing_ms, conditioning_ms, sampling_ms, decoding_ms, " +
        "encoding_ms, total_ms",
    }),
  }).openapi("DoneEvent", { description: "`done`: the clip is ready" }),
  error: JobErrorSchema.openapi("ErrorEvent", { description: "`error`: the job failed" }),
  cancelled: z.object({}).openapi("CancelledEvent", { description: "`cancelled`" }),
} as const;

/**
 * A generation's event stream (`text/event-stream`): the messages in order, each with its `id`
 * (for `Last-Event-ID`), its `event` name and its `data` line's JSON.
 */
export const EventStreamSchema = z.array(
  z.discriminatedUnion(
    "event",
    Object.entries(EVENT_SCHEMAS).map(([event, data]) =>
      z.object({ id: z.string(), event: z.literal(event), data })
    ) as unknown as [z.ZodObject, ...z.ZodObject[]],
  ),
).openapi("GenerationEventStream", {
  description: "Server-sent events: `retry:` once, then per event an `id:`, an `event:` and one " +
    "JSON `data:` line; a `: heartbeat` comment every HEARTBEAT_SECONDS. The stream ends after " +
    "`done`, `error` or `cancelled`.",
});

/** An error response of a route: what it means there, the `Error` body. */
export function errorResponse(description: string) {
  return { description, content: { "application/json": { schema: ErrorSchema } } };
}

/** 401 for the routes behind the bearer token. */
export const UNAUTHORIZED = errorResponse(
  "Missing or wrong bearer token (`unauthorized`), when the service has an API_TOKEN",
);
