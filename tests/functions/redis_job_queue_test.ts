/**
 * What only {@linkcode RedisJobQueue} does, against a real `redis-server` (started per test on a
 * free port): a worker that dies, Redis down or silent, key expiry, consumers per instance, a
 * release to the back of the stream, the clip size limit. The `JobQueue` contract it shares with
 * the embedded queue is `job_queue_contract_test.ts`. Skipped with a message when `redis-server`
 * is not installed (CI installs it through `.ci/setup`).
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
  StoreUnavailableError,
} from "../../functions/jobs/job_queue.ts";
import { RedisJobQueue, type RedisJobQueueOptions } from "../../functions/jobs/redis_job_queue.ts";
import { RedisServer, redisTest, SilentFailureProxy } from "./_redis_server.ts";

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

redisTest("one worker name on two instances is two consumers with different jobs", async () => {
  await using server = await RedisServer.start();
  const api = await connect(server);
  const a = await connect(server);
  const b = await connect(server);
  try {
    const submitted = [await api.submit(REQUEST, IMAGE), await api.submit(REQUEST, IMAGE)];
    const [jobA, jobB] = await Promise.all([
      a.take("gpu", AbortSignal.timeout(3000)),
      b.take("gpu", AbortSignal.timeout(3000)),
    ]);
    assert.ok(jobA && jobB);
    assert.deepEqual(
      [jobA.record.id, jobB.record.id].sort(),
      submitted.map((r) => r.id).sort(),
    );
    assert.deepEqual(await api.stats(), { queued: 0, running: 2 });
  } finally {
    await closeAll(api, a, b);
  }
});

redisTest(
  "event ids are the events stream's entry ids, increasing, the same on every instance",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const worker = await connect(server);
    try {
      const { id } = await api.submit(REQUEST, IMAGE);
      const published = [
        await worker.publish(id, "started", {}),
        await worker.publish(id, "step", { step: 1 }),
        await worker.publish(id, "done", {}),
      ];
      const read = await collect(api.events(id, undefined, AbortSignal.timeout(5000)));
      assert.deepEqual(read.slice(1).map((e) => e.id), published.map((e) => e.id));
      for (const event of read) assert.match(event.id, /^\d+-\d+$/);
      assertIncreasing(read);
    } finally {
      await closeAll(api, worker);
    }
  },
);

redisTest("a clip above maxVideoBytes is refused and the stored one kept", async () => {
  await using server = await RedisServer.start();
  const worker = await connect(server, { maxVideoBytes: 4096 });
  const api = await connect(server);
  try {
    const { id } = await api.submit(REQUEST, IMAGE);
    const bytes = crypto.getRandomValues(new Uint8Array(4096));
    await worker.putVideo(id, { bytes, contentType: "video/mp4", format: "mp4" });
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
});

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

redisTest(
  "release() puts the job at the back of the queue (a stream cannot insert at its front)",
  async () => {
    await using server = await RedisServer.start();
    const a = await connect(server);
    const b = await connect(server);
    try {
      const first = await a.submit(REQUEST, IMAGE);
      const job = await a.take("leaving", AbortSignal.timeout(3000));
      assert.equal(job?.record.id, first.id);
      const second = await a.submit(REQUEST, IMAGE);
      await a.release(job!);
      assert.equal(await b.position(second.id), 1);
      assert.equal(await b.position(first.id), 2);
      const events = await collect(b.events(first.id, undefined, AbortSignal.timeout(300)));
      assert.deepEqual(events.at(-1)?.data, { position: 2 });
      assert.equal((await b.take("staying", AbortSignal.timeout(3000)))?.record.id, second.id);
    } finally {
      await closeAll(a, b);
    }
  },
);

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
      (await inspector.sendCommand(["KEYS", "svd:*"]) as string[]).sort(),
      ["svd:jobs", "svd:queue:moves", "svd:queue:seq"],
      "only the (empty) jobs stream, the queue's number and its moves (capped) stay",
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

redisTest(
  "readers of one job at different positions each get every event after their own, once",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server, { blockMs: 2000 });
    const worker = await connect(server);
    try {
      const { id } = await api.submit(REQUEST, IMAGE);
      const early = await worker.publish(id, "started", {});
      const published = [early];
      for (let step = 1; step <= 3; step++) {
        published.push(
          await worker.publish(id, "step", { step }),
        );
      }
      const from = [undefined, early.id, published[2].id, published[3].id];
      const readers = from.map((after) =>
        collect(api.events(id, after, AbortSignal.timeout(30_000)))
      );
      await new Promise((resolve) => setTimeout(resolve, 300)); // all waiting on one read now
      // More than a read's batch, so that some readers fall behind the shared read.
      for (let step = 4; step <= 80; step++) {
        published.push(await worker.publish(id, "step", { step }));
      }
      published.push(await worker.publish(id, "done", {}));
      const got = await bounded(Promise.all(readers), 20_000, "the four readers");
      const ids = published.map((e) => e.id);
      assert.deepEqual(got[0].map((e) => e.id).slice(1), ids, "from the start");
      assert.deepEqual(got[1].map((e) => e.id), ids.slice(1), "after started");
      assert.deepEqual(got[2].map((e) => e.id), ids.slice(3), "after step 2");
      assert.deepEqual(got[3].map((e) => e.id), ids.slice(4), "after step 3");
    } finally {
      await closeAll(api, worker);
    }
  },
);

redisTest(
  "finish() writes a job's end only while its worker holds it: one taken over for lost records nothing",
  async () => {
    await using server = await RedisServer.start();
    // Alive, but heartbeating only every 20 s: once its heartbeat key is gone it looks dead.
    const slow = await connect(server, { heartbeatTtlMs: 60_000 });
    const other = await connect(server);
    const inspector = createClient({ url: server.url });
    inspector.on("error", () => {});
    await inspector.connect();
    try {
      const { id } = await slow.submit(REQUEST, IMAGE);
      const job = await slow.take("slow", AbortSignal.timeout(3000));
      assert.ok(job);
      await slow.update(id, { status: "running", startedAt: Date.now(), worker: "slow" });
      const beats = await inspector.sendCommand(["KEYS", "svd:worker:slow@*"]) as string[];
      await inspector.sendCommand(["DEL", ...beats]);
      await new Promise((resolve) => setTimeout(resolve, 2 * FAST.claimIdleMs));
      const again = await other.take("other", AbortSignal.timeout(3000));
      assert.equal(again?.record.id, id, "taken over");

      const ending = {
        status: "done",
        data: { bytes: 3 },
        patch: { finishedAt: Date.now() },
        video: { bytes: new Uint8Array(3), contentType: "video/mp4", format: "mp4" },
      } as const;
      assert.equal(await slow.finish(job, ending), "dropped");
      assert.equal((await other.get(id))?.status, "queued", "the new run's record is untouched");
      assert.equal(await other.getVideo(id), undefined);
      const types = (await collect(other.events(id, undefined, AbortSignal.timeout(300))))
        .map((e) => e.type);
      assert.deepEqual(types, ["queued", "queued"], "no done event");

      assert.equal(await other.finish(again, ending), "finished");
      assert.equal((await slow.get(id))?.status, "done");
      assert.deepEqual((await slow.getVideo(id))?.bytes, new Uint8Array(3));
      assert.deepEqual(await slow.stats(), { queued: 0, running: 0 });
      assert.equal(await other.finish(again, ending), "dropped", "once");
    } finally {
      await closeAll(slow, other);
      inspector.destroy();
    }
  },
);

redisTest(
  "after Redis restarts with its data, a worker gets time to heartbeat again before its job is reclaimed",
  async () => {
    await using server = await RedisServer.start({ persistent: true });
    const gone = await connect(server, { commandTimeoutMs: 300 });
    let other: RedisJobQueue | undefined;
    try {
      const { id } = await gone.submit(REQUEST, IMAGE);
      assert.ok(await gone.take("gone", AbortSignal.timeout(3000)));
      await server.stop();
      await gone.close(); // dies during the outage: its heartbeat key expires in Redis's clock
      await new Promise((resolve) => setTimeout(resolve, 2 * FAST.heartbeatTtlMs));
      await server.restart();
      other = await connect(server);
      // Its heartbeat has expired and its entry is idle, but Redis has just started: not yet.
      assert.equal(await other.take("other", AbortSignal.timeout(200)), undefined);
      // Past the grace (the larger of claimIdleMs and the heartbeat TTL, to Redis's second).
      const again = await other.take("other", AbortSignal.timeout(10_000));
      assert.equal(again?.record.id, id);
      assert.equal(again.record.attempts, 2);
    } finally {
      await closeAll(gone, other);
    }
  },
);
