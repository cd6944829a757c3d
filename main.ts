/**
 * The service: `deno task start`. Reads the environment (see `functions/server_config.ts`), loads
 * the model once (`MODEL_DIR`, else the tiny demo model), and serves the HTTP function with an
 * in-process job queue and `SLOTS` worker slots. `/readyz` answers 503 until the model is loaded.
 *
 * With `REDIS_URL` the queue is the Redis Streams one, shared by every instance, and `ROLE` picks
 * what this process does (the HTTP handlers and the worker loop are the same code in every mode):
 *
 * - `all` (default): HTTP and worker, as above.
 * - `api`: the HTTP function only. It loads no model (it reads the model's `model.json` for its
 *   name and sampling defaults) and is ready when Redis answers.
 * - `worker`: `SLOTS` worker slots taking jobs from Redis; it serves only `/healthz`, `/readyz`
 *   (model loaded and Redis answering) and `/metrics` on `PORT`.
 *
 * On SIGTERM (or SIGINT) it drains: new generations get 503, running ones may finish until
 * `DRAIN_SECONDS` (those still running near the end are cancelled — or, with Redis, handed back to
 * the queue to run again on another worker, since a job is acknowledged only when done), queued
 * ones are cancelled (with Redis they stay queued for the other instances), then it exits 0. It
 * logs one JSON line on stdout at start, when ready, and at shutdown.
 *
 * The converter that used to live here is `deno task convert`.
 *
 * @module
 */

import { Hono } from "hono";
import { createApp } from "./functions/app.ts";
import { errorResponse, routeNotFound } from "./functions/errors.ts";
import type { JobQueue } from "./functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "./functions/jobs/memory_job_queue.ts";
import { RedisJobQueue } from "./functions/jobs/redis_job_queue.ts";
import { type LogFields, WorkerLoop } from "./functions/jobs/worker_loop.ts";
import { Metrics } from "./functions/metrics.ts";
import { healthRoutes } from "./functions/routes/health.ts";
import { readServerConfig, type ServerConfig } from "./functions/server_config.ts";
import { ensureDemoModel } from "./pipeline/cli/demo_model.ts";
import { InferenceClient, type Provider, readModelDirectory } from "./pipeline/runtime/mod.ts";
import { resolveProvider } from "./pipeline/runtime/provider.ts";
import { InferenceEngine } from "./pipeline/service/inference_engine.ts";
import { videoJobRunner } from "./pipeline/service/video_job.ts";

/** One JSON line on stdout. */
function log(fields: LogFields): void {
  console.log(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** Runs the service until a shutdown signal; see the module doc. */
export async function main(config: ServerConfig): Promise<void> {
  const { role } = config;
  const serves = role !== "worker"; // the HTTP function
  const works = role !== "api"; // the worker loop and the model
  const modelDir = config.modelDir ?? await ensureDemoModel();
  // The API reads only model.json (name and sampling defaults), not the graphs.
  const { manifest, dir } = await readModelDirectory(modelDir, works ? {} : { graphs: [] });
  const modelConfig = manifest.config;
  const metrics = new Metrics();
  const queueOptions = {
    capacity: config.slots + config.queueSize,
    retentionMs: config.retentionSeconds * 1000,
    // A slot frees up after about one generation.
    retryAfterSeconds: () => Math.ceil(metrics.meanGenerationSeconds ?? 10),
  };
  const shared = config.redisUrl !== undefined;
  const queue: JobQueue = config.redisUrl === undefined
    ? new MemoryJobQueue(queueOptions)
    : await connectRedis(config.redisUrl, {
      ...queueOptions,
      claimIdleMs: config.redisClaimIdleMs,
    });
  // ORT_PROVIDER is resolved on the first load (auto: CUDA, then CPU; an explicit provider that
  // cannot load fails the start); a restart after a worker crash reuses the provider in use.
  let provider: Provider | undefined;
  const engine = new InferenceEngine(
    async () => {
      if (provider) return await InferenceClient.start({ modelDir: dir, provider });
      const choice = await resolveProvider(
        config.provider,
        (candidate) => InferenceClient.start({ modelDir: dir, provider: candidate }),
        { log: (message) => log({ event: "provider", message }) },
      );
      provider = choice.provider;
      return choice.value;
    },
    (notice) => {
      if (notice.type !== "loaded" || notice.restart) log({ event: "inference", ...notice });
    },
  );
  let draining = false;
  const app = serves
    ? createApp({
      queue,
      model: { name: manifest.name, sampling: modelConfig.sampling },
      metrics,
      provider: () => works ? provider ?? `${config.provider} (loading)` : "none (api role)",
      inferenceReady: () => works ? engine.ready : true,
      apiToken: config.apiToken,
      maxUploadBytes: config.maxUploadBytes,
      maxPixels: config.maxPixels,
      heartbeatMs: config.heartbeatSeconds * 1000,
      draining: () => draining,
      log,
    })
    : workerApp(queue, metrics, {
      provider: () => provider ?? `${config.provider} (loading)`,
      inferenceReady: () => engine.ready,
      modelName: manifest.name,
      draining: () => draining,
    });
  const loop = new WorkerLoop({
    queue,
    slots: config.slots,
    run: videoJobRunner({
      networks: () => engine.acquire(),
      model: { scaleFactor: modelConfig.scaleFactor, ...modelConfig.sampling },
      maxPixels: config.maxPixels,
    }),
    observer: metrics,
    log,
  });

  const started = performance.now();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ hostname, port }) =>
      log({
        event: "start",
        hostname,
        port,
        role,
        queue: shared ? "redis" : "memory",
        model: manifest.name,
        model_dir: dir,
        provider: config.provider,
        slots: config.slots,
        queue_size: config.queueSize,
        auth: config.apiToken !== undefined,
      }),
  }, app.fetch);

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    const began = performance.now();
    const drainMs = config.drainSeconds * 1000;
    // Whatever hangs, the process is gone by the deadline.
    const deadline = setTimeout(() => {
      log({ event: "shutdown", signal, clean: false, ms: Math.round(performance.now() - began) });
      Deno.exit(0);
    }, drainMs + 1000);
    const running = loop.busy;
    // Most of the window for running jobs; the rest to close streams and connections.
    const finished = await loop.stop({
      drainMs: Math.max(0, drainMs - Math.min(3000, drainMs / 5)),
      // A shared queue hands unfinished jobs back to the other workers instead of cancelling.
      atDeadline: shared ? "release" : "cancel",
    });
    // Embedded: queued jobs are cancelled, so their streams end. Redis: jobs stay for the other
    // instances; open event streams end and their clients resume elsewhere with Last-Event-ID.
    await queue.close();
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 2000))]);
    await engine.close().catch(() => {});
    clearTimeout(deadline);
    log({
      event: "shutdown",
      signal,
      clean: finished,
      running_at_signal: running,
      ms: Math.round(performance.now() - began),
    });
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void shutdown(signal));
  }

  if (!works) {
    log({ event: "ready", role, model: manifest.name, load_ms: 0 });
    return;
  }
  loop.start();
  try {
    const client = await engine.acquire();
    log({
      event: "ready",
      role,
      model: manifest.name,
      provider: client.provider,
      load_ms: Math.round(performance.now() - started),
    });
  } catch (error) {
    // A model that cannot load now will not load later: fail loudly, let the platform restart.
    log({ event: "load_failed", message: error instanceof Error ? error.message : String(error) });
    Deno.exit(1);
  }
}

/**
 * Connects to Redis, retrying every 2 s while it cannot be reached (each failure logged): a
 * service that starts before its Redis comes up by itself once Redis answers.
 */
async function connectRedis(
  url: string,
  options: {
    capacity: number;
    retentionMs: number;
    claimIdleMs: number;
    retryAfterSeconds: () => number;
  },
): Promise<RedisJobQueue> {
  for (let attempt = 1;; attempt++) {
    try {
      return await RedisJobQueue.connect({
        url,
        ...options,
        // A dead worker's heartbeat is gone well before its job may be reclaimed.
        heartbeatTtlMs: Math.min(15_000, Math.max(50, options.claimIdleMs / 2)),
      });
    } catch (error) {
      log({
        event: "store_unavailable",
        attempt,
        message: error instanceof Error ? error.message : String(error),
      });
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

/** The worker role's HTTP surface: `/healthz`, `/readyz` and `/metrics` only. */
function workerApp(
  queue: JobQueue,
  metrics: Metrics,
  deps: {
    provider: () => string;
    inferenceReady: () => boolean;
    modelName: string;
    draining: () => boolean;
  },
): Hono {
  const app = new Hono();
  app.notFound(routeNotFound(" (a worker serves only the probes)"));
  app.onError((error) => errorResponse(error));
  app.route("/", healthRoutes({ queue, metrics, ...deps }));
  return app;
}

if (import.meta.main) {
  // The service keeps serving after any failure; a stray rejection is logged, not fatal.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log({ event: "unhandled_rejection", error: String(event.reason) });
  });
  try {
    await main(readServerConfig((name) => Deno.env.get(name)));
  } catch (error) {
    log({ event: "start_failed", message: error instanceof Error ? error.message : String(error) });
    Deno.exit(1);
  }
}
