/**
 * What only the Redis queue does for deadlines, live positions and webhooks, against a real
 * `redis-server` on loopback: the sweep ends a job past its deadline whose worker stopped
 * heartbeating (and leaves a live worker's to it); waiting streams follow the queue through the
 * one moves stream, without a command per stream per change (counted with `INFO commandstats`,
 * against the same takes with no stream open); a delivered webhook leaves no key behind and the
 * job's deliveries expire with the job. Skipped with a message when redis-server is missing.
 */

import assert from "node:assert/strict";
import { createClient } from "redis";
import type { JobEvent } from "../../functions/jobs/job_queue.ts";
import { RedisJobQueue, type RedisJobQueueOptions } from "../../functions/jobs/redis_job_queue.ts";
import { jobRequest } from "./_job_request.ts";
import { RedisServer, redisTest } from "./_redis_server.ts";
import { waitFor } from "./_service.ts";

const REQUEST = jobRequest({ numFrames: 2, decodingT: 2, width: 64 });
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
const FAST = {
  capacity: 64,
  retentionMs: 60_000,
  claimIdleMs: 300,
  heartbeatTtlMs: 1500,
  blockMs: 100,
  commandTimeoutMs: 2000,
  connectTimeoutMs: 3000,
} as const;

function connect(server: RedisServer, options: Partial<RedisJobQueueOptions> = {}) {
  return RedisJobQueue.connect({ url: server.url, ...FAST, ...options });
}

redisTest(
  "expire() ends a job past its deadline whose worker stopped heartbeating, and leaves a live worker's job to it",
  async () => {
    await using server = await RedisServer.start();
    const api = await connect(server);
    const dead = await connect(server);
    const alive = await connect(server);
    try {
      const lost = await api.submit(jobRequest({}, { timeoutSeconds: 5 }), IMAGE);
      const kept = await api.submit(jobRequest({}, { timeoutSeconds: 5 }), IMAGE);
      const lostJob = await dead.take("gpu", AbortSignal.timeout(3000));
      const keptJob = await alive.take("gpu", AbortSignal.timeout(3000));
      assert.deepEqual([lostJob?.record.id, keptJob?.record.id], [lost.id, kept.id]);
      await dead.update(lost.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
      await dead.close(); // its heartbeat is deleted: as a worker that died
      const ended = await api.expire(lost.createdAt + 10_000);
      assert.deepEqual(ended.map((r) => [r.id, r.status, r.error?.code]), [
        [lost.id, "error", "deadline_exceeded"],
      ]);
      assert.match(ended[0].error!.message, /while running/);
      assert.equal((await api.get(kept.id))?.status, "queued", "its live worker ends it");
      assert.deepEqual(await api.stats(), { queued: 0, running: 1 });
      assert.deepEqual(await api.expire(lost.createdAt + 10_000), [], "ended once");
      const events = [];
      for await (const event of api.events(lost.id, undefined, AbortSignal.timeout(3000))) {
        events.push(event.type);
      }
      assert.deepEqual(events, ["queued", "error"]);
    } finally {
      await Promise.all([api.close(), alive.close()]);
    }
  },
);

/**
 * Opens a stream on each of `streams` queued jobs, then takes `takes` jobs one at a time, each
 * after every open stream has seen the previous change; returns the commands Redis ran meanwhile
 * (idle polls and heartbeats left out) and the positions each stream was told.
 */
async function countCommands(streams: number, takes: number) {
  await using server = await RedisServer.start();
  const api = await connect(server, { blockMs: 2000 });
  const worker = await connect(server);
  const client = createClient({ url: server.url });
  await client.connect();
  const stop = new AbortController();
  try {
    const first = [];
    for (let i = 0; i < takes; i++) first.push(await api.submit(REQUEST, IMAGE));
    const waiting = [];
    for (let i = 0; i < streams; i++) waiting.push(await api.submit(REQUEST, IMAGE));
    const told: number[][] = waiting.map(() => []);
    const reading = waiting.map(async (record, i) => {
      for await (
        const event of api.events(record.id, undefined, stop.signal) as AsyncIterable<JobEvent>
      ) {
        if (event.type === "queued") told[i].push(event.data.position as number);
      }
    });
    await waitFor(() => told.every((positions) => positions.length === 1), "every first event");
    await new Promise((resolve) => setTimeout(resolve, 300)); // every stream waits live now
    const before = await commands(client);
    for (let n = 1; n <= takes; n++) {
      const job = await worker.take("gpu", AbortSignal.timeout(5000));
      assert.ok(job);
      await worker.complete(job);
      await waitFor(
        () => told.every((positions, i) => positions.at(-1) === takes + i + 1 - n),
        `every stream told its place after take ${n}`,
        30_000,
      );
    }
    const after = await commands(client);
    stop.abort();
    await Promise.all(reading);
    return { commands: after - before, told };
  } finally {
    stop.abort();
    await client.quit();
    await Promise.all([api.close(), worker.close()]);
  }
}

/** Commands Redis ran so far, but for idle polls (EXISTS), heartbeats (SET) and this count. */
async function commands(client: ReturnType<typeof createClient>): Promise<number> {
  const text = await client.info("commandstats");
  let total = 0;
  for (const match of text.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) {
    if (!["exists", "set", "info", "del"].includes(match[1])) total += Number(match[2]);
  }
  return total;
}

redisTest(
  "30 waiting streams follow 10 takes through one moves stream: no command per stream per change",
  async () => {
    const takes = 10;
    const alone = await countCommands(0, takes);
    const watched = await countCommands(30, takes);
    for (const [i, positions] of watched.told.entries()) {
      const start = takes + i + 1;
      assert.deepEqual(positions, Array.from({ length: takes + 1 }, (_, n) => start - n));
    }
    const extra = (watched.commands - alone.commands) / takes;
    console.log(
      `commands per take: ${alone.commands / takes} with no stream open, ${
        watched.commands / takes
      } with 30 (${extra.toFixed(1)} more per change for 30 streams)`,
    );
    assert.ok(extra < 10, `${extra} more commands per change: a command per stream would be ≥ 30`);
  },
);

redisTest(
  "a delivered webhook leaves no delivery key behind; the job's deliveries expire with the job",
  async () => {
    await using server = await RedisServer.start();
    const queue = await connect(server, { prefix: "hk" });
    const client = createClient({ url: server.url });
    await client.connect();
    try {
      const { id } = await queue.submit(
        jobRequest({}, { webhook: "https://hooks.example.com/", webhookEvents: ["started"] }),
        IMAGE,
      );
      const job = await queue.take("gpu", AbortSignal.timeout(3000));
      await queue.update(id, { status: "running", startedAt: Date.now(), worker: "gpu" });
      await queue.publish(id, "started", {});
      const [delivery] = (await queue.webhooks.claim(1, 60_000)).leased;
      assert.ok(await client.exists(`hk:webhook:${delivery.id}`));
      await queue.webhooks.settle(delivery, { at: Date.now(), ms: 1, status: 200 }, {
        state: "delivered",
      });
      assert.equal(await client.exists(`hk:webhook:${delivery.id}`), 0);
      assert.equal(await client.zCard("hk:webhooks:due"), 0);
      await queue.finish(job!, { status: "done", data: {}, patch: { finishedAt: Date.now() } });
      const [record, hooks] = [
        await client.pTTL(`hk:job:${id}`),
        await client.pTTL(`hk:job:${id}:webhooks`),
      ];
      assert.ok(hooks > 0 && Math.abs(record - hooks) < 1000, `${record} vs ${hooks}`);
      assert.equal(await client.zCard("hk:deadlines"), 0);
      assert.equal(await client.zCard("hk:queued"), 0);
    } finally {
      await client.quit();
      await queue.close();
    }
  },
);
