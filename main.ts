/**
 * The service: `deno task start`. Reads the environment (see `functions/server_config.ts`), loads
 * the model once (`MODEL_DIR`, else the tiny demo model), and serves the HTTP function with an
 * in-process job queue and `SLOTS` worker slots. `/readyz` answers 503 until the model is loaded.
 *
 * With `REDIS_URL` the queue is the Redis Streams one, shared by every instance, and `ROLE` picks
 * what this process does (the HTTP handlers and the worker loop are the same code in every mode):
 *
 * - `all` (default): HTTP and worker, as above.
 * - `api`: the HTTP function only. It loads no model: it checks requests against the model the
 *   workers publish to Redis (`functions/jobs/published_model.ts`: its `model.json` and the
 *   default `decoding_t` the worker's GPU plan chose), and is ready once one is published and
 *   Redis answers. With `MODEL_DIR` set too, the published model must agree with it (name and
 *   sampling defaults), or the API serves nothing and says why.
 * - `worker`: `SLOTS` worker slots taking jobs from Redis; it serves only `/healthz`, `/readyz`
 *   (model loaded and Redis answering) and `/metrics` on `PORT`. It (and `all`) publishes its
 *   model for the API processes at start.
 *
 * On SIGTERM (or SIGINT, or when the `npx` that launched it exits: `functions/launcher_watch.ts`)
 * it drains: new generations get 503, running ones may finish until
 * `DRAIN_SECONDS` (those still running near the end are cancelled — or, with Redis, handed back to
 * the queue to run again on another worker, since a job is acknowledged only when done), queued
 * ones are cancelled (with Redis they stay queued for the other instances; embedded, their
 * `cancelled` webhooks get their attempt before the exit), then it exits 0.
 *
 * Every role also runs the deadline sweeper (`functions/jobs/deadlines.ts`: queued jobs past their
 * `timeout_seconds` end with `deadline_exceeded`) and, with `WEBHOOK_SECRET`, the webhook
 * dispatcher (`functions/webhooks/`): any instance sends any job's webhooks, each delivery from
 * one instance at a time.
 *
 * It logs one line per event on stdout (`functions/logging.ts`: `LOG_LEVEL`, `LOG_FORMAT`; JSON
 * lines unless stdout is a terminal): start, ready (with the execution provider chosen and why any
 * other was skipped), each request, each job transition, shutdown.
 *
 * The converter that used to live here is `deno task convert`.
 *
 * @module
 */

import { Hono } from "hono";
import { createApp } from "./functions/app.ts";
import { errorResponse, routeNotFound } from "./functions/errors.ts";
import { serveHttp } from "./functions/http_server.ts";
import type { JobAdmission } from "./functions/job_admission.ts";
import { requestLog } from "./functions/middleware/request_log.ts";
import { ConcurrentUploads } from "./functions/middleware/upload_admission.ts";
import type { JobQueue, JobRecord } from "./functions/jobs/job_queue.ts";
import { logQueuedJobCancelled } from "./functions/jobs/job_log.ts";
import { MemoryJobQueue } from "./functions/jobs/memory_job_queue.ts";
import { keepModelPublished } from "./functions/jobs/published_model.ts";
import { RedisJobQueue } from "./functions/jobs/redis_job_queue.ts";
import { WorkerLoop } from "./functions/jobs/worker_loop.ts";
import { DeadlineSweeper } from "./functions/jobs/deadlines.ts";
import { type AddressPolicy, checkWebhookTarget } from "./functions/webhooks/address_guard.ts";
import { MemoryWebhookOutbox } from "./functions/webhooks/memory_webhook_outbox.ts";
import { WebhookDispatcher } from "./functions/webhooks/webhook_dispatcher.ts";
import { watchLauncher } from "./functions/launcher_watch.ts";
import {
  configureLogging,
  errorMessage,
  formatDuration,
  getLog,
  type LogConfig,
  readLogConfig,
} from "./functions/logging.ts";
import { Metrics } from "./functions/metrics.ts";
import { modelUnavailableApp } from "./functions/model_unavailable_app.ts";
import type { UploadModel } from "./functions/multipart.ts";
import { PublishedModelWatch } from "./functions/published_model_watch.ts";
import { healthRoutes } from "./functions/routes/health.ts";
import { readServerConfig, type ServerConfig } from "./functions/server_config.ts";
import { ensureDemoModel } from "./pipeline/cli/demo_model.ts";
import type { SamplingDefaults } from "./pipeline/config/mod.ts";
import { ImagePool } from "./pipeline/image/image_pool.ts";
import type { ModelManifest } from "./pipeline/model_json/mod.ts";
import { serviceDecodingT } from "./pipeline/plan/service_decoding_t.ts";
import { InferenceClient, type Provider, readModelDirectory } from "./pipeline/runtime/mod.ts";
import { modelConstants } from "./pipeline/generate.ts";
import {
  describeProviderChoice,
  resolveProvider,
  type SkippedProvider,
} from "./pipeline/runtime/provider.ts";
import { missingProviderLibraries } from "./pipeline/runtime/provider_libraries.ts";
import { InferenceEngine } from "./pipeline/service/inference_engine.ts";
import {
  checkJobCost,
  type CostProvider,
  type JobCost,
  jobCost,
  type JobLimits,
  type JobShape,
  resolveJobLimits,
} from "./pipeline/service/job_cost.ts";
import { clearStaleTempDirs, ProcessTempDir } from "./pipeline/service/temp_dirs.ts";
import { videoJobRunner } from "./pipeline/service/video_job.ts";

const log = getLog("service");

/** Runs the service until a shutdown signal; see the module doc. */
export async function main(config: ServerConfig): Promise<void> {
  const { role } = config;
  const serves = role !== "worker"; // the HTTP function
  const works = role !== "api"; // the worker loop and the model
  const shared = config.redisUrl !== undefined;
  // The API role (always with Redis) checks requests against the model the workers publish; it
  // reads MODEL_DIR only when given, to check that the two agree, and builds no demo model.
  const modelDir = config.modelDir ?? (works ? await ensureDemoModel() : undefined);
  // The API reads only model.json (name and sampling defaults), not the graphs.
  const local = modelDir === undefined
    ? undefined
    : await readModelDirectory(modelDir, works ? {} : { graphs: [] });
  const decoding = works ? await decideDecodingT(config, local!.manifest) : undefined;
  // Admission by cost (issue 13): the limits every request's cost and planned memory must fit.
  const limits = decoding ? logJobLimits(config, decoding.budgetBytes) : undefined;
  const jobModel = local && {
    config: local.manifest.config,
    precision: local.manifest.precision,
    attention: local.manifest.attention,
  };
  /** A job's cost on the provider in use (the CPU's until the model is loaded). */
  const costOf = (shape: JobShape) => jobCost(shape, jobModel!, provider ?? "cpu", limits!);
  /** `use` of a cost, or `fallback` where the plan cannot say (it then must not fail the job). */
  const fromCost = <T>(shape: JobShape, use: (cost: JobCost) => T, fallback: T): T => {
    try {
      return use(costOf(shape));
    } catch {
      return fallback;
    }
  };
  /**
   * The API role's admission by cost: the published model, planned on `ORT_PROVIDER` (`auto`:
   * a GPU when `GPU_MEMORY_GB` says how much it has, else the CPU), against the limits.
   */
  let apiLimits: JobLimits | undefined;
  const apiAdmission = (manifest: ModelManifest): JobAdmission => {
    const gpuBudgetBytes = config.gpuMemoryGb === undefined
      ? undefined
      : config.gpuMemoryGb * 1024 ** 3;
    apiLimits ??= logJobLimits(config, gpuBudgetBytes);
    const jobLimits = apiLimits;
    const planned: CostProvider = config.provider !== "auto"
      ? config.provider
      : gpuBudgetBytes === undefined
      ? "cpu"
      : "cuda";
    const model = {
      config: manifest.config,
      precision: manifest.precision,
      attention: manifest.attention,
    };
    return (shape) => admit(jobCost(shape, model, planned, jobLimits), jobLimits);
  };
  const metrics = new Metrics();
  /** True while the queue closes at shutdown (the embedded one then cancels its queued jobs). */
  let closingQueue = false;
  const queueOptions = {
    capacity: config.slots + config.queueSize,
    retentionMs: config.retentionSeconds * 1000,
    // A slot frees up after about one generation.
    retryAfterSeconds: () => Math.ceil(metrics.meanGenerationSeconds ?? 10),
    // The worker loop counts the jobs it ran; the queue those it cancelled before any worker.
    // The routes log the cancels they ask for (DELETE, a client leaving); the shutdown's are
    // logged here, while the embedded queue cancels its queued jobs on close.
    onCancelledWhileQueued: (record: JobRecord) => {
      metrics.cancelledWhileQueued();
      if (closingQueue) logQueuedJobCancelled(getLog("job"), record, "shutting down");
    },
  };
  const webhookRetryMs = config.webhookRetrySeconds * 1000;
  const redis = config.redisUrl === undefined ? undefined : await connectRedis(config.redisUrl, {
    ...queueOptions,
    claimIdleMs: config.redisClaimIdleMs,
    // An unsent delivery outlives its retry window by a day, then Redis forgets it.
    webhookTtlMs: webhookRetryMs + 24 * 3_600_000,
  });
  // Embedded: pending deliveries survive a restart only in a spool folder (see its module doc).
  const spool = redis || config.webhookSpoolDir === undefined
    ? undefined
    : await MemoryWebhookOutbox.open({
      dir: config.webhookSpoolDir,
      retentionMs: queueOptions.retentionMs,
    });
  const queue: JobQueue = redis ?? new MemoryJobQueue({ ...queueOptions, webhooks: spool });
  // Every image is checked at the door and prepared for its job in here, off the main thread.
  const imagePool = new ImagePool();
  // The process's MAX_CONCURRENT_UPLOADS, shared by every app built below: the API role builds a
  // new one when the workers publish another model, while uploads to the old one are being read.
  const uploads = new ConcurrentUploads(config.maxConcurrentUploads);
  const sweeper = new DeadlineSweeper({ queue });
  sweeper.start();
  const policy: AddressPolicy = { allowPrivate: config.webhookAllowPrivate };
  const dispatcher = config.webhookKeys === undefined ? undefined : new WebhookDispatcher({
    outbox: queue.webhooks,
    keys: config.webhookKeys,
    policy,
    retryWindowMs: webhookRetryMs,
    publicUrl: config.publicUrl,
  });
  dispatcher?.start();
  if (spool && spool.pending > 0) {
    log.info(`${spool.pending} webhook deliveries left by the last process resume`, {
      event: "webhooks_resumed",
      pending: spool.pending,
    });
  }
  // ORT_PROVIDER is resolved on the first load (auto: CUDA, then CPU; an explicit provider that
  // cannot load fails the start); a restart after a worker crash reuses the provider in use.
  let provider: Provider | undefined;
  let providerSkipped: readonly SkippedProvider[] = [];
  let providerLine = "";
  const dir = local?.dir ?? "";
  const engine = !works ? undefined : new InferenceEngine(
    async () => {
      if (provider) return await InferenceClient.start({ modelDir: dir, provider });
      const choice = await resolveProvider(
        config.provider,
        async (candidate) => {
          // `auto` skips a provider whose files are missing with that short reason, before
          // ONNX Runtime is asked (it would print an error of its own for the attempt).
          const missing = config.provider === "auto"
            ? await missingProviderLibraries(candidate)
            : undefined;
          if (missing !== undefined) throw new Error(missing);
          return await InferenceClient.start({ modelDir: dir, provider: candidate });
        },
        {
          onSkip: ({ provider, reason }, next) =>
            log.debug(`${provider} unavailable, trying ${next}: ${reason}`, {
              event: "provider_skipped",
              provider,
              next,
              reason,
            }),
        },
      );
      provider = choice.provider;
      providerSkipped = choice.skipped;
      providerLine = describeProviderChoice(choice);
      return choice.value;
    },
    (notice) => {
      // The first load is told by the ready line, or by load_failed.
      if (notice.type === "loaded" && !notice.restart) return;
      if (notice.type === "load_failed" && provider === undefined) return;
      const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
      const message = notice.type === "loaded"
        ? `inference process restarted in ${formatDuration(notice.ms)}`
        : notice.type === "worker_stopped"
        ? `inference process stopped (${notice.reason}): ${notice.message}`
        : notice.type === "recycling"
        ? `inference process recycled after a large job: its resident memory grew from ${
          gib(notice.rssBeforeBytes)
        } to ${gib(notice.rssAfterBytes)}`
        : `the model could not be loaded: ${notice.message}`;
      const fields = { event: `inference_${notice.type}`, ...notice };
      if (notice.type === "loaded" || notice.type === "recycling") log.info(message, fields);
      else log.error(message, fields);
    },
  );
  let draining = false;
  const isDraining = () => draining;
  const serviceApp = (model: UploadModel, admitJob: JobAdmission) =>
    createApp({
      queue,
      model,
      metrics,
      provider: () => works ? provider ?? `${config.provider} (loading)` : "none (api role)",
      providerSkipped: () => providerSkipped,
      inferenceReady: () => engine?.ready ?? true,
      apiToken: config.apiToken,
      maxUploadBytes: config.maxUploadBytes,
      maxPixels: config.maxPixels,
      imagePool,
      uploads,
      bodyIdleMs: config.bodyIdleSeconds * 1000,
      bodyTimeoutMs: config.bodyTimeoutSeconds * 1000,
      queueCapacity: queueOptions.capacity,
      retryAfterSeconds: queueOptions.retryAfterSeconds,
      admitJob,
      heartbeatMs: config.heartbeatSeconds * 1000,
      draining: isDraining,
      maxJobSeconds: config.maxJobSeconds,
      webhookTargets: config.webhookKeys === undefined ? undefined : {
        scheme: config.webhookAllowPrivate ? "http" : "https",
        check: (url, signal) => checkWebhookTarget(url, policy, signal),
      },
    });
  // The API role serves once the workers have published their model (and it agrees with
  // MODEL_DIR, when that is set); until then only the probes and 503 model_unavailable.
  const unavailableApp = (status: "waiting_for_model" | "model_mismatch", message: string) =>
    modelUnavailableApp({ queue, metrics, status, message, draining: isDraining });
  let announced = false;
  const watch = works || !redis ? undefined : new PublishedModelWatch({
    read: () => redis.publishedModel(),
    local,
    log,
    onChange: (state) => {
      app = state.kind === "ready"
        ? serviceApp(state.model, apiAdmission(state.published.manifest))
        : unavailableApp(
          state.kind === "mismatch" ? "model_mismatch" : "waiting_for_model",
          state.message,
        );
      if (state.kind === "ready" && !announced) {
        announced = true;
        log.info(`ready: the API for model ${state.model.name} (no model loaded in this role)`, {
          event: "ready",
          role,
          model: state.model.name,
          load_ms: Math.round(performance.now() - started),
        });
      }
    },
  });
  let app: Hono = !serves
    ? workerApp(queue, metrics, {
      provider: () => provider ?? `${config.provider} (loading)`,
      providerSkipped: () => providerSkipped,
      inferenceReady: () => engine!.ready,
      modelName: local!.manifest.name,
      draining: isDraining,
    })
    : works
    ? serviceApp(
      { name: local!.manifest.name, sampling: decoding!.sampling },
      // Admission by cost at the door, on the provider in use (the CPU's until loaded).
      (shape) => admit(costOf(shape), limits!),
    )
    : unavailableApp(
      "waiting_for_model",
      watch!.state.kind === "waiting" ? watch!.state.message : "",
    );
  // Clips are encoded in this process's own temporary folder; what killed processes left goes.
  const temp = works ? await startTempDir() : undefined;
  const defaultSampling = decoding?.sampling;
  const defaultShape: JobShape | undefined = defaultSampling && {
    frames: defaultSampling.numFrames,
    width: defaultSampling.width,
    height: defaultSampling.height,
    steps: defaultSampling.numSteps,
    decodingT: defaultSampling.decodingT,
  };
  const loop = !works ? undefined : new WorkerLoop({
    queue,
    slots: config.slots,
    run: videoJobRunner({
      images: imagePool,
      engine: engine!,
      model: modelConstants(local!.manifest.config),
      maxPixels: config.maxPixels,
      tempDir: temp?.path,
      // The CFG batch is split where only that fits the memory limit (an L4 for SVD-XT).
      unetBatch: (shape) => fromCost(shape, (cost) => cost.unetBatch, "cfg"),
      // Larger than the model's default request by the plan: the memory it leaves is returned.
      largeJob: (shape) =>
        config.inferenceRecycle &&
        fromCost(
          shape,
          (cost) => cost.memoryBytes > 1.2 * costOf(defaultShape!).memoryBytes,
          true,
        ),
    }),
    observer: metrics,
  });
  const modelName = local?.manifest.name ?? "(as the workers publish it)";

  const started = performance.now();
  // node:http, not Deno.serve: a stalled upload's connection must be closable (http_server.ts).
  const server = await serveHttp((request, env) => app.fetch(request, env), {
    hostname: config.host,
    port: config.port,
  });
  {
    const { hostname, port } = server.addr;
    log.info(
      `listening on http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port} ` +
        `(role ${role}, ${shared ? "Redis" : "in-memory"} queue, model ${modelName}, ` +
        `${config.slots} slot${config.slots === 1 ? "" : "s"}${
          config.apiToken !== undefined ? ", token required" : ""
        })${works ? "; loading the model…" : ""}`,
      {
        event: "start",
        hostname,
        port,
        role,
        queue: shared ? "redis" : "memory",
        model: local?.manifest.name ?? null,
        model_dir: local?.dir ?? null,
        provider: config.provider,
        slots: config.slots,
        queue_size: config.queueSize,
        auth: config.apiToken !== undefined,
        webhooks: config.webhookKeys !== undefined,
        max_job_seconds: config.maxJobSeconds ?? null,
      },
    );
  }
  // A worker tells the API processes which model it serves, with its default decoding_t.
  const publication = works && redis
    ? keepModelPublished(redis, {
      manifest: local!.manifest,
      decodingT: decoding!.sampling.decodingT,
      decodingTSource: decoding!.source,
      // HOSTNAME: the pod's name on Kubernetes.
      publisher: [Deno.env.get("HOSTNAME"), `pid ${Deno.pid}`].filter(Boolean).join(" "),
      publishedAt: Date.now(),
    }, log)
    : undefined;

  const shutdown = async (signal: string) => {
    if (draining) return;
    draining = true;
    const began = performance.now();
    const drainMs = config.drainSeconds * 1000;
    const busy = loop?.busy ?? 0;
    // Whatever hangs, the process is gone by the deadline.
    log.info(`${signal}: draining (up to ${config.drainSeconds} s for ${busy} running)`, {
      event: "draining",
      signal,
      running: busy,
      drain_seconds: config.drainSeconds,
    });
    const deadline = setTimeout(() => {
      const ms = Math.round(performance.now() - began);
      log.warning(`stopped after ${formatDuration(ms)}, not cleanly: the drain deadline passed`, {
        event: "shutdown",
        signal,
        clean: false,
        ms,
      });
      Deno.exit(0);
    }, drainMs + 1000);
    watch?.stop();
    publication?.stop();
    // Most of the window for running jobs; the rest to close streams and connections.
    const stopped = await loop?.stop({
      drainMs: Math.max(0, drainMs - Math.min(3000, drainMs / 5)),
      // A shared queue hands unfinished jobs back to the other workers instead of cancelling.
      atDeadline: shared ? "release" : "cancel",
    }) ?? true;
    // Clean: every running job finished on its own.
    const finished = stopped && (loop?.cutShort ?? 0) === 0;
    sweeper.stop();
    if (shared) {
      // Attempts in flight get a moment; the rest wait in Redis for the other instances. The
      // dispatcher uses the queue's connection, so it stops first. Jobs stay for the other
      // instances; open event streams end and their clients resume elsewhere with Last-Event-ID.
      await dispatcher?.stop(2000);
      closingQueue = true;
      await queue.close();
    } else {
      // Queued jobs are cancelled first, so their streams end and their `cancelled` deliveries
      // exist; then the dispatcher attempts what is due within its grace period. What is still
      // pending after it waits in the spool for the next process, or, without one, is lost.
      closingQueue = true;
      await queue.close();
      await dispatcher?.stop(2000, { sendDue: true });
      spool?.close();
    }
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 2000))]);
    server.closeAll();
    await engine?.close().catch(() => {});
    await imagePool.close();
    await temp?.close();
    clearTimeout(deadline);
    const ms = Math.round(performance.now() - began);
    log.info(
      `stopped after ${formatDuration(ms)}${
        finished ? "" : " (running jobs were cancelled or handed back at the deadline)"
      }`,
      { event: "shutdown", signal, clean: finished, running_at_signal: busy, ms },
    );
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void shutdown(signal));
  }
  // Under `npx`, a signal to npx may not reach this process: stop when npx is gone.
  void watchLauncher({
    env: (name) => Deno.env.get(name),
    onGone: (reason) => {
      log.info(`${reason}: stopping`, { event: "launcher_exited", reason });
      void shutdown("launcher exited");
    },
  });

  if (!loop || !engine) {
    await watch?.start();
    return;
  }
  loop.start();
  try {
    const client = await engine.acquire();
    const loadMs = Math.round(performance.now() - started);
    log.info(`ready in ${formatDuration(loadMs)}: model ${modelName}; ${providerLine}`, {
      event: "ready",
      role,
      model: modelName,
      provider: client.provider,
      provider_setting: config.provider,
      ...(providerSkipped.length > 0 ? { provider_skipped: providerSkipped } : {}),
      load_ms: loadMs,
    });
  } catch (error) {
    // A model that cannot load now will not load later: fail loudly, let the platform restart.
    log.error(`the model could not be loaded: ${errorMessage(error)}`, {
      event: "load_failed",
      message: errorMessage(error),
    });
    Deno.exit(1);
  }
}

/**
 * The default `decoding_t` of requests that give none: the largest the GPU's memory plan allows
 * (`pipeline/plan/`), or the model's; logged. Returns the sampling defaults with it.
 */
async function decideDecodingT(
  config: ServerConfig,
  manifest: ModelManifest,
): Promise<{ sampling: SamplingDefaults; source: string; budgetBytes?: number }> {
  const decoding = await serviceDecodingT({
    config: manifest.config,
    precision: manifest.precision,
    attention: manifest.attention,
    provider: config.provider,
    gpuMemoryGb: config.gpuMemoryGb,
  });
  const source = `${decoding.source}${decoding.note ? `: ${decoding.note}` : ""}`;
  const line = `default decoding_t ${decoding.decodingT}${
    decoding.unetBatch === "split" ? ", the CFG batch split into two UNet calls" : ""
  } (${source})`;
  if (decoding.fits === false) log.warning(line, { event: "decoding_t", ...decoding });
  else log.info(line, { event: "decoding_t", ...decoding });
  return {
    sampling: { ...manifest.config.sampling, decodingT: decoding.decodingT },
    source,
    budgetBytes: decoding.budget?.bytes,
  };
}

/** The service's job limits (`MAX_JOB_COST`, `MAX_JOB_MEMORY_GB`), logged once. */
function logJobLimits(config: ServerConfig, gpuBudgetBytes: number | undefined): JobLimits {
  const limits = resolveJobLimits({
    maxJobCost: config.maxJobCost,
    maxJobMemoryGb: config.maxJobMemoryGb,
    provider: config.provider,
    gpuBudgetBytes,
  });
  log.info(
    `job limits: cost ${limits.maxCost.toLocaleString("en-US")} (frames × pixels × steps), ` +
      `planned memory ${
        (limits.maxMemoryBytes / 1024 ** 3).toFixed(2)
      } GiB (${limits.memorySource})`,
    {
      event: "job_limits",
      max_cost: limits.maxCost,
      max_memory_bytes: limits.maxMemoryBytes,
      memory_source: limits.memorySource,
    },
  );
  return limits;
}

/**
 * Clears the temporary folders killed service processes left (logged when there were any) and
 * takes this process's own.
 */
async function startTempDir(): Promise<ProcessTempDir> {
  const { removed } = await clearStaleTempDirs();
  if (removed.length > 0) {
    log.info(
      `removed ${removed.length} temporary folder${
        removed.length === 1 ? "" : "s"
      } left by killed processes`,
      { event: "temp_cleared", removed },
    );
  }
  return await ProcessTempDir.create();
}

/** Admission by cost: throws the `JobLimitError` (422 `job_too_large`) of a job over a limit. */
function admit(cost: JobCost, limits: JobLimits): void {
  const error = checkJobCost(cost, limits);
  if (error) throw error;
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
    webhookTtlMs: number;
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
      log.warning(
        `Redis unavailable (attempt ${attempt}, retrying in 2 s): ${errorMessage(error)}`,
        {
          event: "store_unavailable",
          attempt,
          message: errorMessage(error),
        },
      );
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
    providerSkipped: () => readonly SkippedProvider[];
    inferenceReady: () => boolean;
    modelName: string;
    draining: () => boolean;
  },
): Hono {
  const app = new Hono();
  app.use(requestLog(getLog("http")));
  app.notFound(routeNotFound(" (a worker serves only the probes)"));
  app.onError((error) => errorResponse(error));
  app.route("/", healthRoutes({ queue, metrics, ...deps }));
  return app;
}

if (import.meta.main) {
  const env = (name: string) => Deno.env.get(name);
  let logConfig: LogConfig | undefined;
  let logProblem: unknown;
  try {
    logConfig = readLogConfig(env, Deno.stdout.isTerminal());
  } catch (error) {
    logProblem = error;
  }
  configureLogging(logConfig ?? readLogConfig(() => undefined, Deno.stdout.isTerminal()));
  // The service keeps serving after any failure; a stray rejection is logged, not fatal.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error(`unhandled rejection: ${errorMessage(event.reason)}`, {
      event: "unhandled_rejection",
      error: String(event.reason),
    });
  });
  try {
    let config: ServerConfig | undefined;
    try {
      config = readServerConfig(env);
    } catch (error) {
      if (!logProblem) throw error;
      throw new Error(`${errorMessage(error)}; ${errorMessage(logProblem)}`);
    }
    if (logProblem) throw logProblem;
    await main(config);
  } catch (error) {
    log.error(`cannot start: ${errorMessage(error)}`, {
      event: "start_failed",
      message: errorMessage(error),
    });
    Deno.exit(1);
  }
}
