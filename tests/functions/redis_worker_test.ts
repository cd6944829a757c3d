/**
 * The worker loop on the Redis Streams queue when Redis fails it, against a real `redis-server`
 * (started per test on a free port): a job whose keys vanish mid-run, and a Redis outage just as a
 * job finishes. Skipped with a message when `redis-server` is not installed.
 *
 * deno test --allow-read --allow-write --allow-run --allow-env --allow-net=127.0.0.1 \
 *   tests/functions/redis_worker_test.ts
 */

import assert from "node:assert/strict";
import { createClient } from "redis";
import type { JobEvent } from "../../functions/jobs/job_queue.ts";
import { RedisJobQueue, type RedisJobQueueOptions } from "../../functions/jobs/redis_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import type { VideoJobRunner } from "../../pipeline/service/video_job.ts";
import { capturedLog } from "./_captured_log.ts";
import { jobRequest } from "./_job_request.ts";
import { RedisServer, redisTest } from "./_redis_server.ts";
import { fakeRunner, waitFor } from "./_service.ts";

/** Not a real PNG: a fake runner never decodes it. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]);

/** Short reclaim and heartbeat times, generous timeouts for a loaded 2-core machine. */
const FAST = {
  capacity: 8,
  retentionMs: 60_000,
  claimIdleMs: 300,
  heartbeatTtlMs: 1500,
  blockMs: 200,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
} as const;

function connect(
  server: RedisServer,
  options: Partial<RedisJobQueueOptions> = {},
): Promise<RedisJobQueue> {
  return RedisJobQueue.connect({ url: server.url, ...FAST, ...options });
}

/** `promise`, or a failure naming `what` after `ms`: no test waits forever. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every event of job `id` until its stream ends. */
async function collect(queue: RedisJobQueue, id: string, into: JobEvent[] = []) {
  for await (const event of queue.events(id, undefined, AbortSignal.timeout(60_000))) {
    into.push(event);
  }
  return into;
}

redisTest(
  "a job whose keys vanish mid-run ends its stream with error job_lost, and its worker stops working on it",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const queue = await connect(server);
    const inspector = createClient({ url: server.url });
    inspector.on("error", () => {});
    await inspector.connect();
    const log = capturedLog();
    const stepMs = 50;
    const inner = fakeRunner({ stepMs });
    let abortedRuns = 0;
    const run: VideoJobRunner = (image, spec, context) => {
      context.signal.addEventListener("abort", () => abortedRuns++);
      return inner(image, spec, context);
    };
    const loop = new WorkerLoop({ queue, slots: 1, run, log, name: "w", cancelPollMs: 50 });
    loop.start();
    try {
      // 400 steps of 50 ms: 20 s if nothing stopped it.
      const { id } = await api.submit(jobRequest({ numSteps: 400 }), IMAGE);
      const events: JobEvent[] = [];
      const reading = collect(api, id, events);
      await waitFor(() => events.some((e) => e.type === "step"), "a step", 20_000);
      await inspector.sendCommand(["FLUSHALL"]); // as an eviction or an operator would

      await bounded(reading, 15_000, "the stream of the vanished job");
      assert.deepEqual(events.at(-1)?.data, {
        code: "job_lost",
        message: events.at(-1)?.data.message,
      });
      assert.equal(events.at(-1)?.type, "error");
      await waitFor(() => loop.busy === 0, "the worker to give the job up", 10_000);
      assert.equal(abortedRuns, 1, "the runner's signal was aborted");
      const lost = log.lines.find((line) => line.event === "job_lost");
      assert.equal(lost?.generation, id);
      const steps = events.filter((e) => e.type === "step").length;
      assert.ok(steps < 400, `${steps} steps`);

      // The worker goes on with the next job.
      const next = await api.submit(jobRequest({ numSteps: 2 }), IMAGE);
      const after = await bounded(collect(api, next.id), 20_000, "the next job");
      assert.equal(after.at(-1)?.type, "done");
    } finally {
      await loop.stop({ drainMs: 5000, cancelAfterMs: 0 });
      await Promise.all([api.close(), queue.close()]);
      inspector.destroy();
    }
  },
);

redisTest(
  "a Redis outage as a job finishes: its ending is retried until Redis is back, and the job is neither rerun nor lost",
  async () => {
    await using server = await RedisServer.start({ persistent: true });
    const api = await connect(server);
    const a = await connect(server); // finishes its job while Redis is away
    const b = await connect(server); // would reclaim a job that looks lost
    const logA = capturedLog();
    const inner = fakeRunner({ bytes: 5000 });
    // Longer than claimIdleMs and the heartbeat TTL: without its heartbeat the job looks lost.
    const outageMs = 3000;
    let outages = 0;
    let stopped = false;
    let back: Promise<void> | undefined;
    const runA: VideoJobRunner = async (image, spec, context) => {
      const result = await inner(image, spec, context);
      if (outages++ === 0) {
        await server.stop();
        back = new Promise((resolve) => setTimeout(resolve, outageMs)).then(() => server.restart());
        stopped = true;
      }
      return result;
    };
    const loopA = new WorkerLoop({ queue: a, slots: 1, run: runA, log: logA, name: "a" });
    const loopB = new WorkerLoop({ queue: b, slots: 1, run: inner, log: capturedLog(), name: "b" });
    try {
      const { id } = await api.submit(jobRequest({ numSteps: 3 }), IMAGE);
      loopA.start();
      await waitFor(() => stopped, "the run to end and Redis to stop", 20_000);
      loopB.start(); // waiting to take or reclaim while Redis is away
      await bounded(back!, 20_000, "Redis to come back");
      await waitFor(
        async () => (await api.get(id).catch(() => undefined))?.status === "done",
        "the job recorded done",
        30_000,
      );
      // Long enough for a reclaim to have happened (claimIdleMs 300 ms, heartbeat TTL 1.5 s).
      await new Promise((resolve) => setTimeout(resolve, 3000));

      const record = await api.get(id);
      assert.equal(record?.status, "done");
      assert.equal(record.attempts, 1, "run once");
      assert.equal(record.worker, "a-0");
      const events = await bounded(collect(api, id), 10_000, "the stream");
      const types = events.map((e) => e.type);
      assert.deepEqual(types.filter((t) => t === "started"), ["started"], JSON.stringify(types));
      assert.equal(types.at(-1), "done");
      assert.ok(!events.some((e) => e.data.reason === "worker_lost"), JSON.stringify(events));
      const video = await api.getVideo(id);
      assert.equal(video?.bytes.length, 5000);
      assert.deepEqual(video.bytes.subarray(0, 4), Uint8Array.of(0, 1, 2, 3));
      assert.deepEqual(await api.stats(), { queued: 0, running: 0 });
      assert.ok(logA.lines.some((l) => l.event === "finish_retrying"), "the ending was retried");
      assert.ok(logA.lines.some((l) => l.event === "job_done"));
    } finally {
      await Promise.all([
        loopA.stop({ drainMs: 5000, cancelAfterMs: 0 }),
        loopB.stop({ drainMs: 5000, cancelAfterMs: 0 }),
      ]);
      await Promise.all([api.close(), a.close(), b.close()]);
    }
  },
);
