/**
 * The event stream's own behaviour: a store that fails for a moment does not end the stream early
 * (it resubscribes after the last event sent, without repeating one); a store that stays down
 * ends it with an error.
 */

import assert from "node:assert/strict";
import {
  type JobEvent,
  type JobQueue,
  type JobRequest,
  StoreUnavailableError,
} from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { sseResponse } from "../../functions/sse.ts";
import { SseReader } from "./_sse_client.ts";

const REQUEST = {
  model: "tiny",
  params: {},
  format: "mp4",
  size: "cover",
  preview: "none",
  keepRunning: false,
} as unknown as JobRequest;

/** `queue` whose `events()` subscriptions fail after `failAfter` events, `failures` times. */
function flaky(
  queue: MemoryJobQueue,
  failures: number,
  failAfter = 2,
): JobQueue & { subscriptions: (string | undefined)[] } {
  let left = failures;
  const subscriptions: (string | undefined)[] = [];
  return Object.assign(Object.create(queue), {
    subscriptions,
    async *events(
      id: string,
      afterId: string | undefined,
      signal: AbortSignal,
    ): AsyncGenerator<JobEvent> {
      subscriptions.push(afterId);
      let sent = 0;
      for await (const event of queue.events(id, afterId, signal)) {
        if (left > 0 && sent === failAfter) {
          left--;
          throw new StoreUnavailableError("Redis did not answer within 5000 ms");
        }
        yield event;
        sent++;
      }
    },
  });
}

async function jobWithEvents(queue: MemoryJobQueue): Promise<string> {
  const { id } = await queue.submit(REQUEST, new Uint8Array([1]));
  for (let step = 1; step <= 4; step++) await queue.publish(id, "step", { step });
  await queue.publish(id, "done", {});
  return id;
}

Deno.test({
  name: "an SSE stream rides out a store hiccup: it resubscribes after the last event sent",
  permissions: "none",
  async fn() {
    const memory = new MemoryJobQueue({ capacity: 2, retentionMs: 60_000 });
    try {
      const id = await jobWithEvents(memory);
      const queue = flaky(memory, 2);
      const reader = new SseReader(
        sseResponse(queue, id, { heartbeatMs: 60_000, storeRetryMs: 1 }),
      );
      const events = await reader.rest();
      assert.deepEqual(events.map((e) => e.event), [
        "queued",
        "step",
        "step",
        "step",
        "step",
        "done",
      ]);
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, "no event twice");
      assert.deepEqual(queue.subscriptions, [undefined, events[1].id, events[3].id]);
    } finally {
      await memory.close();
    }
  },
});

Deno.test({
  name: "an SSE stream whose store stays unavailable ends with an error after its retries",
  permissions: "none",
  async fn() {
    const memory = new MemoryJobQueue({ capacity: 2, retentionMs: 60_000 });
    try {
      const id = await jobWithEvents(memory);
      const queue = flaky(memory, Infinity, 0);
      const reader = new SseReader(
        sseResponse(queue, id, { heartbeatMs: 60_000, storeRetries: 3, storeRetryMs: 1 }),
      );
      await assert.rejects(reader.rest());
      assert.equal(queue.subscriptions.length, 4); // the first subscription and 3 retries
    } finally {
      await memory.close();
    }
  },
});
