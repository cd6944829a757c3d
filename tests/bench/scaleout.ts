/**
 * Scale-out benchmark (needs `redis-server`). Two figures:
 *
 * 1. **Throughput**: `main.ts` as one `ROLE=api` process and 1, then 2, `ROLE=worker` processes
 *    (`SLOTS=1` each) on a throwaway redis-server; N jobs on the tiny demo model are posted at once
 *    and the wall time from the first POST to the last `done` (status polled every 50 ms) gives
 *    jobs/s; the ratio is 2 workers ÷ 1 worker. Every process shares this machine's cores.
 * 2. **Added latency per `step` event** of the Redis path against the embedded one: one process
 *    runs the HTTP app and the worker loop over a `MemoryJobQueue`, then over a `RedisJobQueue`,
 *    with a model-free runner that emits a `step` every `--step-ms`. The latency of a step event is
 *    the time from the worker loop's `onEvent` for it to an SSE client on loopback parsing it
 *    (same process, same clock); the figure is mean(Redis) − mean(embedded) over all step events.
 *
 * Usage: deno task bench scaleout [--jobs 8 --steps 30 --frames 4 --latency-jobs 5 --step-ms 20]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createApp } from "../../functions/app.ts";
import type { JobQueue } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { RedisJobQueue } from "../../functions/jobs/redis_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import { Metrics } from "../../functions/metrics.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import type { VideoJobRunner } from "../../pipeline/service/video_job.ts";
import { MainProcess } from "../functions/_main_process.ts";
import { RedisServer, redisServerMissing } from "../functions/_redis_server.ts";
import { SseReader } from "../functions/_sse_client.ts";
import { fakeRunner, inputPng, upload, waitFor } from "../functions/_service.ts";

/** Runs the benchmark. */
export async function scaleout(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      jobs: { type: "string", default: "8" },
      steps: { type: "string", default: "30" },
      frames: { type: "string", default: "4" },
      "latency-jobs": { type: "string", default: "5" },
      "step-ms": { type: "string", default: "20" },
    },
  });
  if (redisServerMissing) throw new Error(`Cannot run: ${redisServerMissing}`);
  const jobs = Number(values.jobs);
  const fields = {
    steps: values.steps,
    num_frames: values.frames,
    width: "128",
    height: "64",
    preview: "none",
  };
  const cores = navigator.hardwareConcurrency;
  console.log(
    `scaleout: ${jobs} jobs, tiny model, ${fields.steps} steps, ${fields.num_frames} frames ` +
      `128×64, ${cores} cores`,
  );
  const perSecond: number[] = [];
  for (const workers of [1, 2]) {
    const wall = await throughput(workers, jobs, fields);
    perSecond.push(jobs / wall);
    console.log(
      `  ${workers} worker${workers > 1 ? "s" : ""}: ${wall.toFixed(2)} s for ${jobs} jobs = ` +
        `${(jobs / wall).toFixed(3)} jobs/s`,
    );
  }
  console.log(`  ratio 2 workers / 1 worker: ${(perSecond[1] / perSecond[0]).toFixed(2)}×`);

  const latencyJobs = Number(values["latency-jobs"]);
  const stepMs = Number(values["step-ms"]);
  const embedded = await stepLatency(undefined, latencyJobs, stepMs);
  await using redis = await RedisServer.start();
  const shared = await stepLatency(redis.url, latencyJobs, stepMs);
  console.log(
    `step-event latency (worker onEvent → SSE client, ${embedded.count} step events each, ` +
      `${stepMs} ms steps): embedded mean ${embedded.mean.toFixed(2)} ms (p95 ${
        embedded.p95.toFixed(2)
      }), Redis mean ${shared.mean.toFixed(2)} ms (p95 ${shared.p95.toFixed(2)}); ` +
      `added by Redis ${(shared.mean - embedded.mean).toFixed(2)} ms per step event`,
  );
}

/** Seconds from the first POST to the last job done, with `workers` worker processes. */
async function throughput(
  workers: number,
  jobs: number,
  fields: Record<string, string>,
): Promise<number> {
  await using redis = await RedisServer.start();
  const env = { REDIS_URL: redis.url, QUEUE_SIZE: String(jobs + 4), SLOTS: "1" };
  const processes = [
    new MainProcess({ ...env, ROLE: "api" }),
    ...Array.from({ length: workers }, () => new MainProcess({ ...env, ROLE: "worker" })),
  ];
  try {
    const urls = await Promise.all(processes.map((p) => p.url()));
    await Promise.all(urls.map((url) =>
      waitFor(
        async () => {
          const response = await fetch(`${url}/readyz`);
          await response.body?.cancel();
          return response.ok;
        },
        `${url}/readyz`,
        120_000,
      )
    ));
    const api = urls[0];
    const png = await inputPng();
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: jobs }, async (_, i) => {
      const response = await fetch(`${api}/v1/generations`, {
        method: "POST",
        body: upload(png, { ...fields, seed: String(i + 1) }),
      });
      const body = await response.json();
      if (response.status !== 202) throw new Error(`POST: ${JSON.stringify(body)}`);
      return body.id as string;
    }));
    const pending = new Set(ids);
    await waitFor(
      async () => {
        for (const id of [...pending]) {
          const status = (await (await fetch(`${api}/v1/generations/${id}`)).json()).status;
          if (status === "done") pending.delete(id);
          else if (status === "error" || status === "cancelled") throw new Error(`job ${status}`);
        }
        return pending.size === 0;
      },
      `${jobs} jobs done`,
      600_000,
    );
    return (performance.now() - started) / 1000;
  } finally {
    for (const p of processes) await p[Symbol.asyncDispose]();
  }
}

/** Step-event latencies (ms) over `jobs` sequential jobs; Redis when `url` is set. */
async function stepLatency(
  url: string | undefined,
  jobs: number,
  stepMs: number,
): Promise<{ mean: number; p95: number; count: number }> {
  const { manifest } = await readModelDirectory(await ensureDemoModel());
  const options = { capacity: 16, retentionMs: 60_000 };
  const queue: JobQueue = url
    ? await RedisJobQueue.connect({ url, ...options })
    : new MemoryJobQueue(options);
  const emitted = new Map<string, number>(); // `${seed}/${step}` → performance.now()
  const inner = fakeRunner({ stepMs });
  const run: VideoJobRunner = (image, spec, context) =>
    inner(image, spec, {
      ...context,
      onEvent: (event) => {
        if (event.type === "step") emitted.set(`${spec.params.seed}/${event.step}`, now());
        context.onEvent(event);
      },
    });
  const metrics = new Metrics();
  const loop = new WorkerLoop({ queue, slots: 1, run });
  const imagePool = new ImagePool({ workers: 1 });
  const app = createApp({
    queue,
    model: { name: manifest.name, sampling: manifest.config.sampling },
    metrics,
    provider: "none",
    inferenceReady: () => true,
    maxUploadBytes: 1 << 24,
    maxPixels: 16e6,
    imagePool,
    heartbeatMs: 15_000,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  loop.start();
  const latencies: number[] = [];
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const png = await inputPng();
    for (let seed = 1; seed <= jobs; seed++) {
      const response = await fetch(`${base}/v1/generations`, {
        method: "POST",
        body: upload(png, {
          steps: "50",
          num_frames: "4",
          width: "128",
          height: "64",
          preview: "none",
          seed: String(seed),
        }),
      });
      const { id } = await response.json();
      const sse = new SseReader(await fetch(`${base}/v1/generations/${id}/events`));
      for (let event = await sse.next(); event; event = await sse.next()) {
        if (event.event === "step") {
          latencies.push(now() - emitted.get(`${seed}/${event.data.step}`)!);
        }
      }
    }
  } finally {
    await loop.stop({ drainMs: 5000 });
    await server.shutdown();
    await queue.close();
    await imagePool.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    p95: latencies[Math.floor(latencies.length * 0.95)],
    count: latencies.length,
  };
}

/** Milliseconds since the time origin (shared by emitter and reader: one process). */
function now(): number {
  return performance.now();
}
