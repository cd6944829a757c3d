/**
 * The worker loop on fake runners: every job ends with exactly one terminal event whatever the
 * runner does, failures do not stop the loop, and `stop` drains then cancels.
 */

import assert from "node:assert/strict";
import { jobRequest } from "./_job_request.ts";
import {
  type ClaimedJob,
  type JobEnding,
  type JobEvent,
  type JobQueue,
  StoreUnavailableError,
} from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import { ParameterError } from "../../pipeline/request/mod.ts";
import type { VideoJobRunner } from "../../pipeline/service/video_job.ts";
import { capturedLog } from "./_captured_log.ts";
import { fakeRunner, waitFor } from "./_service.ts";

const REQUEST = jobRequest({ numSteps: 3 }, { preview: "latent" });

async function events(queue: MemoryJobQueue, id: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const event of queue.events(id, undefined, new AbortController().signal)) {
    out.push(event);
  }
  return out;
}

function setup(run: VideoJobRunner, slots = 1) {
  const queue = new MemoryJobQueue({ capacity: 10, retentionMs: 10_000 });
  const log = capturedLog();
  const loop = new WorkerLoop({ queue, slots, run, log, name: "t" });
  loop.start();
  return {
    queue,
    loop,
    logs: log.lines,
    async [Symbol.asyncDispose]() {
      await loop.stop({ drainMs: 10_000, cancelAfterMs: 0 });
      await queue.close();
    },
  };
}

Deno.test("a runner that throws ends its job with an error event and the loop takes the next job", async () => {
  let calls = 0;
  const good = fakeRunner();
  await using t = setup((image, spec, context) => {
    if (calls++ === 0) throw new ParameterError("steps", 0, "is out of range", "1..200");
    return good(image, spec, context);
  });
  const first = await t.queue.submit(REQUEST, new Uint8Array());
  const second = await t.queue.submit(REQUEST, new Uint8Array());
  const failed = await events(t.queue, first.id);
  assert.deepEqual(failed.map((e) => e.type), ["queued", "error"]);
  assert.equal(failed[1].data.code, "invalid_parameter");
  assert.equal((await t.queue.get(first.id))?.status, "error");
  const ok = await events(t.queue, second.id);
  assert.equal(ok.at(-1)?.type, "done");
  assert.equal((await t.queue.get(second.id))?.status, "done");
});

Deno.test("an event the runner emits after it settled is not published after the terminal event", async () => {
  const inner = fakeRunner();
  await using t = setup(async (image, spec, context) => {
    const result = await inner(image, spec, context);
    setTimeout(() =>
      context.onEvent({
        type: "step",
        step: 9,
        total: 9,
        sigma: 0,
        elapsedMs: 0,
        etaMs: 0,
      }), 0);
    return result;
  });
  const { id } = await t.queue.submit(REQUEST, new Uint8Array());
  const all = await events(t.queue, id);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const again = await events(t.queue, id);
  assert.equal(all.at(-1)?.type, "done");
  assert.deepEqual(again, all, "nothing after done");
});

Deno.test("stop() lets a running job finish within the drain window", async () => {
  await using t = setup(fakeRunner({ stepMs: 20 }));
  const { id } = await t.queue.submit(REQUEST, new Uint8Array());
  await waitFor(() => t.loop.busy === 1, "the job running");
  assert.equal(await t.loop.stop({ drainMs: 30_000, cancelAfterMs: 20_000 }), true);
  assert.equal(t.loop.cutShort, 0, "no job cut short");
  assert.equal((await t.queue.get(id))?.status, "done");
});

Deno.test("stop() cancels a job still running after cancelAfterMs; it ends with cancelled", async () => {
  await using t = setup(fakeRunner({ stepMs: 50 }));
  const { id } = await t.queue.submit({
    ...REQUEST,
    params: { ...REQUEST.params, numSteps: 200 },
  }, new Uint8Array());
  await waitFor(() => t.loop.busy === 1, "the job running");
  const started = performance.now();
  assert.equal(await t.loop.stop({ drainMs: 5000, cancelAfterMs: 100 }), true);
  assert.equal(t.loop.cutShort, 1, "one job cut short");
  assert.ok(performance.now() - started < 2000);
  const all = await events(t.queue, id);
  assert.equal(all.at(-1)?.type, "cancelled");
  assert.equal((await t.queue.get(id))?.status, "cancelled");
});

Deno.test("a cancel requested through the queue aborts the job's signal", async () => {
  await using t = setup(fakeRunner({ stepMs: 20 }));
  const { id } = await t.queue.submit({
    ...REQUEST,
    params: { ...REQUEST.params, numSteps: 200 },
  }, new Uint8Array());
  await waitFor(async () => (await t.queue.get(id))?.status === "running", "running");
  await t.queue.requestCancel(id);
  const all = await events(t.queue, id);
  assert.equal(all.at(-1)?.type, "cancelled");
  assert.ok(all.filter((e) => e.type === "step").length < 200);
});

/** `queue` whose `finish` fails with StoreUnavailableError its first `failures` times. */
function failingFinish(queue: MemoryJobQueue, failures: number): JobQueue {
  let left = failures;
  return new Proxy(queue, {
    get(target, name) {
      if (name === "finish") {
        return (job: ClaimedJob, ending: JobEnding) =>
          left-- > 0
            ? Promise.reject(new StoreUnavailableError("Redis is unavailable"))
            : target.finish(job, ending);
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a job's ending is retried while the store is unavailable, then recorded once", async () => {
  const memory = new MemoryJobQueue({ capacity: 10, retentionMs: 10_000 });
  const log = capturedLog();
  const loop = new WorkerLoop({
    queue: failingFinish(memory, 3),
    slots: 1,
    run: fakeRunner(),
    log,
  });
  loop.start();
  try {
    const { id } = await memory.submit(REQUEST, new Uint8Array());
    const all = await events(memory, id);
    assert.deepEqual(all.filter((e) => e.type === "started").length, 1);
    assert.equal(all.at(-1)?.type, "done");
    assert.equal((await memory.get(id))?.status, "done");
    assert.equal((await memory.getVideo(id))?.bytes.length, 1000);
    const kinds = log.lines.map((l) => l.event);
    assert.ok(kinds.includes("finish_retrying") && kinds.includes("finish_recorded"), `${kinds}`);
  } finally {
    await loop.stop({ drainMs: 5000, cancelAfterMs: 0 });
    await memory.close();
  }
});

Deno.test("a job whose ending cannot be recorded within storeRetryMs is handed back and runs again", async () => {
  const memory = new MemoryJobQueue({ capacity: 10, retentionMs: 10_000 });
  const log = capturedLog();
  const loop = new WorkerLoop({
    queue: failingFinish(memory, 2),
    slots: 1,
    run: fakeRunner(),
    log,
    storeRetryMs: 100,
  });
  loop.start();
  try {
    const { id } = await memory.submit(REQUEST, new Uint8Array());
    const all = await events(memory, id);
    assert.equal(all.filter((e) => e.type === "started").length, 2, "ran again");
    assert.equal(all.at(-1)?.type, "done");
    assert.ok(log.lines.some((l) => l.event === "finish_failed"));
  } finally {
    await loop.stop({ drainMs: 5000, cancelAfterMs: 0 });
    await memory.close();
  }
});
