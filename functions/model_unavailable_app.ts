/**
 * What an `api`-role process serves while it has no model to check requests against (none
 * published yet, or the published one disagrees with its `MODEL_DIR`; `published_model_watch.ts`):
 * `/healthz` 200 (the process is alive), `/readyz` 503 with the reason, `/metrics`, and 503
 * `model_unavailable` with the reason and `Retry-After` for everything else. `main.ts` swaps in the
 * full app once a usable model is published.
 *
 * @module
 */

import { Hono } from "hono";
import { HttpError, toHttpError } from "./errors.ts";
import type { JobQueue } from "./jobs/job_queue.ts";
import { getLog, type Log } from "./logging.ts";
import type { Metrics } from "./metrics.ts";
import { requestLog } from "./middleware/request_log.ts";
import { healthRoutes } from "./routes/health.ts";

/** What {@linkcode modelUnavailableApp} needs. */
export interface ModelUnavailableDeps {
  readonly queue: JobQueue;
  readonly metrics: Metrics;
  /** `waiting_for_model` or `model_mismatch`: the `/readyz` status. */
  readonly status: "waiting_for_model" | "model_mismatch";
  /** Why, in words (the `/readyz` message and the error message). */
  readonly message: string;
  readonly draining: () => boolean;
  /** Where each request is logged (default: `getLog("http")`). */
  readonly log?: Log;
}

/** Seconds a refused client is asked to wait: a worker publishes its model when it starts. */
const RETRY_AFTER_SECONDS = 10;

/** The app; see the module doc. */
export function modelUnavailableApp(deps: ModelUnavailableDeps): Hono {
  const app = new Hono();
  app.onError((error) => toHttpError(error).getResponse());
  app.use(requestLog(deps.log ?? getLog("http")));
  app.get("/readyz", async (c) =>
    c.json({
      status: deps.draining() ? "draining" : deps.status,
      message: deps.message,
      provider: "none (api role)",
      ...(await deps.queue.stats().catch(() => ({}))),
    }, 503));
  app.route(
    "/",
    healthRoutes({
      ...deps,
      provider: "none (api role)",
      inferenceReady: () => false,
      modelName: "(none)",
    }),
  );
  app.all("*", () => {
    throw new HttpError(503, "model_unavailable", deps.message, {
      headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
    });
  });
  return app;
}
