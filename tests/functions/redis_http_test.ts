/**
 * The HTTP function over the Redis Streams queue, on a real `redis-server` (started per test on a
 * free loopback port), through a real `Deno.serve` on loopback: what a hostile or unlucky client
 * does to Redis mode. Crafted ids never reach a key name (404); a `Last-Event-ID` beyond the end
 * of a stream is taken as the end; a job whose keys vanish ends its stream with an `error` event;
 * 100 open event streams share one Redis reader. Skipped with a message when `redis-server` is not
 * installed (CI installs it through `.ci/setup`).
 *
 * deno test --allow-read --allow-write --allow-env --allow-net=127.0.0.1 --allow-run \
 *   tests/functions/redis_http_test.ts
 */

import assert from "node:assert/strict";
import { createClient } from "redis";
import { createApp } from "../../functions/app.ts";
import { RedisJobQueue, type RedisJobQueueOptions } from "../../functions/jobs/redis_job_queue.ts";
import { Metrics } from "../../functions/metrics.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { jobRequest } from "./_job_request.ts";
import { RedisServer, redisTest as redisTestWith } from "./_redis_server.ts";

const redisTest = (name: string, fn: () => Promise<void>) => redisTestWith(name, fn, { env: true });
import { inputPng, SMALL, upload } from "./_service.ts";
import { SseReader } from "./_sse_client.ts";

const REQUEST = jobRequest({ numFrames: 2, decodingT: 2, width: 64 });
/** Bytes, not a real image: the queue stores what it gets. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]);

/** Timings for a test; generous timeouts for a loaded 2-core machine. */
const OPTIONS = {
  capacity: 200,
  retentionMs: 60_000,
  blockMs: 500,
  commandTimeoutMs: 2000,
  connectTimeoutMs: 3000,
} as const;

/** The app over a Redis queue (no worker loop), served on a free loopback port. */
async function serveApi(server: RedisServer, options: Partial<RedisJobQueueOptions> = {}) {
  const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
  const queue = await RedisJobQueue.connect({ url: server.url, ...OPTIONS, ...options });
  const imagePool = new ImagePool({ workers: 1 });
  const app = createApp({
    queue,
    model: { name: manifest.name, sampling: manifest.config.sampling },
    metrics: new Metrics(),
    provider: "cpu",
    inferenceReady: () => true,
    maxUploadBytes: 20 * 1024 * 1024,
    maxPixels: 16e6,
    imagePool,
    heartbeatMs: 15_000,
  });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    queue,
    url: `http://127.0.0.1:${http.addr.port}`,
    async [Symbol.asyncDispose]() {
      await queue.close();
      await http.shutdown();
      await imagePool.close();
    },
  };
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

/** Status and JSON body of a request. */
async function call(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

redisTest(
  "GET and DELETE of a job id with a key suffix answer 404, not 500, and touch nothing",
  async () => {
    await using server = await RedisServer.start();
    await using api = await serveApi(server);
    const posted = await call(`${api.url}/v1/generations`, {
      method: "POST",
      body: upload(await inputPng(), SMALL),
    });
    assert.equal(posted.status, 202, JSON.stringify(posted.body));
    const id = posted.body!.id as string;
    for (const suffix of [":events", ":image", ":video", ":cancel", "x"]) {
      const crafted = `${api.url}/v1/generations/${encodeURIComponent(id + suffix)}`;
      for (
        const [method, path] of [["GET", ""], ["DELETE", ""], ["GET", "/events"], ["GET", "/video"]]
      ) {
        const { status, body } = await call(crafted + path, { method });
        assert.equal(status, 404, `${method} ${id}${suffix}${path}: ${JSON.stringify(body)}`);
        assert.equal((body?.error as { code: string }).code, "not_found");
      }
    }
    const { status, body } = await call(`${api.url}/v1/generations/${id}`);
    assert.equal(status, 200);
    assert.equal(body?.status, "queued", "the real job was not cancelled");
  },
);

redisTest(
  "a Last-Event-ID beyond the newest event is the end: a running job's stream goes on from there, a finished one answers 204 at once",
  async () => {
    await using server = await RedisServer.start();
    await using api = await serveApi(server, { blockMs: 2000 });
    const worker = await RedisJobQueue.connect({ url: server.url, ...OPTIONS });
    try {
      const { id } = await api.queue.submit(REQUEST, IMAGE);
      const job = await worker.take("gpu", AbortSignal.timeout(5000));
      const started = await worker.publish(id, "started", {});
      const beyond = `${BigInt(started.id.split("-")[0]) + 3_600_000n}-0`;
      const response = await fetch(`${api.url}/v1/generations/${id}/events`, {
        headers: { "Last-Event-ID": beyond },
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal(response.status, 200);
      const reader = new SseReader(response);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const step = await worker.publish(id, "step", { step: 1 });
      await worker.update(id, { status: "done", finishedAt: Date.now() });
      const done = await worker.publish(id, "done", {});
      await worker.complete(job!);
      const events = await bounded(reader.rest(), 10_000, "the stream resumed beyond its end");
      assert.deepEqual(events.map((e) => [e.event, e.id]), [["step", step.id], ["done", done.id]]);

      const after = `${BigInt(done.id.split("-")[0]) + 3_600_000n}-0`;
      const ended = await bounded(
        fetch(`${api.url}/v1/generations/${id}/events`, { headers: { "Last-Event-ID": after } }),
        5000,
        "the finished job's answer",
      );
      assert.equal(ended.status, 204);
    } finally {
      await worker.close();
    }
  },
);

/** Connections Redis has open now (`CLIENT LIST`), the inspector's own included. */
async function connections(inspector: ReturnType<typeof createClient>): Promise<number> {
  const list = await inspector.sendCommand(["CLIENT", "LIST"]) as string;
  return list.trim().split("\n").length;
}

redisTest(
  "100 open event streams share one Redis reader: a handful of connections, and each gets its events",
  async () => {
    await using server = await RedisServer.start();
    await using api = await serveApi(server);
    const worker = await RedisJobQueue.connect({ url: server.url, ...OPTIONS });
    const inspector = createClient({ url: server.url });
    inspector.on("error", () => {});
    await inspector.connect();
    const streams: SseReader[] = [];
    try {
      const ids: string[] = [];
      for (let i = 0; i < 100; i++) ids.push((await api.queue.submit(REQUEST, IMAGE)).id);
      const before = await connections(inspector);
      for (const id of ids) {
        const response = await fetch(`${api.url}/v1/generations/${id}/events`);
        assert.equal(response.status, 200);
        streams.push(new SseReader(response));
      }
      for (const stream of streams) assert.equal((await stream.next())?.event, "queued");
      await new Promise((resolve) => setTimeout(resolve, 1000)); // every stream waits for more now
      const open = await connections(inspector);
      console.log(`100 streams: ${before} connections before, ${open} with them open`);
      assert.ok(open - before <= 2, `100 streams opened ${open - before} Redis connections`);

      // Each stream gets its own job's next events, then ends.
      for (const id of ids) {
        await worker.publish(id, "started", { id });
        await worker.publish(id, "cancelled", {});
      }
      const all = await bounded(
        Promise.all(streams.map((stream) => stream.rest())),
        30_000,
        "100 streams to end",
      );
      all.forEach((events, i) => {
        assert.deepEqual(events.map((e) => e.event), ["queued", "started", "cancelled"]);
        assert.equal(events[1].data.id, ids[i], "its own job's event");
      });
      assert.ok((await connections(inspector)) - before <= 2);
    } finally {
      await Promise.all(streams.map((stream) => stream.cancel()));
      await worker.close();
      inspector.destroy();
    }
  },
);

redisTest(
  "a new event stream joins the shared read at once, not after the read's block time",
  async () => {
    await using server = await RedisServer.start();
    // A minute-long block: a stream that had to wait for it would miss the bound below.
    await using api = await serveApi(server, { blockMs: 60_000 });
    const worker = await RedisJobQueue.connect({ url: server.url, ...OPTIONS });
    const streams: SseReader[] = [];
    try {
      const first = await api.queue.submit(REQUEST, IMAGE);
      const second = await api.queue.submit(REQUEST, IMAGE);
      const open = async (id: string) => {
        const stream = new SseReader(await fetch(`${api.url}/v1/generations/${id}/events`));
        streams.push(stream);
        assert.equal((await stream.next())?.event, "queued");
        return stream;
      };
      await open(first.id);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the reader blocks on the first now
      const joined = await open(second.id);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await worker.publish(second.id, "started", {});
      const started = await bounded(joined.next(), 20_000, "the joined stream's next event");
      assert.equal(started?.event, "started");
    } finally {
      await Promise.all(streams.map((stream) => stream.cancel()));
      await worker.close();
    }
  },
);
