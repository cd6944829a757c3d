/**
 * The embedded queue's webhook spool: a pending delivery is a file from the moment its event is
 * stored; the next outbox on the folder (the next process) takes it over with its attempts and
 * schedule; a delivered one leaves no file; a torn write is dropped; a folder in use by another
 * outbox is refused.
 */

import assert from "node:assert/strict";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import {
  MemoryWebhookOutbox,
  SpoolLockedError,
} from "../../functions/webhooks/memory_webhook_outbox.ts";
import { jobRequest } from "./_job_request.ts";

const IMAGE = new Uint8Array([1, 2, 3]);
const HOOKED = jobRequest({}, { webhook: "https://hooks.example.com/svd" });

async function spooled(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".json")) names.push(entry.name);
  }
  return names;
}

Deno.test({
  name: "a spooled delivery outlives its outbox: the next one on the folder sends it on with its " +
    "attempts, and a delivered one leaves no file",
  permissions: { read: true, write: true },
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spool_" });
    try {
      const first = await MemoryWebhookOutbox.open({ dir, retentionMs: 60_000 });
      const queue = new MemoryJobQueue({ capacity: 4, retentionMs: 60_000, webhooks: first });
      const { id } = await queue.submit(HOOKED, IMAGE);
      const job = await queue.take("gpu", AbortSignal.timeout(1000));
      await queue.finish(job!, { status: "done", data: {}, patch: { finishedAt: Date.now() } });
      const [name] = await spooled(dir);
      assert.match(name, new RegExp(`^msg_${id}_\\d+\\.json$`), "written with the event");
      const [delivery] = (await first.claim(5, 60_000)).leased;
      const failed = { at: Date.now(), ms: 4, status: 503 };
      await first.settle(delivery, failed, { state: "pending", retryAt: Date.now() + 200 });
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/${name}`)).attempts, [failed]);
      first.close(); // the process goes (its jobs with it)

      const second = await MemoryWebhookOutbox.open({ dir, retentionMs: 60_000 });
      try {
        assert.equal(second.pending, 1);
        assert.deepEqual((await second.claim(5, 60_000)).leased, [], "not due yet");
        await new Promise((resolve) => setTimeout(resolve, 300));
        const [again] = (await second.claim(5, 60_000)).leased;
        assert.equal(again.id, delivery.id);
        assert.deepEqual(again.attempts, [failed]);
        assert.equal(again.record.status, "done");
        assert.equal(again.url, "https://hooks.example.com/svd");
        const ok = { at: Date.now(), ms: 2, status: 200 };
        assert.equal(await second.settle(again, ok, { state: "delivered" }), true);
        assert.deepEqual(await spooled(dir), []);
        assert.deepEqual((await second.deliveries(id)).map((d) => [d.state, d.attempts]), [
          ["delivered", [failed, ok]],
        ]);
      } finally {
        second.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a folder held by another outbox is refused; a torn write left behind is dropped",
  permissions: { read: true, write: true },
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "spool_" });
    try {
      const holder = await MemoryWebhookOutbox.open({ dir, retentionMs: 60_000 });
      await assert.rejects(
        MemoryWebhookOutbox.open({ dir, retentionMs: 60_000, lockTimeoutMs: 200 }),
        (error: unknown) => {
          assert.ok(error instanceof SpoolLockedError);
          assert.match(error.message, /is in use by another process.*own WEBHOOK_SPOOL_DIR/);
          assert.ok(error.message.includes(dir));
          return true;
        },
      );
      holder.close();
      await Deno.writeTextFile(`${dir}/msg_x_1.json.tmp`, '{"version":1,"id":');
      const next = await MemoryWebhookOutbox.open({
        dir,
        retentionMs: 60_000,
        lockTimeoutMs: 2000,
      });
      assert.equal(next.pending, 0);
      next.close();
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".lock"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
