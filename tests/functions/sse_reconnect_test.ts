/**
 * A job's event stream as a browser's `EventSource` uses it (the npm `eventsource` client, which
 * follows the WHATWG spec): after the terminal event the client reconnects once with the last id
 * and gets `204 No Content`, which stops it for good; a connection dropped mid-job resumes with
 * `Last-Event-ID`, missing nothing and repeating nothing. Against the embedded queue and against
 * Redis (whose event ids and "after the end" path differ).
 *
 * Run: deno test --allow-read --allow-write --allow-env --allow-net=127.0.0.1 --allow-run
 *   tests/functions/sse_reconnect_test.ts
 */

import assert from "node:assert/strict";
import { EventSource } from "eventsource";
import { createApp } from "../../functions/app.ts";
import type { JobQueue } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { RedisJobQueue } from "../../functions/jobs/redis_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import { Metrics } from "../../functions/metrics.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { RedisServer, redisServerMissing } from "./_redis_server.ts";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, upload, waitFor } from "./_service.ts";

const EVENT_TYPES = ["queued", "started", "step", "decoding", "encoding", "done", "error"];

/** The app and a worker loop with a fake runner over `queue`, served on a free loopback port. */
async function serve(queue: JobQueue, stepMs = 5) {
  const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
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
  const loop = new WorkerLoop({ queue, slots: 1, run: fakeRunner({ stepMs }), name: "sse" });
  loop.start();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      await loop.stop({ drainMs: 5000, cancelAfterMs: 0 });
      await queue.close();
      await server.shutdown();
      await imagePool.close();
    },
  };
}

/** Submits a generation and returns its id. */
async function submit(url: string, fields: Record<string, string> = SMALL): Promise<string> {
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(await inputPng(), { ...fields, preview: "none" }),
  });
  assert.equal(response.status, 202);
  return (await response.json()).id;
}

/** Waits until the generation has ended. */
function finished(url: string, id: string): Promise<unknown> {
  return waitFor(
    async () => {
      const { status } = await (await fetch(`${url}/v1/generations/${id}`)).json();
      return status === "done" || status === "error" || status === "cancelled";
    },
    "the generation to end",
    30_000,
  );
}

/** One request the EventSource made: the `Last-Event-ID` it sent and the status it got. */
interface Attempt {
  readonly lastEventId: string | null;
  /** Events the EventSource had received when it made this request. */
  readonly received: number;
  status?: number;
}

/**
 * An `EventSource` on `url` recording every event and every request it makes, until it closes
 * for good (readyState CLOSED after an error). `cut` may end a response body early, as a dropped
 * connection would.
 */
function watch(
  url: string,
  cut?: (attempt: number, body: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
) {
  const attempts: Attempt[] = [];
  const events: { id: string; type: string }[] = [];
  const source = new EventSource(url, {
    fetch: async (input, init) => {
      const attempt: Attempt = {
        lastEventId: new Headers(init?.headers).get("Last-Event-ID"),
        received: events.length,
      };
      attempts.push(attempt);
      const response = await fetch(input, init);
      attempt.status = response.status;
      if (!cut || !response.body) return response;
      return new Response(cut(attempts.length, response.body), {
        status: response.status,
        headers: response.headers,
      });
    },
  });
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (event) => {
      // A job's `error` event shares its name with the connection's: only one carries data.
      if (typeof (event as MessageEvent).data === "string") {
        events.push({ id: event.lastEventId, type });
      }
    });
  }
  const closed = new Promise<void>((resolve) => {
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) resolve();
    });
  });
  return { source, attempts, events, closed };
}

/** The whole stream of a finished job, read once without `Last-Event-ID`. */
async function wholeStream(url: string, id: string) {
  const all = await new SseReader(await fetch(`${url}/v1/generations/${id}/events`)).rest();
  return all.map((e) => ({ id: e.id!, type: e.event }));
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A body that ends (as a dropped connection) after the chunk holding the `count`-th event. */
function endAfterEvents(
  body: ReadableStream<Uint8Array>,
  count: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let seen = 0;
  return new ReadableStream({
    async pull(controller) {
      if (seen >= count) {
        await reader.cancel();
        controller.close();
        return;
      }
      const { done, value } = await reader.read();
      if (done) return controller.close();
      seen += decoder.decode(value, { stream: true }).split("\nevent: ").length - 1;
      controller.enqueue(value);
    },
    cancel: () => reader.cancel(),
  });
}

async function finishedJobStopsTheEventSource(queue: JobQueue) {
  await using service = await serve(queue);
  const id = await submit(service.url);
  await finished(service.url, id);
  const all = await wholeStream(service.url, id);
  assert.equal(all.at(-1)?.type, "done");

  const watcher = watch(`${service.url}/v1/generations/${id}/events`);
  await within(watcher.closed, 30_000, "the EventSource did not close");
  assert.deepEqual(watcher.events, all, "a first connection replays the whole stream");
  assert.deepEqual(watcher.attempts, [
    { lastEventId: null, received: 0, status: 200 },
    { lastEventId: all.at(-1)!.id, received: all.length, status: 204 },
  ], "one reconnection, answered 204, and no more");

  const atEnd = await fetch(`${service.url}/v1/generations/${id}/events`, {
    headers: { "Last-Event-ID": all.at(-1)!.id },
  });
  assert.equal(atEnd.status, 204);
  assert.equal(await atEnd.text(), "");
  const before = await new SseReader(
    await fetch(`${service.url}/v1/generations/${id}/events`, {
      headers: { "Last-Event-ID": all.at(-3)!.id },
    }),
  ).rest();
  assert.deepEqual(before.map((e) => e.event), all.slice(-2).map((e) => e.type));
}

Deno.test("an EventSource on a finished job gets its events once, then 204 on reconnecting, and stops", async () => {
  await finishedJobStopsTheEventSource(new MemoryJobQueue({ capacity: 4, retentionMs: 60_000 }));
});

Deno.test({
  name: "with Redis, an EventSource on a finished job gets its events once, then 204, and stops",
  ignore: redisServerMissing !== undefined,
  async fn() {
    await using redis = await RedisServer.start();
    const queue = await RedisJobQueue.connect({
      url: redis.url,
      capacity: 4,
      retentionMs: 60_000,
      blockMs: 200,
    });
    await finishedJobStopsTheEventSource(queue);
  },
});

Deno.test("an EventSource whose connection drops mid-job resumes after the last event it got, then stops at the end", async () => {
  await using service = await serve(new MemoryJobQueue({ capacity: 4, retentionMs: 60_000 }), 40);
  const id = await submit(service.url, { ...SMALL, steps: "30" });
  // The first response ends after its fourth event (queued, started, two steps).
  const watcher = watch(
    `${service.url}/v1/generations/${id}/events`,
    (attempt, body) => attempt === 1 ? endAfterEvents(body, 4) : body,
  );
  await within(watcher.closed, 60_000, "the EventSource did not close");
  const all = await wholeStream(service.url, id);
  assert.equal(all.at(-1)?.type, "done");
  assert.deepEqual(watcher.events, all, "every event once, in order, across the reconnection");
  assert.equal(watcher.attempts.length, 3, JSON.stringify(watcher.attempts));
  const [first, resumed, ended] = watcher.attempts;
  assert.deepEqual(first, { lastEventId: null, received: 0, status: 200 });
  assert.ok(resumed.received >= 4 && resumed.received < all.length, `${resumed.received} events`);
  assert.equal(resumed.status, 200);
  assert.equal(resumed.lastEventId, all[resumed.received - 1].id, "resumed after the last one");
  assert.deepEqual(ended, { lastEventId: all.at(-1)!.id, received: all.length, status: 204 });
});
