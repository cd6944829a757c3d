/**
 * Deadlines through the worker loop and the HTTP service on fake runners: a running job past its
 * `timeout_seconds` ends with `error {code: "deadline_exceeded"}` at its next step and its slot
 * takes the next job; a job taken past its deadline ends without running; a queued job past it
 * ends through the sweeper while the only slot is busy, and its client's stream gets the error;
 * `MAX_JOB_SECONDS` bounds and fills `timeout_seconds`, and the status says `deadline_at`.
 */

import assert from "node:assert/strict";
import { DeadlineExceededError, DeadlineSweeper } from "../../functions/jobs/deadlines.ts";
import type { JobEvent } from "../../functions/jobs/job_queue.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { WorkerLoop } from "../../functions/jobs/worker_loop.ts";
import type { VideoJobRunner } from "../../pipeline/service/video_job.ts";
import { capturedLog } from "./_captured_log.ts";
import { jobRequest } from "./_job_request.ts";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

const PERMISSIONS: Deno.PermissionOptions = {
  read: true,
  write: true,
  net: ["127.0.0.1"],
  env: true,
  sys: ["homedir", "osRelease", "uid", "gid"],
  run: true,
  ffi: true,
};

async function allEvents(queue: MemoryJobQueue, id: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const event of queue.events(id, undefined, AbortSignal.timeout(60_000))) {
    out.push(event);
  }
  return out;
}

Deno.test("a running job past its deadline ends with deadline_exceeded at its next step, and its slot takes the next job", async () => {
  const queue = new MemoryJobQueue({ capacity: 10, retentionMs: 60_000 });
  const log = capturedLog();
  const reasons: unknown[] = [];
  const slow = fakeRunner({ stepMs: 100 });
  const run: VideoJobRunner = (image, spec, context) => {
    context.signal.addEventListener("abort", () => reasons.push(context.signal.reason));
    return slow(image, spec, context);
  };
  const loop = new WorkerLoop({ queue, slots: 1, run, log, name: "t" });
  loop.start();
  try {
    // 600 steps of 100 ms would take a minute; its deadline is a second from submission.
    const late = await queue.submit(jobRequest({ numSteps: 600 }, { timeoutSeconds: 1 }), IMAGE);
    const next = await queue.submit(jobRequest({ numSteps: 2 }), IMAGE);
    const events = await allEvents(queue, late.id);
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "error");
    assert.deepEqual(types.slice(0, 2), ["queued", "started"]);
    const steps = types.filter((t) => t === "step").length;
    assert.ok(steps > 0 && steps < 600, `${steps} steps ran`);
    assert.equal(events.at(-1)!.data.code, "deadline_exceeded");
    assert.match(
      String(events.at(-1)!.data.message),
      /deadline \(timeout_seconds = 1 from its submission\) while running/,
    );
    assert.ok(reasons[0] instanceof DeadlineExceededError, "the job's signal says why");
    const record = await queue.get(late.id);
    assert.equal(record?.status, "error");
    assert.equal(record.error?.code, "deadline_exceeded");
    assert.equal((await allEvents(queue, next.id)).at(-1)?.type, "done", "the slot went on");
    const line = log.lines.find((l) => l.event === "job_failed" && l.generation === late.id);
    assert.equal(line?.code, "deadline_exceeded");
    assert.match(String(line?.at), /^at step \d+ of 600$/);
  } finally {
    await loop.stop({ drainMs: 10_000, cancelAfterMs: 0 });
    await queue.close();
  }
});

Deno.test("a job taken past its deadline ends at once, without running", async () => {
  const queue = new MemoryJobQueue({ capacity: 10, retentionMs: 60_000 });
  let ran = 0;
  const run: VideoJobRunner = (image, spec, context) => {
    ran++;
    return fakeRunner()(image, spec, context);
  };
  const record = await queue.submit(jobRequest({}, { timeoutSeconds: 1 }), IMAGE);
  await new Promise((resolve) => setTimeout(resolve, 1100)); // no worker yet, no sweeper
  const loop = new WorkerLoop({ queue, slots: 1, run, log: capturedLog(), name: "t" });
  loop.start();
  try {
    const events = await allEvents(queue, record.id);
    assert.deepEqual(events.map((e) => [e.type, e.data.code]), [
      ["queued", undefined],
      ["error", "deadline_exceeded"],
    ]);
    assert.match(String(events[1].data.message), /while queued/);
    assert.equal(ran, 0);
  } finally {
    await loop.stop({ drainMs: 10_000, cancelAfterMs: 0 });
    await queue.close();
  }
});

Deno.test("DeadlineSweeper logs each job it ends, and a failing sweep once per failure", async () => {
  const queue = new MemoryJobQueue({ capacity: 10, retentionMs: 60_000 });
  const log = capturedLog();
  let now = Date.now();
  const sweeper = new DeadlineSweeper({ queue, log, now: () => now });
  const record = await queue.submit(jobRequest({}, { timeoutSeconds: 30 }), IMAGE);
  await sweeper.sweep();
  assert.equal((await queue.get(record.id))?.status, "queued");
  now += 31_000;
  await sweeper.sweep();
  assert.equal((await queue.get(record.id))?.status, "error");
  assert.deepEqual(
    log.lines.map((l) => [l.event, l.generation, l.code, l.at]),
    [["job_failed", record.id, "deadline_exceeded", "queued"]],
  );
  await queue.close();

  const broken = capturedLog();
  const failing = new DeadlineSweeper({
    queue: { expire: () => Promise.reject(new Error("Redis is away")) },
    log: broken,
  });
  await failing.sweep();
  await failing.sweep();
  assert.deepEqual(broken.lines.map((l) => [l.event, l.error]), [
    ["deadline_sweep_failed", "Redis is away"],
  ]);
});

Deno.test({
  name: "through HTTP: MAX_JOB_SECONDS bounds and fills timeout_seconds, and a queued job past " +
    "its deadline ends while the only slot is busy, its stream told in time",
  permissions: PERMISSIONS,
  async fn() {
    let open: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => open = resolve);
    let first = true;
    await using service = await testService({
      run: fakeRunner({ gate: () => first ? (first = false, gate) : Promise.resolve() }),
      maxJobSeconds: 120,
      sweepMs: 100,
    });
    const post = async (fields: Record<string, string>, accept = "application/json") =>
      await service.app.request("/v1/generations", {
        method: "POST",
        body: upload(await inputPng(), { ...SMALL, ...fields }),
        headers: { Accept: accept },
      });
    const tooLong = await post({ timeout_seconds: "121" });
    assert.equal(tooLong.status, 422);
    const { error } = await tooLong.json();
    assert.deepEqual([error.field, error.allowed], ["timeout_seconds", "1..120"]);
    assert.match(error.message, /is above the service's MAX_JOB_SECONDS/);

    try {
      const blocker = await (await post({})).json(); // holds the only slot
      await waitFor(() => open && service.loop.busy === 1, "the blocker running");
      const blockerStatus = await (await service.app.request(blocker.status_url)).json();
      assert.equal(blockerStatus.params.timeout_seconds, 120, "MAX_JOB_SECONDS is the default");
      assert.equal(
        Date.parse(blockerStatus.deadline_at) - Date.parse(blockerStatus.created_at),
        120_000,
      );

      const streamed = await post({ timeout_seconds: "1" }, "text/event-stream");
      const id = streamed.headers.get("X-Generation-Id")!;
      const events = await new SseReader(streamed).rest();
      assert.deepEqual(events.map((e) => e.event), ["queued", "error"]);
      assert.equal(events[1].data.code, "deadline_exceeded");
      const status = await (await service.app.request(`/v1/generations/${id}`)).json();
      assert.equal(status.status, "error");
      assert.equal(status.error.code, "deadline_exceeded");
      assert.equal(Date.parse(status.deadline_at) - Date.parse(status.created_at), 1000);
      assert.ok(Date.parse(status.finished_at) >= Date.parse(status.deadline_at));
      assert.equal(service.loop.busy, 1, "the blocker still runs: no worker took the queued job");
    } finally {
      open?.();
    }
  },
});

const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
