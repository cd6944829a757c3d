/**
 * The embedded job queue against the `JobQueue` contract: FIFO, bounded, positions, event logs
 * replayed after an id then live, cancellation, retention, close.
 */

import assert from "node:assert/strict";
import { jobRequest } from "./_job_request.ts";
import type { JobEvent } from "../../functions/jobs/job_queue.ts";
import { QueueFullError } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";

const REQUEST = jobRequest();
const IMAGE = new Uint8Array([1, 2, 3]);

async function collect(iterable: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const event of iterable) out.push(event);
  return out;
}

Deno.test({
  name: "MemoryJobQueue hands out jobs first in, first out, with 1-based positions",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 5, retentionMs: 1000 });
    try {
      const a = await queue.submit(REQUEST, IMAGE);
      const b = await queue.submit(REQUEST, IMAGE);
      assert.equal(await queue.position(a.id), 1);
      assert.equal(await queue.position(b.id), 2);
      const taken = await queue.take("w", new AbortController().signal);
      assert.equal(taken?.record.id, a.id);
      assert.deepEqual(taken?.image, IMAGE);
      assert.equal(taken?.record.attempts, 1);
      assert.equal(await queue.position(a.id), undefined);
      assert.equal(await queue.position(b.id), 1);
      assert.deepEqual(await queue.stats(), { queued: 1, running: 1 });
      await queue.complete(taken!);
      assert.deepEqual(await queue.stats(), { queued: 1, running: 0 });
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue refuses a job beyond its capacity (queued + running) with QueueFullError",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({
      capacity: 2,
      retentionMs: 1000,
      retryAfterSeconds: () => 12,
    });
    try {
      await queue.submit(REQUEST, IMAGE);
      const taken = await queue.take("w", new AbortController().signal);
      await queue.submit(REQUEST, IMAGE);
      await assert.rejects(queue.submit(REQUEST, IMAGE), (error: unknown) => {
        assert.ok(error instanceof QueueFullError);
        assert.equal(error.retryAfterSeconds, 12);
        return true;
      });
      await queue.complete(taken!);
      await queue.submit(REQUEST, IMAGE);
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue.take waits for a job and returns undefined when its signal aborts",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 1000 });
    try {
      const waiting = queue.take("w", new AbortController().signal);
      const record = await queue.submit(REQUEST, IMAGE);
      assert.equal((await waiting)?.record.id, record.id);
      const stop = new AbortController();
      const idle = queue.take("w", stop.signal);
      stop.abort();
      assert.equal(await idle, undefined);
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name:
    "MemoryJobQueue.events replays after an id, then follows live events, ending after a terminal one",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 1000 });
    try {
      const { id } = await queue.submit(REQUEST, IMAGE);
      await queue.publish(id, "started", {});
      await queue.publish(id, "step", { step: 1 });
      const live = collect(queue.events(id, "2", new AbortController().signal));
      await queue.publish(id, "step", { step: 2 });
      await queue.publish(id, "done", {});
      await queue.publish(id, "step", { step: 99 }); // after the end: never streamed
      const events = await live;
      assert.deepEqual(events.map((e) => [e.id, e.type]), [["3", "step"], ["4", "step"], [
        "5",
        "done",
      ]]);
      const all = await collect(queue.events(id, undefined, new AbortController().signal));
      assert.deepEqual(all.map((e) => e.id), ["1", "2", "3", "4", "5"]);
      assert.deepEqual(all[0], { id: "1", type: "queued", data: { position: 1 } });
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue.events stops when its signal aborts",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 1000 });
    try {
      const { id } = await queue.submit(REQUEST, IMAGE);
      const stop = new AbortController();
      const reading = collect(queue.events(id, undefined, stop.signal));
      await new Promise((resolve) => setTimeout(resolve, 10));
      stop.abort();
      assert.deepEqual((await reading).map((e) => e.type), ["queued"]);
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue.requestCancel cancels a queued job at once and flags a running one",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 3, retentionMs: 1000 });
    try {
      const running = await queue.submit(REQUEST, IMAGE);
      const queued = await queue.submit(REQUEST, IMAGE);
      const taken = await queue.take("w", new AbortController().signal);
      await queue.update(running.id, { status: "running" });

      const cancelled = await queue.requestCancel(queued.id);
      assert.equal(cancelled?.status, "cancelled");
      assert.equal(await queue.position(queued.id), undefined);
      const events = await collect(
        queue.events(queued.id, undefined, new AbortController().signal),
      );
      assert.deepEqual(events.map((e) => e.type), ["queued", "cancelled"]);

      assert.equal(await queue.cancelRequested(running.id), false);
      assert.equal((await queue.requestCancel(running.id))?.status, "running");
      assert.equal(await queue.cancelRequested(running.id), true);
      assert.equal(await queue.requestCancel("unknown"), undefined);
      await queue.complete(taken!);
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue forgets a finished job, its events and its video after the retention time",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 50 });
    try {
      const { id } = await queue.submit(REQUEST, IMAGE);
      const job = await queue.take("w", new AbortController().signal);
      await queue.putVideo(id, { bytes: IMAGE, contentType: "video/mp4", format: "mp4" });
      await queue.update(id, { status: "done", finishedAt: Date.now() });
      await queue.complete(job!);
      assert.ok(await queue.getVideo(id));
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(await queue.get(id), undefined);
      assert.equal(await queue.getVideo(id), undefined);
      assert.equal(queue.size, 0);
    } finally {
      await queue.close();
    }
  },
});

Deno.test({
  name: "MemoryJobQueue.close cancels unfinished jobs, ends their streams and refuses new ones",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 1000 });
    const { id } = await queue.submit(REQUEST, IMAGE);
    const reading = collect(queue.events(id, undefined, new AbortController().signal));
    await queue.close();
    assert.deepEqual((await reading).map((e) => e.type), ["queued", "cancelled"]);
    await assert.rejects(queue.submit(REQUEST, IMAGE), { name: "StoreUnavailableError" });
    assert.equal(await queue.ready(), false);
  },
});
