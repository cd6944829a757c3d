/**
 * Scale-out with a real `redis-server` on loopback: `main.ts` as two `ROLE=api` processes and two
 * `ROLE=worker` processes sharing one Redis (`REDIS_URL`). Jobs posted to one API instance spread
 * over both workers and all end; an event stream read on one API instance resumes on the other
 * with `Last-Event-ID` without loss or repetition; a worker killed with SIGKILL mid-job has its job
 * reclaimed and run to the end by the other; the clip is served by the other API instance with the
 * requested frames; no job keys are left after the retention time; a Redis restart turns `/readyz`
 * and new requests to 503 and the service recovers by itself. A worker on SIGTERM hands back a job
 * it cannot finish within `DRAIN_SECONDS`, which another worker then completes (and, without Redis,
 * the worker loop's `atDeadline: "release"` that this rests on).
 *
 * Skipped, with a message, when `redis-server` is not installed.
 */

import assert from "node:assert/strict";
import { jobRequest } from "./_job_request.ts";
import { createClient } from "redis";
import { RedisServer, redisServerMissing } from "./_redis_server.ts";
import { type SseEvent, SseReader } from "./_sse_client.ts";
import { MainProcess as Service } from "./_main_process.ts";
import { fakeRunner, inputPng, postGeneration, upload, waitFor } from "./_service.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";

/** Every wait in this file is bounded by this or less. */
const LONG_MS = 90_000;

/** Status code of `GET url` (0 when the request fails), its body consumed. */
async function statusOf(url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

async function waitReady(url: string, want = 200, timeoutMs = LONG_MS): Promise<void> {
  await waitFor(
    async () => (await statusOf(`${url}/readyz`)) === want,
    `${url}/readyz ${want}`,
    timeoutMs,
  );
}

/** Posts a job (202) and returns its id. */

async function statusJson(url: string, id: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}/v1/generations/${id}`);
  assert.equal(response.status, 200);
  return await response.json();
}

const TERMINAL = new Set(["done", "error", "cancelled"]);

/** Frames of a clip, counted by ffprobe. */
async function countFrames(bytes: Uint8Array): Promise<number> {
  const path = await Deno.makeTempFile({ suffix: ".mp4" });
  try {
    await Deno.writeFile(path, bytes);
    const { stdout, success } = await new Deno.Command("ffprobe", {
      // deno-fmt-ignore
      args: ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
        "stream=nb_read_frames", "-of", "csv=p=0", path],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.ok(success, "ffprobe reads the clip");
    return Number(new TextDecoder().decode(stdout).trim());
  } finally {
    await Deno.remove(path);
  }
}

/** A long job for the tiny model: ~40 ms a step alone on one core. */
/**
 * A job's events read to a terminal event as EventSource would: when the stream ends early (the
 * server closes it on a store hiccup), reconnect with `Last-Event-ID` after the advertised retry.
 */
async function followToEnd(url: string, id: string, after: SseEvent[] = []): Promise<SseEvent[]> {
  const events: SseEvent[] = [...after];
  const deadline = Date.now() + LONG_MS;
  while (!TERMINAL.has(events.at(-1)?.event ?? "") && Date.now() < deadline) {
    const last = events.at(-1)?.id;
    const response = await fetch(`${url}/v1/generations/${id}/events`, {
      headers: last ? { "Last-Event-ID": last } : {},
    }).catch(() => undefined);
    if (response?.ok) {
      const reader = new SseReader(response);
      await reader.rest().catch(() => {});
      events.push(...reader.events);
    } else await response?.body?.cancel();
    if (!TERMINAL.has(events.at(-1)?.event ?? "")) await new Promise((r) => setTimeout(r, 2000));
  }
  return events;
}

const LONG = { steps: "120", num_frames: "4", width: "128", height: "64", preview: "none" };

Deno.test({
  name:
    "scale-out: 2 API + 2 worker processes on one redis-server — spread, resume across instances, SIGKILL, retention, Redis restart",
  ignore: redisServerMissing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using redis = await RedisServer.start();
    const common = {
      REDIS_URL: redis.url,
      REDIS_CLAIM_IDLE_MS: "1000",
      RETENTION_SECONDS: "6",
      QUEUE_SIZE: "8",
      DRAIN_SECONDS: "5",
      HEARTBEAT_SECONDS: "1",
    };
    await using api1 = new Service({ ...common, ROLE: "api" });
    await using api2 = new Service({ ...common, ROLE: "api" });
    await using worker1 = new Service({ ...common, ROLE: "worker" });
    await using worker2 = new Service({ ...common, ROLE: "worker" });
    const [a1, a2, w1, w2] = await Promise.all([api1, api2, worker1, worker2].map((s) => s.url()));
    await Promise.all([a1, a2, w1, w2].map((url) => waitReady(url)));
    const client = createClient({ url: redis.url });
    client.on("error", () => {}); // Redis is restarted below; the client is not used then
    await client.connect();
    try {
      // The roles: a worker serves only the probes, an API instance loads no model.
      assert.equal(await statusOf(`${w1}/v1/generations/x`), 404);
      assert.equal(await statusOf(`${w1}/metrics`), 200);
      assert.equal((await api1.line("ready")).role, "api");
      assert.equal((await (await fetch(`${a1}/readyz`)).json()).provider, "none (api role)");

      // Four jobs posted to one API instance; cluster-wide positions in their `queued` events.
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        ids.push(await postGeneration(a1, { ...LONG, seed: String(i + 1) }));
      }
      // The other jobs' streams, read to their end on the other API instance.
      const watched = ids.slice(1).map((id) => followToEnd(a2, id));

      // The first job's stream, read on api1 until step 3, resumed on api2 with Last-Event-ID.
      const first = new SseReader(await fetch(`${a1}/v1/generations/${ids[0]}/events`));
      const queued = await first.next();
      assert.equal(queued?.event, "queued");
      const lastStep = await first.until((e) => e.event === "step" && e.data.step >= 3);
      assert.ok(lastStep?.id, "a step event with an id");
      await first.cancel();
      const resumed = new SseReader(
        await fetch(`${a2}/v1/generations/${ids[0]}/events`, {
          headers: { "Last-Event-ID": lastStep.id! },
        }),
      );
      const next = await resumed.next();
      assert.equal(next?.event, "step");
      assert.equal(next?.data.step, lastStep.data.step + 1, "continues from the next step");

      // While both workers run a job, SIGKILL the one not running the resumed job.
      const owners = await waitFor(
        async () => {
          const workers = await Promise.all(
            ids.slice(0, 2).map((id) => client.hGet(`svd:job:${id}`, "worker")),
          );
          return workers.every((w) => w) ? workers as string[] : undefined;
        },
        "both first jobs running",
        LONG_MS,
      );
      const onW1 = owners.filter((w) => w.startsWith(worker1.workerPrefix)).length;
      const onW2 = owners.filter((w) => w.startsWith(worker2.workerPrefix)).length;
      assert.deepEqual([onW1, onW2], [1, 1], `jobs spread over both workers: ${owners}`);
      const [victim, survivor] = owners[0].startsWith(worker1.workerPrefix)
        ? [worker2, worker1]
        : [worker1, worker2];
      victim.process.kill("SIGKILL");
      await victim.ended();

      // The resumed stream goes on to `done`, without repeating an event.
      const rest = await followToEnd(a2, ids[0], await resumed.rest().catch(() => resumed.events));
      const all: SseEvent[] = [...first.events, ...rest];
      const seen = new Set(all.map((e) => e.id));
      assert.equal(seen.size, all.length, "no event twice");
      assert.equal(rest.at(-1)?.event, "done", JSON.stringify(rest.at(-1)));
      const steps = all.filter((e) => e.event === "step").map((e) => e.data.step);
      assert.deepEqual(steps, Array.from({ length: 120 }, (_, i) => i + 1), "no step lost");

      // Every job ends (the killed worker's job is reclaimed by the survivor); ≥ 3 complete.
      const streams = [all, ...await Promise.all(watched)];
      const finals = streams.map((events) => events.at(-1)?.event);
      assert.ok(finals.every((t) => TERMINAL.has(t!)), `every job ended: ${finals}`);
      assert.ok(finals.filter((t) => t === "done").length >= 3, `at least 3 done: ${finals}`);
      // The dead worker's job was reclaimed and ran again from the start, to the end.
      const lost = streams[owners.findIndex((w) => !w.startsWith(survivor.workerPrefix))];
      assert.ok(
        lost.some((e) => e.event === "queued" && e.data.reason === "worker_lost"),
        JSON.stringify(lost.map((e) => e.event)),
      );
      assert.equal(lost.filter((e) => e.event === "started").length, 2, "ran again");
      assert.equal(lost.at(-1)?.event, "done");

      // The clip of the last job, served by the other API instance, has the requested frames.
      const last = ids.at(-1)!;
      assert.equal((await statusJson(a2, last)).status, "done");
      const video = await fetch(`${a2}/v1/generations/${last}/video`);
      assert.equal(video.status, 200);
      assert.equal(video.headers.get("content-type"), "video/mp4");
      assert.equal(await countFrames(new Uint8Array(await video.arrayBuffer())), 4);

      // No job keys after the retention time (4 s after each job ended).
      await waitFor(
        async () => (await client.keys("svd:job:*")).length === 0,
        "job keys expired",
        15_000,
      );
      assert.equal(await client.xLen("svd:jobs"), 0, "the jobs stream is empty");

      // Redis goes away: /readyz 503 everywhere, requests 503 with a clear error.
      await redis.stop();
      await Promise.all([a1, a2, survivor === worker1 ? w1 : w2].map((u) => waitReady(u, 503)));
      const refused = await fetch(`${a1}/v1/generations`, {
        method: "POST",
        body: upload(await inputPng(), { ...LONG, steps: "2" }),
      });
      assert.equal(refused.status, 503);
      const error = (await refused.json()).error;
      assert.match(error.message, /redis|store/i, JSON.stringify(error));
      // Redis returns (empty): the service recovers by itself and runs a job end to end.
      await redis.restart();
      await Promise.all([a1, a2, survivor === worker1 ? w1 : w2].map((u) => waitReady(u)));
      const after = await postGeneration(a2, { ...LONG, steps: "3" });
      const events = await new SseReader(await fetch(`${a1}/v1/generations/${after}/events`))
        .rest();
      assert.equal(events.at(-1)?.event, "done", JSON.stringify(events.at(-1)));
    } finally {
      client.destroy();
    }
  },
});

Deno.test({
  name:
    "scale-out: a worker on SIGTERM hands back a job it cannot finish within DRAIN_SECONDS, and another worker completes it",
  ignore: redisServerMissing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using redis = await RedisServer.start();
    const common = { REDIS_URL: redis.url, REDIS_CLAIM_IDLE_MS: "1000", HEARTBEAT_SECONDS: "1" };
    await using api = new Service({ ...common, ROLE: "api" });
    await using worker1 = new Service({ ...common, ROLE: "worker", DRAIN_SECONDS: "2" });
    const [a, w1] = await Promise.all([api.url(), worker1.url()]);
    await Promise.all([waitReady(a), waitReady(w1)]);
    const id = await postGeneration(a, { ...LONG, steps: "200" });
    const sse = new SseReader(await fetch(`${a}/v1/generations/${id}/events`));
    await sse.until((e) => e.event === "step");
    worker1.process.kill("SIGTERM");
    const { status } = await worker1.ended();
    assert.equal(status.code, 0);
    assert.ok(worker1.lines.some((l) => l.event === "job_released"), "the job was handed back");
    // The job is queued again (not cancelled) and a new worker runs it from the start.
    assert.equal((await statusJson(a, id)).status, "queued");
    await using worker2 = new Service({ ...common, ROLE: "worker" });
    const events = await sse.rest();
    const types = events.map((e) => e.event);
    assert.equal(types.at(-1), "done", JSON.stringify(events.at(-1)));
    assert.ok(!types.includes("cancelled"));
    assert.equal(types.filter((t) => t === "started").length, 2, "ran again from the start");
    await worker2.url();
  },
});

Deno.test("WorkerLoop.stop({atDeadline: 'release'}) hands a job still running at the deadline back to the queue instead of cancelling it", async () => {
  const queue = new MemoryJobQueue({ capacity: 4, retentionMs: 60_000 });
  const loop = new WorkerLoop({
    queue,
    slots: 1,
    run: fakeRunner({ stepMs: 50 }),
    cancelPollMs: 20,
    name: "drain",
  });
  const request = jobRequest({ numSteps: 100 });
  const record = await queue.submit(request, new Uint8Array(8));
  loop.start();
  const controller = new AbortController();
  const events: string[] = [];
  const reading = (async () => {
    for await (const event of queue.events(record.id, undefined, controller.signal)) {
      events.push(event.type);
      if (event.type === "queued" && events.includes("started")) break;
    }
  })();
  await waitFor(() => events.includes("step"), "a step", 10_000);
  assert.equal(await loop.stop({ drainMs: 1000, cancelAfterMs: 100, atDeadline: "release" }), true);
  await reading;
  controller.abort();
  const after = await queue.get(record.id);
  assert.equal(after?.status, "queued", "back in the queue, not cancelled");
  assert.ok(!events.includes("cancelled"));
  assert.equal(await queue.position(record.id), 1);
  await queue.close();
});
