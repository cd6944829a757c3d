/**
 * The HTTP function: a Hono app over a {@linkcode JobQueue}. It validates uploads, queues them,
 * streams job events and serves results; it runs no inference itself (the worker loop does) and
 * holds no state of its own, so several instances can share one queue.
 *
 * | route | |
 * |---|---|
 * | `POST /v1/generations` | queue a generation (202 JSON, or its event stream) |
 * | `GET /v1/generations/:id` | status |
 * | `GET /v1/generations/:id/events` | event stream, resumable with `Last-Event-ID` |
 * | `GET /v1/generations/:id/video` | the clip, with byte ranges |
 * | `DELETE /v1/generations/:id` | cancel |
 * | `GET /healthz`, `/readyz`, `/metrics` | probes and Prometheus metrics (no token) |
 * | `GET /openapi.json` | the OpenAPI 3.1 document, from the routes' own descriptions |
 * | `GET /` | the demo page (static files; no token: it holds no data and asks for the token) |
 *
 * @example
 * ```ts
 * import { createApp } from "./functions/app.ts";
 * const app = createApp({ queue, model, metrics, heartbeatMs: 15_000, ... });
 * Deno.serve({ port: 8000 }, app.fetch);
 * ```
 *
 * @module
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { Hono } from "hono";
import type { BlankEnv } from "hono/types";
import type { SkippedProvider } from "../pipeline/runtime/provider.ts";
import { routeNotFound, toHttpError } from "./errors.ts";
import type { JobQueue } from "./jobs/job_queue.ts";
import { getLog, type Log } from "./logging.ts";
import type { Metrics } from "./metrics.ts";
import { bearerAuth } from "./middleware/bearer_auth.ts";
import { closeUnreadBody } from "./middleware/close_unread_body.ts";
import { requestLog } from "./middleware/request_log.ts";
import type { UploadModel } from "./multipart.ts";
import { DEMO_PATHS, demoRoutes } from "./routes/demo.ts";
import {
  generationRoutes,
  type ImageChecker,
  webhookDocs,
  type WebhookTargets,
} from "./routes/generations.ts";
import type { JobAdmission } from "./job_admission.ts";
import { healthRoutes } from "./routes/health.ts";
import { serveOpenApi } from "./routes/openapi.ts";

/** Everything the app uses; `main.ts` wires the real ones, tests fakes. */
export interface AppDeps {
  readonly queue: JobQueue;
  /** The loaded model: its name and sampling defaults. */
  readonly model: UploadModel;
  readonly metrics: Metrics;
  /** Execution provider in use (or the setting while loading), for `/readyz` and `svd_provider_info`. */
  readonly provider: string | (() => string);
  /** Providers `ORT_PROVIDER=auto` skipped and why, for `/readyz` (default: none). */
  readonly providerSkipped?: () => readonly SkippedProvider[];
  /** True once the models are loaded. */
  readonly inferenceReady: () => boolean;
  /** Bearer token; undefined = no auth. */
  readonly apiToken?: string;
  readonly maxUploadBytes: number;
  readonly maxPixels: number;
  /**
   * Checks every uploaded image whole, off the main thread, before its job is queued: the
   * service's `ImagePool` (created once in `main.ts`, closed at shutdown).
   */
  readonly imagePool: ImageChecker;
  /** Uploads read at once, at most (`MAX_CONCURRENT_UPLOADS`; default 16). */
  readonly maxConcurrentUploads?: number;
  /** Longest wait for an upload's next bytes, ms (`BODY_IDLE_SECONDS`; default 15 s). */
  readonly bodyIdleMs?: number;
  /** Longest time to receive a whole upload, ms (`BODY_TIMEOUT_SECONDS`; default 120 s). */
  readonly bodyTimeoutMs?: number;
  /**
   * Jobs the queue holds, queued and running (`SLOTS + QUEUE_SIZE`): with it, a full queue is
   * refused before the body is read; without, only when the job is submitted.
   */
  readonly queueCapacity?: number;
  /** The queue's suggested wait when it is full, seconds (default 10). */
  readonly retryAfterSeconds?: () => number;
  /** Admission by cost: throws for a job over the service's limits (default: none). */
  readonly admitJob?: JobAdmission;
  /** SSE comment heartbeat interval, in milliseconds. */
  readonly heartbeatMs: number;
  /** `MAX_JOB_SECONDS`: the largest and default `timeout_seconds` (default: no limit). */
  readonly maxJobSeconds?: number;
  /** Where webhooks may go (default: nowhere, the `webhook` field is refused). */
  readonly webhookTargets?: WebhookTargets;
  /** True while shutting down (new generations get 503, `/readyz` 503). Default: never. */
  readonly draining?: () => boolean;
  /** Where each request is logged, unexpected errors included (default: `getLog("http")`). */
  readonly log?: Log;
  /** Where jobs queued, and jobs cancelled while queued, are logged (default: `getLog("job")`). */
  readonly jobLog?: Log;
}

/** Paths served without a token: the probes, the metrics and the demo page's files. */
export const OPEN_PATHS: readonly string[] = ["/healthz", "/readyz", "/metrics", ...DEMO_PATHS];

/** Builds the app; see the module doc. */
export function createApp(deps: AppDeps): Hono {
  const draining = deps.draining ?? (() => false);
  const app = new OpenAPIHono<BlankEnv>();

  // The request log (requestLog) records unexpected errors with their request.
  app.onError((error) => toHttpError(error).getResponse());
  app.notFound(routeNotFound());

  app.use(requestLog(deps.log ?? getLog("http")));
  // A body left unread (refused early, cut off, timed out) closes its connection.
  app.use(closeUnreadBody());
  app.use(bearerAuth({ token: deps.apiToken, open: OPEN_PATHS }));
  app.route("/", demoRoutes());
  app.route("/", healthRoutes({ ...deps, modelName: deps.model.name, draining }));
  app.route("/v1/generations", generationRoutes({ ...deps, draining }));
  app.openAPIRegistry.registerWebhook(webhookDocs(deps));
  serveOpenApi(app);
  return app;
}
