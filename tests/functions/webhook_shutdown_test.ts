/**
 * Webhooks at SIGTERM with the embedded queue, with `main.ts` as deployed (a
 * subprocess on the demo model) and a receiver on loopback that verifies the signature with the
 * `standardwebhooks` package: the queued jobs are cancelled first, then the dispatcher's grace
 * period sends their `cancelled` deliveries, before the process exits. (Before, the dispatcher
 * was stopped first, and those deliveries were made after it and never attempted.) With a spool,
 * one that failed stays there for the next process.
 */

import assert from "node:assert/strict";
import { MAIN_PROCESS_TEST_PERMISSIONS, MainProcess } from "./_main_process.ts";
import { postGeneration, SMALL, waitFor } from "./_service.ts";
import { randomSecret, WebhookReceiver } from "./_webhook_receiver.ts";

async function statusOf(url: string, id: string): Promise<string> {
  return (await (await fetch(`${url}/v1/generations/${id}`)).json()).status;
}

/**
 * A job that keeps the one slot busy past the drain deadline, and a second one, still queued at
 * SIGTERM, that asks for its `cancelled` webhook at `/cancelled`; returns once the first runs.
 */
async function oneRunningOneQueued(
  url: string,
  receiver: WebhookReceiver,
): Promise<{ running: string; queued: string }> {
  const running = await postGeneration(url, {
    ...SMALL,
    steps: "200",
    num_frames: "16",
    preview: "none",
  });
  const queued = await postGeneration(url, {
    ...SMALL,
    webhook: receiver.url("/cancelled"),
    webhook_events: "cancelled",
  });
  await waitFor(async () => await statusOf(url, running) === "running", "the first job running");
  return { running, queued };
}

Deno.test({
  name: "embedded queue without a spool: on SIGTERM a queued job's signed cancelled webhook is " +
    "delivered before the process exits",
  permissions: MAIN_PROCESS_TEST_PERMISSIONS,
  async fn() {
    const secret = randomSecret();
    await using receiver = WebhookReceiver.start({ secret, answer: () => 200 });
    await using service = new MainProcess({
      WEBHOOK_SECRET: secret,
      WEBHOOK_ALLOW_PRIVATE: "1",
      DRAIN_SECONDS: "3",
      SLOTS: "1",
    });
    const url = await service.url();
    await service.line("ready", 120_000);
    const { queued } = await oneRunningOneQueued(url, receiver);
    assert.equal(await statusOf(url, queued), "queued");
    assert.equal(receiver.deliveries.length, 0, "nothing sent before the shutdown");

    service.process.kill("SIGTERM");
    const { status, stderr } = await service.ended();
    assert.equal(status.code, 0, stderr);

    // Answered before the process ended: the receiver's 200 reached it (it logged the delivery).
    assert.equal(receiver.deliveries.length, 1, JSON.stringify(receiver.deliveries));
    const [delivery] = receiver.deliveries;
    assert.equal(delivery.path, "/cancelled");
    assert.equal(delivery.verified, true, "signed with WEBHOOK_SECRET");
    assert.equal(delivery.status, 200);
    const body = JSON.parse(delivery.body);
    assert.deepEqual([body.type, body.id, body.status], [
      "generation.cancelled",
      queued,
      "cancelled",
    ]);
    const delivered = service.lines.find((l) => l.event === "webhook_delivered");
    assert.equal(delivered?.generation, queued);
    const shutdown = service.lines.find((l) => l.event === "shutdown");
    assert.ok(shutdown, "a shutdown line");
    assert.doesNotMatch(String(shutdown.message), /drain deadline passed/, "not cut off");
    assert.ok(
      service.lines.indexOf(delivered!) < service.lines.indexOf(shutdown!),
      "delivered before the shutdown line",
    );
  },
});

Deno.test({
  name: "embedded queue with a spool: on SIGTERM a queued job's cancelled webhook is attempted, " +
    "and one that failed waits in the spool for the next process",
  permissions: MAIN_PROCESS_TEST_PERMISSIONS,
  async fn() {
    const secret = randomSecret();
    await using receiver = WebhookReceiver.start({ secret, answer: () => 503 });
    const spool = await Deno.makeTempDir({ prefix: "webhook_spool_" });
    const env = { WEBHOOK_SECRET: secret, WEBHOOK_ALLOW_PRIVATE: "1", WEBHOOK_SPOOL_DIR: spool };
    try {
      await using service = new MainProcess({ ...env, DRAIN_SECONDS: "3", SLOTS: "1" });
      const url = await service.url();
      await service.line("ready", 120_000);
      const { queued } = await oneRunningOneQueued(url, receiver);
      service.process.kill("SIGTERM");
      const { status, stderr } = await service.ended();
      assert.equal(status.code, 0, stderr);
      assert.deepEqual(receiver.deliveries.map((d) => [d.status, d.verified]), [[503, true]]);
      const files = [...Deno.readDirSync(spool)].filter((e) => e.name.endsWith(".json"));
      assert.equal(files.length, 1, "the failed delivery is spooled");
      const file = JSON.parse(await Deno.readTextFile(`${spool}/${files[0].name}`));
      assert.deepEqual([file.jobId, file.event, file.attempts.length], [queued, "cancelled", 1]);

      // The spool was unlocked at the exit: the next process takes it over.
      await using next = new MainProcess(env);
      assert.equal((await next.line("webhooks_resumed")).pending, 1);
    } finally {
      await Deno.remove(spool, { recursive: true });
    }
  },
});
