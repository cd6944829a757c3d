/**
 * Probes and metrics, served without a token: `/healthz` (the process answers), `/readyz` (the
 * models are loaded, the store answers and the service is not draining; with the provider in use
 * and, as `provider_skipped`, each provider `ORT_PROVIDER=auto` skipped and why) and `/metrics`
 * (Prometheus text).
 *
 * @module
 */

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ReadinessSchema } from "../api_schemas.ts";
import type { SkippedProvider } from "../../pipeline/runtime/provider.ts";
import type { JobQueue } from "../jobs/job_queue.ts";
import { type Metrics, METRICS_CONTENT_TYPE } from "../metrics.ts";

/** What the probes need. */
export interface HealthRoutesDeps {
  readonly queue: JobQueue;
  readonly metrics: Metrics;
  /** True once the models are loaded (and while the inference worker is alive). */
  readonly inferenceReady: () => boolean;
  readonly provider: string | (() => string);
  /** Providers `ORT_PROVIDER=auto` tried and skipped, with the reason (shown by `/readyz`). */
  readonly providerSkipped?: () => readonly SkippedProvider[];
  readonly modelName: string;
  readonly draining: () => boolean;
}

/** The routes, mounted at `/`; documented beside their handlers. */
export function healthRoutes(deps: HealthRoutesDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  for (const route of Object.values(ROUTE_DOCS)) app.openAPIRegistry.registerPath(route);

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  const provider = () => typeof deps.provider === "function" ? deps.provider() : deps.provider;

  app.get("/readyz", async (c) => {
    const store = await deps.queue.ready().catch(() => false);
    const status = deps.draining()
      ? "draining"
      : !deps.inferenceReady()
      ? "loading"
      : !store
      ? "store_unavailable"
      : "ready";
    const skipped = deps.providerSkipped?.() ?? [];
    return c.json(
      {
        status,
        provider: provider(),
        ...(skipped.length > 0 ? { provider_skipped: skipped } : {}),
        model: deps.modelName,
        ...(await deps.queue.stats().catch(() => ({}))),
      },
      status === "ready" ? 200 : 503,
    );
  });

  app.get("/metrics", async (c) => {
    const text = deps.metrics.render(await deps.queue.stats(), {
      provider: provider(),
      model: deps.modelName,
    });
    return c.body(text, 200, { "Content-Type": METRICS_CONTENT_TYPE });
  });

  return app;
}

/** The OpenAPI description of the routes above (no token: `security: []`). */
const ROUTE_DOCS = {
  healthz: createRoute({
    method: "get",
    path: "/healthz",
    operationId: "getHealth",
    summary: "Liveness: the process answers",
    security: [],
    responses: {
      200: {
        description: "Alive",
        content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
      },
    },
  }),
  readyz: createRoute({
    method: "get",
    path: "/readyz",
    operationId: "getReadiness",
    summary: "Readiness: models loaded, store answering, not draining",
    security: [],
    responses: {
      200: { description: "Ready", content: { "application/json": { schema: ReadinessSchema } } },
      503: {
        description: "Loading, draining or the store is unavailable",
        content: { "application/json": { schema: ReadinessSchema } },
      },
    },
  }),
  metrics: createRoute({
    method: "get",
    path: "/metrics",
    operationId: "getMetrics",
    summary: "Prometheus metrics",
    security: [],
    responses: {
      200: {
        description: "svd_queue_depth, svd_jobs_running, svd_jobs_total{outcome}, " +
          "svd_step_seconds, svd_generation_seconds, svd_provider_info{provider}",
        content: { "text/plain": { schema: { type: "string" } } },
      },
    },
  }),
};
