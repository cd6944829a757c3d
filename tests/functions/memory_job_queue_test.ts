/**
 * What only the embedded job queue does; the `JobQueue` contract it shares with the Redis queue is
 * `job_queue_contract_test.ts`. Here: retention by timer, `close()` cancelling what it holds
 * (nothing outlives the process), and a released job going back to the front of the queue.
 */

import assert from "node:assert/strict";
import { jobRequest } from "./_job_request.ts";
import type { JobEvent } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";

const REQUEST = jobRequest();
const IMAGE = new Uint8Array([1, 2, 3]);

async function collect(iterable: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const event of iterable) out.push(event);
  return out;
}

Deno.test({
  name: "MemoryJobQueue.release puts the job back at the front of the queue",
  permissions: "none",
  async fn() {
    const queue = new MemoryJobQueue({ capacity: 3, retentionMs: 1000 });
    try {
      const first = await queue.submit(REQUEST, IMAGE);
      const second = await queue.submit(REQUEST, IMAGE);
      const job = await queue.take("w", new AbortController().signal);
      assert.equal(job?.record.id, first.id);
      await queue.release(job!);
      assert.equal(await queue.position(first.id), 1);
      assert.equal(await queue.position(second.id), 2);
      assert.equal((await queue.take("w", new AbortController().signal))?.record.id, first.id);
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
