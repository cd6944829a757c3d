/**
 * `WebhookDispatcher.stop` at a shutdown: by default it claims nothing more (with Redis or a spool
 * the deliveries wait for the next sender); with `sendDue` it attempts, within its grace period,
 * the deliveries that became due just before it — here the `cancelled` ones the embedded queue's
 * `close` makes while every slot of the dispatcher is busy, so its loop cannot take them.
 */

import assert from "node:assert/strict";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import type { PostResult, WebhookPost } from "../../functions/webhooks/webhook_sender.ts";
import { WebhookDispatcher } from "../../functions/webhooks/webhook_dispatcher.ts";
import { capturedLog } from "./_captured_log.ts";
import { jobRequest } from "./_job_request.ts";
import { waitFor } from "./_service.ts";

const HOOK = "https://hooks.example.com/svd";
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);

/**
 * A queue with two jobs with a webhook for `cancelled`: the first cancelled, its delivery being
 * attempted (the dispatcher's one slot busy until `answerFirst`), the second still queued.
 */
async function busyAtShutdown() {
  const queue = new MemoryJobQueue({ capacity: 4, retentionMs: 60_000 });
  const posted: { event: string; id: string }[] = [];
  let answerFirst!: () => void;
  const first = new Promise<void>((resolve) => answerFirst = resolve);
  const dispatcher = new WebhookDispatcher({
    outbox: queue.webhooks,
    keys: [crypto.getRandomValues(new Uint8Array(32))],
    policy: { allowPrivate: false },
    concurrency: 1,
    log: capturedLog(),
    post: async ({ body }: WebhookPost): Promise<PostResult> => {
      const json = JSON.parse(body);
      posted.push({ event: json.type, id: json.id });
      if (posted.length === 1) await first;
      return { status: 200 };
    },
  });
  dispatcher.start();
  const request = jobRequest({}, { webhook: HOOK, webhookEvents: ["cancelled"] });
  const cancelled = await queue.submit(request, PNG);
  const queued = await queue.submit(request, PNG);
  await queue.requestCancel(cancelled.id);
  await waitFor(() => posted.length === 1, "the first cancelled delivery being attempted");
  assert.equal(posted[0].id, cancelled.id);
  return { queue, dispatcher, posted, answerFirst, queuedId: queued.id };
}

Deno.test({
  name: "stop() with sendDue attempts the cancelled delivery the queue's close made while its " +
    "slots were busy, within the grace period",
  permissions: "none",
  async fn() {
    const { queue, dispatcher, posted, answerFirst, queuedId } = await busyAtShutdown();
    await queue.close(); // the queued job is cancelled: its delivery is due now
    setTimeout(answerFirst, 100); // the slot frees during the grace period
    await dispatcher.stop(5000, { sendDue: true });
    assert.deepEqual(posted.map((p) => p.event), ["generation.cancelled", "generation.cancelled"]);
    assert.equal(posted[1].id, queuedId);
    const [delivery] = await queue.webhooks.deliveries(queuedId);
    assert.equal(delivery.state, "delivered");
  },
});

Deno.test({
  name: "stop() without sendDue claims nothing more: the cancelled delivery stays pending",
  permissions: "none",
  async fn() {
    const { queue, dispatcher, posted, answerFirst, queuedId } = await busyAtShutdown();
    await queue.close();
    setTimeout(answerFirst, 100);
    await dispatcher.stop(5000);
    assert.equal(posted.length, 1);
    const [delivery] = await queue.webhooks.deliveries(queuedId);
    assert.equal(delivery.state, "pending");
  },
});
