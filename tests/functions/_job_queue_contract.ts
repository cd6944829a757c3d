/**
 * The `JobQueue` contract as one suite, run against every implementation
 * (`job_queue_contract_test.ts`): what the HTTP handlers and the worker loop rely on, whichever
 * queue is behind them. What only one implementation can have (Redis faults, reclaiming a lost
 * worker's job, retention, the embedded queue's close) is tested in that implementation's file.
 *
 * Event ids are opaque here (`1`, `2` for the embedded queue; stream ids for Redis): the suite only
 * hands back ids the queue gave out.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type JobEvent,
  type JobQueue,
  type JobRecord,
  QueueFullError,
  StoreUnavailableError,
} from "../../functions/jobs/job_queue.ts";
import { deliveryId } from "../../functions/webhooks/webhook_outbox.ts";
import { jobRequest } from "./_job_request.ts";

/** Options a contract test asks of a queue. */
export interface ContractQueueOptions {
  readonly capacity?: number;
  readonly retryAfterSeconds?: () => number;
  readonly onCancelledWhileQueued?: (record: JobRecord) => void;
}

/**
 * One empty store. `queue()` returns a queue on it: for Redis a new instance each time (as another
 * process would connect), for the embedded queue the one queue (created with the first call's
 * options). Disposing closes every queue and the store.
 */
export interface ContractStore extends AsyncDisposable {
  queue(options?: ContractQueueOptions): Promise<JobQueue>;
}

/** How to run the suite against one implementation. */
export interface ContractTarget {
  /** Prefix of the test names: `MemoryJobQueue`, `RedisJobQueue`. */
  readonly name: string;
  readonly store: () => Promise<ContractStore>;
  readonly permissions: Deno.TestDefinition["permissions"];
  /**
   * An event id far after `id` in this queue's id order, one it never gave out (a stale or crafted
   * `Last-Event-ID`).
   */
  readonly idBeyond: (id: string) => string;
  /** Why the suite cannot run here (a missing redis-server), or undefined. */
  readonly skip?: string;
}

const REQUEST = jobRequest({ numFrames: 2, decodingT: 2, width: 64 });
/** Bytes, not a real image: a queue stores what it gets. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255, 254, 13, 10]);

/** Registers the contract tests for `target`. */
export function jobQueueContract(target: ContractTarget): void {
  const test = (name: string, fn: (store: ContractStore) => Promise<void>) =>
    Deno.test({
      name: `${target.name} ${name}`,
      ignore: target.skip !== undefined,
      permissions: target.permissions,
      async fn() {
        await using store = await target.store();
        await fn(store);
      },
    });

  test("queues jobs first in, first out; get, position, stats and take agree", async (store) => {
    const queue = await store.queue({ capacity: 5 });
    assert.equal(await queue.ready(), true);
    const records = [];
    for (let i = 0; i < 3; i++) records.push(await queue.submit(REQUEST, IMAGE));
    const [first, second, third] = records;
    assert.equal(first.status, "queued");
    assert.equal(first.attempts, 0);
    assert.equal(typeof first.createdAt, "number");
    assert.deepEqual(first.request, REQUEST);
    assert.deepEqual(await queue.get(first.id), first);
    assert.deepEqual(await Promise.all(records.map((r) => queue.position(r.id))), [1, 2, 3]);
    assert.deepEqual(await queue.stats(), { queued: 3, running: 0 });
    const queued = await collect(queue.events(second.id, undefined, AbortSignal.timeout(300)));
    assert.deepEqual(queued.map((e) => [e.type, e.data]), [["queued", { position: 2 }]]);

    const job = await queue.take("gpu-0", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, first.id, "the oldest job is taken first");
    assert.deepEqual(job.image, IMAGE);
    assert.equal(job.record.attempts, 1);
    assert.equal(job.record.worker, "gpu-0");
    assert.deepEqual(job.record.request, REQUEST);
    assert.deepEqual(await queue.get(first.id), job.record);
    assert.equal(await queue.position(first.id), undefined, "a taken job has no position");
    assert.equal(await queue.position(second.id), 1);
    assert.equal(await queue.position(third.id), 2);
    assert.deepEqual(await queue.stats(), { queued: 2, running: 1 });
    await queue.complete(job);
    assert.deepEqual(await queue.stats(), { queued: 2, running: 0 });
  });

  test("counts queued and running jobs against the capacity and refuses one more", async (store) => {
    const options = { capacity: 2, retryAfterSeconds: () => 7 };
    const api = await store.queue(options);
    const worker = await store.queue(options);
    await api.submit(REQUEST, IMAGE);
    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.ok(job);
    await api.submit(REQUEST, IMAGE);
    const refused = await api.submit(REQUEST, IMAGE).catch((error) => error);
    assert.ok(refused instanceof QueueFullError, String(refused));
    assert.equal(refused.retryAfterSeconds, 7);
    await assert.rejects(worker.submit(REQUEST, IMAGE), QueueFullError);
    assert.deepEqual(await api.stats(), { queued: 1, running: 1 });
    await worker.complete(job);
    assert.equal(
      (await api.submit(REQUEST, IMAGE)).status,
      "queued",
      "a completed job frees a slot",
    );
  });

  test("take() waits for the next job and returns undefined soon after its signal aborts", async (store) => {
    const queue = await store.queue();
    const waiting = queue.take("gpu", AbortSignal.timeout(10_000));
    await pause(100);
    const record = await queue.submit(REQUEST, IMAGE);
    assert.equal((await bounded(waiting, 5000, "the waiting take"))?.record.id, record.id);

    const stop = new AbortController();
    const idle = queue.take("gpu-2", stop.signal);
    await pause(100);
    stop.abort();
    assert.equal(await bounded(idle, 5000, "the aborted take"), undefined);
    await assert.rejects(queue.take("", AbortSignal.timeout(100)), TypeError, "an empty name");
  });

  test("gives two workers different jobs", async (store) => {
    const api = await store.queue();
    const [a, b] = [await store.queue(), await store.queue()];
    const submitted = [await api.submit(REQUEST, IMAGE), await api.submit(REQUEST, IMAGE)];
    const [jobA, jobB] = await Promise.all([
      a.take("gpu-a", AbortSignal.timeout(3000)),
      b.take("gpu-b", AbortSignal.timeout(3000)),
    ]);
    assert.ok(jobA && jobB);
    assert.deepEqual([jobA.record.id, jobB.record.id].sort(), submitted.map((r) => r.id).sort());
    assert.deepEqual(await api.stats(), { queued: 0, running: 2 });
  });

  test("events() replays after an id, follows live events and ends after a terminal one", async (store) => {
    const api = await store.queue();
    const worker = await store.queue();
    const { id } = await api.submit(REQUEST, IMAGE);
    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, id);
    const started = await worker.publish(id, "started", { frames: 2 });
    assert.deepEqual(started.data, { frames: 2 });
    const step1 = await worker.publish(id, "step", { step: 1, total: 2 });

    // A live reader, waiting before the next events exist.
    const reading = collect(api.events(id, started.id, AbortSignal.timeout(8000)));
    await pause(200);
    const step2 = await worker.publish(id, "step", { step: 2, total: 2 });
    const done = await worker.publish(id, "done", { bytes: 3 });
    await worker.publish(id, "step", { step: 99 }); // after the end: never streamed
    await worker.complete(job);
    const live = await bounded(reading, 5000, "the live stream");
    assert.deepEqual(live.map((e) => e.id), [step1.id, step2.id, done.id]);
    assert.deepEqual(live.map((e) => e.type), ["step", "step", "done"]);
    assert.deepEqual(live[0].data, { step: 1, total: 2 });
    assert.equal(new Set([started.id, step1.id, step2.id, done.id]).size, 4, "distinct ids");

    const all = await bounded(
      collect(worker.events(id, undefined, AbortSignal.timeout(30_000))),
      10_000,
      "the replay",
    );
    assert.deepEqual(all.map((e) => e.type), ["queued", "started", "step", "step", "done"]);
    assert.deepEqual(all[0].data, { position: 1 });
    const garbage = await collect(api.events(id, "not-an-id", AbortSignal.timeout(5000)));
    assert.equal(garbage.length, 5, "an id the queue never gave out replays from the start");
  });

  test("events() of a finished job end by themselves, with nothing after the terminal event", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const job = await queue.take("gpu", AbortSignal.timeout(3000));
    await queue.update(id, { status: "done", finishedAt: Date.now() });
    const done = await queue.publish(id, "done", {});
    await queue.complete(job!);
    // The signals would end the streams after 30 s; they must end well before, by themselves.
    const after = queue.events(id, done.id, AbortSignal.timeout(30_000));
    assert.deepEqual(await bounded(collect(after), 10_000, "the stream after done"), []);
    const all = queue.events(id, undefined, AbortSignal.timeout(30_000));
    const types = (await bounded(collect(all), 10_000, "the whole stream")).map((e) => e.type);
    assert.deepEqual(types, ["queued", "done"]);
  });

  test("events() after an id beyond the newest event resume from the end: the next events follow, then the stream ends", async (store) => {
    const api = await store.queue();
    const worker = await store.queue();
    const { id } = await api.submit(REQUEST, IMAGE);
    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    const started = await worker.publish(id, "started", {});
    // The signal would end the stream after 30 s; the terminal event must end it well before.
    const reading = collect(
      api.events(id, target.idBeyond(started.id), AbortSignal.timeout(30_000)),
    );
    await pause(300);
    const step = await worker.publish(id, "step", { step: 1 });
    const done = await worker.publish(id, "done", {});
    await worker.complete(job!);
    const live = await bounded(reading, 10_000, "the stream resumed beyond its end");
    assert.deepEqual(live.map((e) => e.id), [step.id, done.id]);

    const after = api.events(id, target.idBeyond(done.id), AbortSignal.timeout(30_000));
    assert.deepEqual(await bounded(collect(after), 5000, "the finished stream beyond its end"), []);
  });

  test("events() stop when their signal aborts", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const stop = new AbortController();
    const reading = collect(queue.events(id, undefined, stop.signal));
    await pause(200);
    stop.abort();
    const events = await bounded(reading, 5000, "the aborted stream");
    assert.deepEqual(events.map((e) => e.type), ["queued"]);
  });

  test("requestCancel() reports each job it ends while queued once, and never a running one (the cancelled metric)", async (store) => {
    const reported: string[] = [];
    const api = await store.queue({ onCancelledWhileQueued: (record) => reported.push(record.id) });
    const worker = await store.queue();
    const running = await api.submit(REQUEST, IMAGE);
    const queued = await api.submit(REQUEST, IMAGE);
    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, running.id);
    await worker.update(running.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    await Promise.all([api.requestCancel(queued.id), api.requestCancel(queued.id)]);
    await api.requestCancel(queued.id);
    await api.requestCancel(running.id);
    assert.deepEqual(reported, [queued.id]);
    await worker.complete(job!);
  });

  test("requestCancel() cancels a queued job at once and flags a running one", async (store) => {
    const api = await store.queue();
    const worker = await store.queue();
    const first = await api.submit(REQUEST, IMAGE);
    const second = await api.submit(REQUEST, IMAGE);

    const cancelled = await api.requestCancel(second.id);
    assert.equal(cancelled?.status, "cancelled");
    assert.equal(typeof cancelled.finishedAt, "number");
    assert.equal(await worker.cancelRequested(second.id), true);
    const events = await bounded(
      collect(worker.events(second.id, undefined, AbortSignal.timeout(30_000))),
      10_000,
      "the cancelled job's stream",
    );
    assert.deepEqual(events.map((e) => e.type), ["queued", "cancelled"]);
    assert.equal(await api.position(second.id), undefined);
    assert.deepEqual(await api.stats(), { queued: 1, running: 0 });
    assert.equal((await api.requestCancel(second.id))?.status, "cancelled", "idempotent");

    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, first.id);
    await worker.update(first.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    assert.equal(await worker.cancelRequested(first.id), false);
    assert.equal((await api.requestCancel(first.id))?.status, "running", "the worker ends it");
    assert.equal(await worker.cancelRequested(first.id), true);
    const soFar = await collect(api.events(first.id, undefined, AbortSignal.timeout(300)));
    assert.deepEqual(soFar.map((e) => e.type), ["queued"]);
    assert.equal(
      await worker.take("gpu-2", AbortSignal.timeout(400)),
      undefined,
      "a cancelled job is never delivered",
    );
  });

  test("update() sets the fields given and removes those given as undefined", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const job = await queue.take("gpu", AbortSignal.timeout(3000));
    await queue.update(id, { status: "running", startedAt: 1000, worker: "gpu" });
    assert.deepEqual(await queue.get(id), {
      ...job!.record,
      status: "running",
      startedAt: 1000,
      worker: "gpu",
    });
    const error = { code: "inference_failed", message: "boom" };
    await queue.update(id, { status: "error", error, finishedAt: 2000, startedAt: undefined });
    const record = await queue.get(id);
    assert.deepEqual(record?.error, error);
    assert.equal(record?.finishedAt, 2000);
    assert.ok(!Object.hasOwn(record!, "startedAt"), "an undefined field is removed");
    await queue.update("no-such-job", { status: "running" }); // nothing to update, no error
    assert.equal(await queue.get("no-such-job"), undefined);
  });

  test("stores a clip with putVideo() that getVideo() returns on any instance", async (store) => {
    const worker = await store.queue();
    const api = await store.queue();
    const { id } = await api.submit(REQUEST, IMAGE);
    const bytes = crypto.getRandomValues(new Uint8Array(4096));
    await worker.putVideo(id, { bytes, contentType: "video/webm", format: "webm" });
    assert.deepEqual(await api.getVideo(id), { bytes, contentType: "video/webm", format: "webm" });
    assert.equal(await api.getVideo("no-such-job"), undefined);
  });

  test("release() hands a job back, queued again, to be taken anew with its image", async (store) => {
    const a = await store.queue();
    const b = await store.queue();
    const { id } = await a.submit(REQUEST, IMAGE);
    const job = await a.take("leaving", AbortSignal.timeout(3000));
    assert.ok(job);
    await a.update(id, { status: "running", startedAt: Date.now(), worker: "leaving" });
    await a.publish(id, "started", {});
    await a.release(job);

    const record = await b.get(id);
    assert.equal(record?.status, "queued");
    assert.ok(!Object.hasOwn(record, "startedAt"), "no startedAt");
    assert.ok(!Object.hasOwn(record, "worker"), "no worker");
    assert.equal(await b.position(id), 1);
    const events = await collect(b.events(id, undefined, AbortSignal.timeout(300)));
    assert.deepEqual(events.map((e) => e.type), ["queued", "started", "queued"]);
    assert.deepEqual(events[2].data, { position: 1 });

    const again = await b.take("staying", AbortSignal.timeout(3000));
    assert.equal(again?.record.id, id);
    assert.equal(again.record.attempts, 2);
    assert.deepEqual(again.image, IMAGE);
    assert.deepEqual(await a.stats(), { queued: 0, running: 1 });
  });

  test("answers nothing for an unknown job, and refuses to publish to one", async (store) => {
    const queue = await store.queue();
    assert.equal(await queue.get("no-such-job"), undefined);
    assert.equal(await queue.position("no-such-job"), undefined);
    assert.equal(await queue.requestCancel("no-such-job"), undefined);
    assert.equal(await queue.cancelRequested("no-such-job"), false);
    assert.deepEqual(
      await collect(queue.events("no-such-job", undefined, AbortSignal.timeout(2000))),
      [],
    );
    await assert.rejects(queue.publish("no-such-job", "step", {}), RangeError);
  });

  test("treats an id it did not give out (a real id with a key suffix, a pattern, a path) as unknown", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const job = await queue.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, id);
    await queue.putVideo(id, { bytes: IMAGE, contentType: "video/mp4", format: "mp4" });
    // Each would name another key of the job, or other keys, if it reached a key name.
    const crafted = [
      `${id}:events`,
      `${id}:image`,
      `${id}:video`,
      `${id}:cancel`,
      id.toUpperCase(),
      `${id} `,
      `${id}\n`,
      `../${id}`,
      "*",
      "",
    ];
    for (const bad of crafted) {
      const what = JSON.stringify(bad);
      assert.equal(await queue.get(bad), undefined, `get(${what})`);
      assert.equal(await queue.position(bad), undefined, `position(${what})`);
      assert.equal(await queue.cancelRequested(bad), false, `cancelRequested(${what})`);
      assert.equal(await queue.getVideo(bad), undefined, `getVideo(${what})`);
      assert.deepEqual(
        await collect(queue.events(bad, undefined, AbortSignal.timeout(2000))),
        [],
        `events(${what})`,
      );
      await assert.rejects(queue.publish(bad, "step", {}), RangeError, `publish(${what})`);
      await queue.update(bad, { status: "error" });
      await queue.putVideo(bad, { bytes: new Uint8Array(3), contentType: "x", format: "mp4" });
      assert.equal(await queue.requestCancel(bad), undefined, `requestCancel(${what})`);
    }
    // The real job is as it was.
    const record = await queue.get(id);
    assert.equal(record?.status, "queued");
    assert.equal(await queue.cancelRequested(id), false);
    assert.deepEqual((await queue.getVideo(id))?.bytes, IMAGE);
    const events = await collect(queue.events(id, undefined, AbortSignal.timeout(300)));
    assert.deepEqual(events.map((e) => e.type), ["queued"]);
  });

  test("check() tells a running job's worker to run, to cancel, or that the job is lost", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const job = await queue.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, id);
    assert.equal(await queue.check(id), "run");
    await queue.requestCancel(id);
    assert.equal(await queue.check(id), "cancel");
    assert.equal(await queue.check(crypto.randomUUID()), "lost", "a job the store does not have");
    assert.equal(await queue.check(`${id}:events`), "lost", "not a job id");
  });

  test("events() resumed on a job the store does not have end with an error event job_lost", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    const [queued] = await collect(queue.events(id, undefined, AbortSignal.timeout(300)));
    const gone = crypto.randomUUID();
    const events = await bounded(
      collect(queue.events(gone, queued.id, AbortSignal.timeout(30_000))),
      5000,
      "the stream of a job that is gone",
    );
    assert.deepEqual(events.map((e) => [e.type, e.data.code]), [["error", "job_lost"]]);
    assert.notEqual(events[0].id, queued.id);
    assert.deepEqual(await collect(queue.events(gone, undefined, AbortSignal.timeout(300))), []);
  });

  test("events() of a queued job tell its new position each time a job ahead leaves the queue", async (store) => {
    const api = await store.queue();
    const worker = await store.queue();
    const [first, second, third] = [
      await api.submit(REQUEST, IMAGE),
      await api.submit(REQUEST, IMAGE),
      await api.submit(REQUEST, IMAGE),
    ];
    const stream = api.events(third.id, undefined, AbortSignal.timeout(30_000))[
      Symbol.asyncIterator
    ]();
    const next = async (what: string) => {
      const step = await bounded(stream.next(), 10_000, what);
      assert.ok(!step.done, `the stream ended before ${what}`);
      return step.value;
    };
    const queued = await next("the first event");
    assert.deepEqual([queued.type, queued.data], ["queued", { position: 3 }]);
    // The stream waits for what follows (live) before each change.
    let coming = next("the position after a take");
    await pause(300);
    await api.submit(REQUEST, IMAGE); // behind: nothing changes for the third
    const taken = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(taken?.record.id, first.id);
    const moved = await coming;
    assert.deepEqual([moved.type, moved.data], ["queued", { position: 2 }]);
    assert.equal(moved.id, queued.id, "not stored: it repeats the id of the event before it");
    coming = next("the position after a cancellation");
    await pause(300);
    await api.requestCancel(second.id);
    const again = await coming;
    assert.deepEqual([again.type, again.data], ["queued", { position: 1 }]);
    assert.equal(await api.position(third.id), 1);

    await worker.complete(taken);
    const mine = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(mine?.record.id, third.id);
    await worker.update(third.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    const started = await worker.publish(third.id, "started", {});
    assert.deepEqual(await next("started"), started, "no position once it left the queue");
    const done = await worker.publish(third.id, "done", {});
    assert.deepEqual(await next("done"), done);
    assert.equal((await stream.next()).done, true);

    // A stream opened after jobs ahead left starts from the stored event, then the position now.
    const [, fourth] = [await api.submit(REQUEST, IMAGE), await api.submit(REQUEST, IMAGE)];
    await worker.take("gpu", AbortSignal.timeout(3000)); // the job submitted behind the third
    const late = await collect(api.events(fourth.id, undefined, AbortSignal.timeout(1000)));
    assert.deepEqual(late.map((e) => [e.type, e.data]), [
      ["queued", { position: 3 }],
      ["queued", { position: 2 }],
    ]);
  });

  test("expire() ends the queued jobs past their deadline with error deadline_exceeded, and only those", async (store) => {
    const api = await store.queue();
    const worker = await store.queue();
    const withDeadline = (seconds: number) => jobRequest({}, { timeoutSeconds: seconds });
    const running = await api.submit(withDeadline(5), IMAGE);
    const job = await worker.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, running.id);
    await worker.update(running.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    const late = await api.submit(withDeadline(5), IMAGE);
    const later = await api.submit(withDeadline(3600), IMAGE);
    const never = await api.submit(REQUEST, IMAGE);
    const watching = collect(api.events(never.id, undefined, AbortSignal.timeout(3000)));

    assert.deepEqual(await api.expire(late.createdAt + 4000), [], "not yet");
    const ended = await api.expire(late.createdAt + 10_000);
    assert.deepEqual(ended.map((r) => r.id), [late.id]);
    const record = await api.get(late.id);
    assert.equal(record?.status, "error");
    assert.equal(record.error?.code, "deadline_exceeded");
    assert.match(record.error.message, /timeout_seconds = 5 from its submission\) while queued/);
    assert.equal(typeof record.finishedAt, "number");
    const events = await collect(worker.events(late.id, undefined, AbortSignal.timeout(2000)));
    assert.deepEqual(events.map((e) => [e.type, e.data.code]), [
      ["queued", undefined],
      ["error", "deadline_exceeded"],
    ]);
    assert.equal(await api.position(late.id), undefined);
    assert.equal(await api.position(later.id), 1);
    assert.deepEqual(
      (await watching).map((e) => e.data),
      [{ position: 3 }, { position: 2 }],
      "the jobs behind moved up",
    );
    assert.equal((await api.get(running.id))?.status, "running", "its worker ends a running one");
    assert.deepEqual(await api.expire(late.createdAt + 10_000), [], "once");
    assert.deepEqual(await api.stats(), { queued: 2, running: 1 });
    await worker.complete(job);
    assert.equal((await worker.take("gpu", AbortSignal.timeout(3000)))?.record.id, later.id);
  });

  test("an event a job's webhook wants makes one delivery, leased to one sender at a time and settled with its attempts", async (store) => {
    const api = await store.queue();
    const a = await store.queue();
    const b = await store.queue();
    const url = "https://hooks.example.com/svd?token=1";
    const hooked = await api.submit(
      jobRequest({}, { webhook: url, webhookEvents: ["started", "done"] }),
      IMAGE,
    );
    const plain = await api.submit(REQUEST, IMAGE);
    assert.deepEqual((await a.webhooks.claim(10, 60_000)).leased, [], "queued: nothing wanted");

    const job = await a.take("gpu", AbortSignal.timeout(3000));
    assert.equal(job?.record.id, hooked.id);
    await a.update(hooked.id, { status: "running", startedAt: Date.now(), worker: "gpu" });
    const started = await a.publish(hooked.id, "started", { frames: 4 });
    await a.publish(hooked.id, "step", { step: 1 });
    await a.publish(plain.id, "started", {}); // no webhook: no delivery

    const { leased } = await a.webhooks.claim(10, 60_000);
    assert.equal(leased.length, 1);
    const [delivery] = leased;
    assert.equal(delivery.id, deliveryId(hooked.id, started.id));
    assert.equal(delivery.jobId, hooked.id);
    assert.equal(delivery.event, "started");
    assert.equal(delivery.url, url);
    assert.equal(delivery.record.status, "running", "the record as the event saw it");
    assert.equal(delivery.record.request.webhook, url);
    assert.deepEqual(delivery.attempts, []);
    const other = await b.webhooks.claim(10, 60_000);
    assert.deepEqual(other.leased, [], "leased to a");
    assert.ok(other.nextDueAt !== undefined && other.nextDueAt > Date.now() + 30_000);
    assert.deepEqual(await b.webhooks.deliveries(hooked.id), [
      { id: delivery.id, event: "started", state: "pending", attempts: [] },
    ]);
    assert.deepEqual(await b.webhooks.deliveries(plain.id), []);

    const failed = { at: Date.now(), ms: 12, status: 500 };
    const retryAt = Date.now() + 400;
    assert.equal(await a.webhooks.settle(delivery, failed, { state: "pending", retryAt }), true);
    const shown = await b.webhooks.deliveries(hooked.id);
    assert.deepEqual(shown, [{
      id: delivery.id,
      event: "started",
      state: "pending",
      attempts: [failed],
      nextAttemptAt: retryAt,
    }]);
    assert.deepEqual((await b.webhooks.claim(10, 60_000)).leased, [], "not due yet");
    await pause(600);
    const retried = (await b.webhooks.claim(10, 60_000)).leased;
    assert.deepEqual(retried.map((d) => [d.id, d.attempts]), [[delivery.id, [failed]]]);
    assert.equal(
      await a.webhooks.settle(delivery, failed, { state: "delivered" }),
      false,
      "a's lease is over: b holds the delivery now",
    );
    const ok = { at: Date.now(), ms: 3, status: 204 };
    assert.equal(await b.webhooks.settle(retried[0], ok, { state: "delivered" }), true);
    assert.deepEqual((await api.webhooks.deliveries(hooked.id))[0].attempts, [failed, ok]);
    assert.equal((await api.webhooks.deliveries(hooked.id))[0].state, "delivered");
    assert.deepEqual((await a.webhooks.claim(10, 60_000)).leased, [], "delivered: done");

    // The terminal event's delivery carries the record as it ended.
    await a.finish(job, { status: "done", data: {}, patch: { finishedAt: Date.now() } });
    const done = (await b.webhooks.claim(10, 50)).leased;
    assert.deepEqual(done.map((d) => [d.event, d.record.status]), [["done", "done"]]);
    await pause(200);
    const afterLease = (await a.webhooks.claim(10, 60_000)).leased;
    assert.deepEqual(afterLease.map((d) => d.id), [done[0].id], "a lease that ran out is free");
    assert.equal(await a.webhooks.settle(afterLease[0], ok, { state: "failed" }), true);
    assert.deepEqual(
      (await api.webhooks.deliveries(hooked.id)).map((d) => [d.event, d.state]),
      [["started", "delivered"], ["done", "failed"]],
    );

    // A queued job cancelled: `cancelled` is one of the default events.
    const cancelled = await api.submit(jobRequest({}, { webhook: url }), IMAGE);
    await api.requestCancel(cancelled.id);
    const last = (await b.webhooks.claim(10, 60_000)).leased;
    assert.deepEqual(last.map((d) => [d.jobId, d.event, d.record.status]), [
      [cancelled.id, "cancelled", "cancelled"],
    ]);
  });

  test("close() ends a waiting take and a live stream, then refuses work", async (store) => {
    const queue = await store.queue();
    const { id } = await queue.submit(REQUEST, IMAGE);
    assert.ok(await queue.take("gpu", AbortSignal.timeout(3000)));
    const waiting = queue.take("gpu-2", AbortSignal.timeout(20_000));
    const reading = collect(queue.events(id, undefined, AbortSignal.timeout(20_000)));
    await pause(200);
    await queue.close();
    assert.equal(await bounded(waiting, 5000, "the waiting take"), undefined);
    const events = await bounded(reading, 5000, "the live stream");
    assert.equal(events[0]?.type, "queued");
    await assert.rejects(queue.submit(REQUEST, IMAGE), StoreUnavailableError);
    assert.equal(await queue.ready(), false);
  });
}

/** Every event until the stream ends (or its signal aborts it). */
async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
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

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
