/**
 * The service: `deno task start`. Reads the environment (see `functions/server_config.ts`), loads
 * the model once (`MODEL_DIR`, else the tiny demo model), and serves the HTTP function with an
 * in-process job queue and `SLOTS` worker slots. `/readyz` answers 503 until the model is loaded.
 *
 * On SIGTERM (or SIGINT) it drains: new generations get 503, running ones may finish until
 * `DRAIN_SECONDS` (those still running near the end are cancelled), queued ones are cancelled,
 * then it exits 0. It logs one JSON line on stdout at start, when ready, and at shutdown.
 *
 * The converter that used to live here is `deno task convert`.
 *
 * @module
 */

import { createApp } from "./functions/app.ts";
import { MemoryJobQueue } from "./functions/jobs/memory_job_queue.ts";
import { type LogFields, WorkerLoop } from "./functions/jobs/worker_loop.ts";
import { Metrics } from "./functions/metrics.ts";
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
  const modelDir = config.modelDir ?? await ensureDemoModel();
  const { manifest, dir } = await readModelDirectory(modelDir);
  const modelConfig = manifest.config;
  const metrics = new Metrics();
  const queue = new MemoryJobQueue({
    capacity: config.slots + config.queueSize,
    retentionMs: config.retentionSeconds * 1000,
    // A slot frees up after about one generation.
    retryAfterSeconds: () => Math.ceil(metrics.meanGenerationSeconds ?? 10),
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
  const app = createApp({
    queue,
    model: { name: manifest.name, sampling: modelConfig.sampling },
    metrics,
    provider: () => provider ?? `${config.provider} (loading)`,
    inferenceReady: () => engine.ready,
    apiToken: config.apiToken,
    maxUploadBytes: config.maxUploadBytes,
    maxPixels: config.maxPixels,
    heartbeatMs: config.heartbeatSeconds * 1000,
    draining: () => draining,
    log,
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
    });
    await queue.close(); // queued jobs are cancelled, so their streams end
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

  loop.start();
  try {
    const client = await engine.acquire();
    log({
      event: "ready",
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
