/**
 * {@linkcode RedisJobQueue} against a real `redis-server` (started per test on a free port):
 * several queue instances play API instances and GPU workers sharing one Redis. Skipped with a
 * message when `redis-server` is not installed (CI installs it through `.ci/setup`).
 *
 * deno test --allow-read --allow-write --allow-run --allow-env --allow-net=127.0.0.1 \
 *   tests/functions/redis_job_queue_test.ts
 */

import assert from "node:assert/strict";
import { jobRequest } from "./_job_request.ts";
import { createClient } from "redis";
import {
  type JobEvent,
  type JobQueue,
  QueueFullError,
  StoreUnavailableError,
} from "../../functions/jobs/job_queue.ts";
import { RedisJobQueue, type RedisJobQueueOptions } from "../../functions/jobs/redis_job_queue.ts";
import { RedisServer, redisServerMissing, SilentFailureProxy } from "./_redis_server.ts";

const REQUEST = jobRequest({ numFrames: 2, decodingT: 2, width: 64 });

/** Not a real PNG: the queue stores bytes, it never decodes them. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255, 254, 13, 10]);

/** Short timings so reclaims and expiries happen within a test. */
const FAST = {
  capacity: 4,
  retentionMs: 60_000,
  claimIdleMs: 300,
  // Generous: a heartbeat late by more than this on a busy machine would make a job look lost.
  heartbeatTtlMs: 1500,
  blockMs: 100,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 2000,
} as const;

/** A test that needs `redis-server`: loopback only; it runs redis-server (and deno for a worker). */
function redisTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    ignore: redisServerMissing !== undefined,
    permissions: { net: ["127.0.0.1"], run: true, read: true },
    fn,
  });
}

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

/** Every event until the stream ends (or the signal aborts it). */
async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

/** Event ids as [ms, seq] must increase strictly. */
function assertIncreasing(events: JobEvent[]): void {
  const key = (id: string) => id.split("-").map(BigInt);
  for (let i = 1; i < events.length; i++) {
    const [am, as] = key(events[i - 1].id);
    const [bm, bs] = key(events[i].id);
    assert.ok(bm > am || (bm === am && bs > as), `${events[i - 1].id} < ${events[i].id}`);
  }
}

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function closeAll(...queues: (JobQueue | undefined)[]): Promise<void> {
  await Promise.all(queues.map((queue) => queue?.close()));
}

redisTest(
  "submit() stores the job and its queued event; get, position and stats agree",
  async () => {
    await using server = await RedisServer.start();
    const queue = await connect(server);
    try {
      const records = [];
      for (let i = 0; i < 3; i++) records.push(await queue.submit(REQUEST, IMAGE));
      const [first, second, third] = records;
      assert.equal(first.status, "queued");
      assert.equal(first.attempts, 0);
      assert.deepEqual(await queue.get(first.id), first);
      assert.deepEqual(
        await Promise.all(records.map((r) => queue.position(r.id))),
        [1, 2, 3],
      );
      assert.deepEqual(await queue.stats(), { queued: 3, running: 0 });

      const events = await collect(queue.events(second.id, undefined, AbortSignal.timeout(300)));
      assert.deepEqual(events.map((e) => [e.type, e.data]), [["queued", { position: 2 }]]);
      assert.match(events[0].id, /^\d+-\d+$/);

      const job = await queue.take("gpu-0", AbortSignal.timeout(3000));
      assert.equal(job?.record.id, first.id, "the oldest job is taken first");
      assert.deepEqual(job.image, IMAGE);
      assert.equal(job.record.attempts, 1);
      assert.equal(job.record.worker, "gpu-0");
      assert.deepEqual(job.record.request, REQUEST);
      assert.equal(await queue.position(first.id), undefined, "a taken job has no position");
      assert.equal(await queue.position(second.id), 1);
      assert.equal(await queue.position(third.id), 2);
      assert.deepEqual(await queue.stats(), { queued: 2, running: 1 });

      assert.equal(await queue.get("no-such-job"), undefined);
      assert.equal(await queue.position("no-such-job"), undefined);
      assert.deepEqual(
        await collect(queue.events("no-such-job", undefined, AbortSignal.timeout(2000))),
        [],
      );
      await assert.rejects(queue.publish("no-such-job", "step", {}), RangeError);
    } finally {
      await queue.close();
    }
  },
);

redisTest("the capacity counts queued and running jobs of every instance", async () => {
  await using server = await RedisServer.start();
  const a = await connect(server, { capacity: 2, retryAfterSeconds: () => 7 });
  const b = await connect(server, { capacity: 2 });
  try {
    await a.submit(REQUEST, IMAGE);
    await b.submit(REQUEST, IMAGE);
    const job = await a.take("gpu", AbortSignal.timeout(3000));
    assert.ok(job);
    await assert.rejects(b.submit(REQUEST, IMAGE), QueueFullError);
    const refused = await a.submit(REQUEST, IMAGE).catch((error) => error);
    assert.ok(refused instanceof QueueFullError);
    assert.equal(refused.retryAfterSeconds, 7);
    assert.deepEqual(await b.stats(), { queued: 1, running: 1 });

    await a.complete(job);
    assert.deepEqual(await b.stats(), { queued: 1, running: 0 });
    assert.equal((await b.submit(REQUEST, IMAGE)).status, "queued", "a completed job frees a slot");
  } finally {
    await closeAll(a, b);
  }
});

redisTest("workers on two instances take different jobs; a worker with none waits", async () => {
  await using server = await RedisServer.start();
  const api = await connect(server);
  const a = await connect(server);
  const b = await connect(server);
  try {
    const submitted = [await api.submit(REQUEST, IMAGE), await api.submit(REQUEST, IMAGE)];
    // The same worker name on two instances: still two consumers.
    const [jobA, jobB] = await Promise.all([
      a.take("gpu", AbortSignal.timeout(3000)),
      b.take("gpu", AbortSignal.timeout(3000)),
    ]);
    assert.ok(jobA && jobB);
    assert.notEqual(jobA.record.id, jobB.record.id);
    assert.deepEqual(
      [jobA.record.id, jobB.record.id].sort(),
      submitted.map((r) => r.id).sort(),
    );
    assert.deepEqual(await api.stats(), { queued: 0, running: 2 });

    const started = Date.now();
    assert.equal(await api.take("idle", AbortSignal.timeout(400)), undefined);
    assert.ok(Date.now() - started < 1500, "take returns soon after its signal aborts");
  } finally {
    await closeAll(api, a, b);
  }
});

redisTest(
  "events published on one instance stream on another, resume after an id and end after done",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const worker = await connect(server);
    try {
      const { id } = await api.submit(REQUEST, IMAGE);
      const job = await worker.take("gpu", AbortSignal.timeout(3000));
      assert.equal(job?.record.id, id);
      await worker.update(id, { status: "running", startedAt: Date.now(), worker: "gpu" });
      const started = await worker.publish(id, "started", { frames: 2 });

      // A live reader on the API instance, waiting in XREAD before the next events exist.
      const reading = collect(api.events(id, undefined, AbortSignal.timeout(8000)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const step1 = await worker.publish(id, "step", { step: 1, total: 2 });
      const step2 = await worker.publish(id, "step", { step: 2, total: 2 });
      await worker.update(id, { status: "done", finishedAt: Date.now() });
      const done = await worker.publish(id, "done", { bytes: 3 });
      await worker.complete(job);

      const live = await bounded(reading, 5000, "the live stream");
      assert.deepEqual(live.map((e) => e.type), ["queued", "started", "step", "step", "done"]);
      assert.deepEqual(live.slice(1).map((e) => e.id), [started.id, step1.id, step2.id, done.id]);
      assert.deepEqual(live[2].data, { step: 1, total: 2 });
      assertIncreasing(live);

      // Last-Event-ID on another instance: exactly the events after it, then the end.
      const t0 = Date.now();
      const resumed = await collect(worker.events(id, step1.id, AbortSignal.timeout(5000)));
      assert.deepEqual(resumed.map((e) => e.id), [step2.id, done.id]);
      assert.ok(Date.now() - t0 < 2000, "a stream ends by itself after its terminal event");
      assert.deepEqual(
        await collect(api.events(id, done.id, AbortSignal.timeout(5000))),
        [],
        "nothing after the terminal event",
      );
      const replay = await collect(api.events(id, "not-an-id", AbortSignal.timeout(5000)));
      assert.equal(replay.length, 5, "an unknown id replays from the start");
      assert.equal((await api.get(id))?.status, "done");
    } finally {
      await closeAll(api, worker);
    }
  },
);

redisTest(
  "cancelling a queued job ends it at once; a running job's flag shows on every instance",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const worker = await connect(server);
    try {
      const first = await api.submit(REQUEST, IMAGE);
      const second = await api.submit(REQUEST, IMAGE);

      const cancelled = await api.requestCancel(second.id);
      assert.equal(cancelled?.status, "cancelled");
      assert.equal(typeof cancelled.finishedAt, "number");
      assert.equal(await worker.cancelRequested(second.id), true);
      const events = await collect(worker.events(second.id, undefined, AbortSignal.timeout(3000)));
      assert.deepEqual(events.map((e) => e.type), ["queued", "cancelled"]);
      assert.equal(await api.position(second.id), undefined);
      assert.deepEqual(await api.stats(), { queued: 1, running: 0 });
      assert.equal((await api.requestCancel(second.id))?.status, "cancelled", "idempotent");
      assert.equal(await api.requestCancel("no-such-job"), undefined);

      const job = await worker.take("gpu", AbortSignal.timeout(3000));
      assert.equal(job?.record.id, first.id);
      await worker.update(first.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
      assert.equal(await worker.cancelRequested(first.id), false);
      const asked = await api.requestCancel(first.id);
      assert.equal(asked?.status, "running", "the worker ends a running job");
      assert.equal(await worker.cancelRequested(first.id), true);
      const soFar = await collect(api.events(first.id, undefined, AbortSignal.timeout(300)));
      assert.deepEqual(soFar.map((e) => e.type), ["queued"]);

      assert.equal(
        await worker.take("gpu-2", AbortSignal.timeout(400)),
        undefined,
        "a cancelled job is never delivered",
      );
    } finally {
      await closeAll(api, worker);
    }
  },
);

redisTest(
  "a clip stored on one instance is read on another; one above maxVideoBytes is refused",
  async () => {
    await using server = await RedisServer.start();
    const worker = await connect(server, { maxVideoBytes: 4096 });
    const api = await connect(server);
    try {
      const { id } = await api.submit(REQUEST, IMAGE);
      const bytes = crypto.getRandomValues(new Uint8Array(4096));
      await worker.putVideo(id, { bytes, contentType: "video/mp4", format: "mp4" });
      assert.deepEqual(await api.getVideo(id), { bytes, contentType: "video/mp4", format: "mp4" });
      assert.equal(await api.getVideo("no-such-job"), undefined);

      const tooBig = await worker.putVideo(id, {
        bytes: new Uint8Array(4097),
        contentType: "video/mp4",
        format: "mp4",
      }).catch((error) => error);
      assert.ok(tooBig instanceof RangeError);
      assert.match(tooBig.message, /4097 bytes exceed .* limit of 4096 bytes/);
      assert.deepEqual((await api.getVideo(id))?.bytes, bytes, "the stored clip is kept");
    } finally {
      await closeAll(worker, api);
    }
  },
);

redisTest(
  "a job whose worker dies runs again on another worker, and ends with worker_lost after maxAttempts",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const survivor = await connect(server);
    let third: RedisJobQueue | undefined;
    const repo = new URL("../../", import.meta.url);
    const module = new URL("functions/jobs/redis_job_queue.ts", repo).href;
    // A worker in its own process, killed with SIGKILL while it runs the job: nothing is acked and
    // its heartbeat key lingers until its TTL.
    const doomed = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { RedisJobQueue } from ${JSON.stringify(module)};
       const queue = await RedisJobQueue.connect(${JSON.stringify({ url: server.url, ...FAST })});
       const job = await queue.take("doomed", AbortSignal.timeout(10_000));
       await queue.update(job.record.id, { status: "running", startedAt: Date.now(), worker: "doomed" });
       await queue.publish(job.record.id, "started", {});
       console.log(job.record.id);
       setInterval(() => {}, 1000);`,
      ],
      cwd: repo,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const { id } = await api.submit(REQUEST, IMAGE);
      const reader = doomed.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const line = await bounded(reader.read(), 30_000, "the doomed worker taking the job");
      await reader.cancel();
      assert.equal(line.value?.trim(), id);

      // Alive and heartbeating: its job is not taken away, however long it runs.
      assert.equal(await survivor.take("survivor", AbortSignal.timeout(1200)), undefined);
      assert.deepEqual(await api.stats(), { queued: 0, running: 1 });

      doomed.kill("SIGKILL");
      await doomed.status;
      const again = await bounded(
        survivor.take("survivor", AbortSignal.timeout(5000)),
        6000,
        "the reclaiming take",
      );
      assert.equal(again?.record.id, id);
      assert.equal(again.record.attempts, 2);
      assert.deepEqual(again.image, IMAGE);
      const history = await collect(api.events(id, undefined, AbortSignal.timeout(300)));
      assert.deepEqual(history.map((e) => e.type), ["queued", "started", "queued"]);
      assert.deepEqual(history[2].data, { position: 1, reason: "worker_lost" });

      // The second worker goes away too (it stops heartbeating and never acks).
      await survivor.update(id, { status: "running", startedAt: Date.now(), worker: "survivor" });
      await survivor.close();
      third = await connect(server);
      assert.equal(await third.take("third", AbortSignal.timeout(1500)), undefined);
      const record = await api.get(id);
      assert.equal(record?.status, "error");
      assert.equal(record.error?.code, "worker_lost");
      const ending = await collect(api.events(id, history[2].id, AbortSignal.timeout(3000)));
      assert.deepEqual(ending.map((e) => e.type), ["error"]);
      assert.equal(ending[0].data.code, "worker_lost");
      assert.deepEqual(await api.stats(), { queued: 0, running: 0 });
    } finally {
      try {
        doomed.kill("SIGKILL");
      } catch { /* already dead */ }
      await doomed.status;
      await closeAll(api, survivor, third);
    }
  },
);

redisTest("release() puts the job back for another worker, from the start", async () => {
  await using server = await RedisServer.start();
  const a = await connect(server);
  const b = await connect(server);
  try {
    const { id } = await a.submit(REQUEST, IMAGE);
    const job = await a.take("leaving", AbortSignal.timeout(3000));
    assert.ok(job);
    await a.update(id, { status: "running", startedAt: Date.now(), worker: "leaving" });
    await a.publish(id, "started", {});
    await a.release(job);

    const record = await b.get(id);
    assert.equal(record?.status, "queued");
    assert.equal(record.startedAt, undefined);
    assert.equal(record.worker, undefined);
    assert.equal(await b.position(id), 1);
    const events = await collect(b.events(id, undefined, AbortSignal.timeout(300)));
    assert.deepEqual(events.map((e) => e.type), ["queued", "started", "queued"]);
    assert.deepEqual(events[2].data, { position: 1 });

    const again = await b.take("staying", AbortSignal.timeout(3000));
    assert.equal(again?.record.id, id);
    assert.equal(again.record.attempts, 2);
    assert.deepEqual(again.image, IMAGE);
    assert.deepEqual(await a.stats(), { queued: 0, running: 1 });
  } finally {
    await closeAll(a, b);
  }
});

redisTest(
  "while Redis is down calls fail fast with StoreUnavailableError; when it returns the queue works again",
  async () => {
    await using server = await RedisServer.start();
    const queue = await connect(server, { commandTimeoutMs: 500, connectTimeoutMs: 500 });
    try {
      const { id } = await queue.submit(REQUEST, IMAGE);
      assert.ok(await queue.take("gpu", AbortSignal.timeout(3000)));
      const waiting = queue.take("gpu-2", AbortSignal.timeout(20_000)).catch((error) => error);
      const reading = collect(queue.events(id, undefined, AbortSignal.timeout(20_000)))
        .catch((error) => error);
      await new Promise((resolve) => setTimeout(resolve, 200));

      await server.stop();
      assert.equal(await bounded(queue.ready(), 2000, "ready()"), false);
      const calls: [string, () => Promise<unknown>][] = [
        ["submit", () => queue.submit(REQUEST, IMAGE)],
        ["get", () => queue.get(id)],
        ["position", () => queue.position(id)],
        ["stats", () => queue.stats()],
        ["publish", () => queue.publish(id, "step", {})],
        ["requestCancel", () => queue.requestCancel(id)],
        ["take", () => queue.take("gpu-3", AbortSignal.timeout(20_000))],
        ["events", () => collect(queue.events(id, undefined, AbortSignal.timeout(20_000)))],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(bounded(call(), 3000, name), StoreUnavailableError, name);
      }
      const cut = await bounded(waiting, 3000, "a waiting take");
      assert.ok(cut instanceof StoreUnavailableError, String(cut));
      const ended = await bounded(reading, 3000, "a live stream");
      assert.ok(ended instanceof StoreUnavailableError, String(ended));
      await assert.rejects(
        bounded(RedisJobQueue.connect({ url: server.url, ...FAST }), 5000, "connect"),
        StoreUnavailableError,
      );

      await server.restart(); // empty: nothing was persisted
      await waitFor(() => queue.ready(), 10_000, "ready() after the restart");
      const record = await queue.submit(REQUEST, IMAGE);
      assert.equal(await queue.position(record.id), 1);
      const job = await queue.take("gpu-4", AbortSignal.timeout(3000));
      assert.equal(job?.record.id, record.id);
    } finally {
      await queue.close();
    }
  },
);

redisTest(
  "a connection that dies silently is replaced: calls fail within their timeout, then work again",
  async () => {
    await using server = await RedisServer.start();
    await using proxy = new SilentFailureProxy(server.port);
    // Loose enough for a loaded 2-core CI machine; the bounded() limits below stay 2× above it.
    const queue = await RedisJobQueue.connect({ ...FAST, url: proxy.url, commandTimeoutMs: 1500 });
    try {
      const { id } = await queue.submit(REQUEST, IMAGE);
      assert.ok(await queue.take("gpu", AbortSignal.timeout(3000)));
      const waiting = queue.take("gpu-2", AbortSignal.timeout(20_000)).catch((error) => error);
      await new Promise((resolve) => setTimeout(resolve, 200));

      proxy.freezeConnections(); // open sockets, no answers: nothing tells the client
      await assert.rejects(bounded(queue.get(id), 3000, "get"), StoreUnavailableError);
      const cut = await bounded(waiting, 3000, "a waiting take");
      assert.ok(cut instanceof StoreUnavailableError, String(cut));

      await waitFor(() => queue.ready(), 5000, "ready() on a fresh connection");
      assert.equal((await queue.get(id))?.status, "queued");
      assert.deepEqual(await queue.stats(), { queued: 0, running: 1 });
      await queue.submit(REQUEST, IMAGE);
      assert.ok(await queue.take("gpu-3", AbortSignal.timeout(3000)), "blocking reads work again");
    } finally {
      await queue.close();
    }
  },
);

redisTest("finished jobs leave no keys behind once the retention has passed", async () => {
  await using server = await RedisServer.start();
  const queue = await connect(server, { prefix: "svd", retentionMs: 1000 });
  const inspector = createClient({ url: server.url });
  inspector.on("error", () => {});
  await inspector.connect();
  try {
    const done = await queue.submit(REQUEST, IMAGE);
    const failed = await queue.submit(REQUEST, IMAGE);
    const cancelled = await queue.submit(REQUEST, IMAGE);
    await queue.requestCancel(cancelled.id);

    const job = await queue.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, done.id);
    await queue.update(done.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    await queue.putVideo(done.id, { bytes: IMAGE, contentType: "video/mp4", format: "mp4" });
    await queue.update(done.id, { status: "done", finishedAt: Date.now() });
    await queue.publish(done.id, "done", {});
    await queue.complete(job);
    assert.equal(
      await inspector.sendCommand(["EXISTS", `svd:job:${done.id}:image`]),
      0,
      "the image goes when the job ends",
    );

    const job2 = await queue.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job2?.record.id, failed.id);
    await queue.update(failed.id, { status: "error", error: { code: "x", message: "y" } });
    await queue.publish(failed.id, "error", { code: "x", message: "y" });
    await queue.complete(job2);

    const keysNow = await inspector.sendCommand(["KEYS", "svd:job:*"]) as string[];
    assert.ok(keysNow.includes(`svd:job:${done.id}:video`), "kept during the retention");
    assert.ok(keysNow.includes(`svd:job:${failed.id}:events`));
    assert.deepEqual((await queue.getVideo(done.id))?.bytes, IMAGE);

    await new Promise((resolve) => setTimeout(resolve, 1600));
    assert.deepEqual(await inspector.sendCommand(["KEYS", "svd:job:*"]), []);
    assert.equal(await queue.get(done.id), undefined);
    assert.equal(await queue.getVideo(done.id), undefined);
    await queue.close();
    assert.deepEqual(
      await inspector.sendCommand(["KEYS", "svd:*"]),
      ["svd:jobs"],
      "only the (empty) jobs stream stays",
    );
    assert.equal(await inspector.sendCommand(["XLEN", "svd:jobs"]), 0);
  } finally {
    await queue.close();
    inspector.destroy();
  }
});

redisTest("an aborted take or event stream returns at once, and loses no job", async () => {
  await using server = await RedisServer.start();
  const queue = await connect(server, { blockMs: 5000 });
  const other = await connect(server);
  try {
    const controller = new AbortController();
    const taking = queue.take("gpu", controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 300)); // blocked in XREADGROUP now
    let t0 = Date.now();
    controller.abort();
    assert.equal(await bounded(taking, 2000, "the aborted take"), undefined);
    assert.ok(Date.now() - t0 < 1000, `take took ${Date.now() - t0} ms to return`);

    const { id } = await other.submit(REQUEST, IMAGE);
    const job = await other.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, id, "the next job went to a live worker");

    const reading = new AbortController();
    const streaming = collect(queue.events(id, undefined, reading.signal));
    await new Promise((resolve) => setTimeout(resolve, 300)); // blocked in XREAD now
    t0 = Date.now();
    reading.abort();
    const events = await bounded(streaming, 2000, "the aborted stream");
    assert.deepEqual(events.map((e) => e.type), ["queued"]);
    assert.ok(Date.now() - t0 < 1000, `the stream took ${Date.now() - t0} ms to end`);

    const closing = queue.take("gpu", AbortSignal.timeout(20_000));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await queue.close();
    assert.equal(await bounded(closing, 2000, "a take during close()"), undefined);
  } finally {
    await closeAll(queue, other);
  }
});
