/**
 * Webhooks across process deaths, with `main.ts` as deployed (subprocesses on the demo model) and
 * a receiver on loopback that verifies every delivery with the `standardwebhooks` package and
 * answers 500 to the first attempt of each `webhook-id`:
 *
 * - embedded queue with `WEBHOOK_SPOOL_DIR`: the process is killed (SIGKILL) while a delivery
 *   waits for its retry; the next process on the folder sends it, once;
 * - Redis: the same with the sending instance killed and another started; then, with two
 *   instances running, every event of several jobs is delivered once across both.
 *
 * Skips the Redis part with a message when redis-server is missing.
 */

import assert from "node:assert/strict";
import { MAIN_PROCESS_TEST_PERMISSIONS, MainProcess } from "./_main_process.ts";
import { RedisServer, redisServerMissing } from "./_redis_server.ts";
import { postGeneration, SMALL, waitFor } from "./_service.ts";
import { randomSecret, type ReceivedDelivery, WebhookReceiver } from "./_webhook_receiver.ts";

async function status(url: string, id: string): Promise<Record<string, unknown>> {
  return await (await fetch(`${url}/v1/generations/${id}`)).json();
}

/** The receiver's requests, by webhook-id. */
function byId(deliveries: readonly ReceivedDelivery[]): Map<string, ReceivedDelivery[]> {
  const map = new Map<string, ReceivedDelivery[]>();
  for (const d of deliveries) map.set(d.id, [...(map.get(d.id) ?? []), d]);
  return map;
}

/** Waits, then says whether anything more arrived: a delivery completed once stays once. */
async function nothingMoreWithin(receiver: WebhookReceiver, ms: number): Promise<boolean> {
  const count = receiver.deliveries.length;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return receiver.deliveries.length === count;
}

Deno.test({
  name: "embedded queue: a delivery waiting for its retry when the process is killed is sent " +
    "once by the next process on the spool",
  permissions: MAIN_PROCESS_TEST_PERMISSIONS,
  async fn() {
    const secret = randomSecret();
    await using receiver = WebhookReceiver.start({ secret });
    const spool = await Deno.makeTempDir({ prefix: "webhook_spool_" });
    const env = {
      WEBHOOK_SECRET: secret,
      WEBHOOK_ALLOW_PRIVATE: "1",
      WEBHOOK_SPOOL_DIR: spool,
    };
    try {
      await using first = new MainProcess(env);
      const firstUrl = await first.url();
      await first.line("ready");
      const id = await postGeneration(firstUrl, { ...SMALL, webhook: receiver.url() });
      const [failed] = await receiver.received(1);
      assert.equal(failed.status, 500);
      // Its retry is due ~2 s after this attempt: the attempt is on file by then.
      await waitFor(async () => {
        const files = [...Deno.readDirSync(spool)].filter((e) => e.name.endsWith(".json"));
        if (files.length !== 1) return false;
        const file = JSON.parse(await Deno.readTextFile(`${spool}/${files[0].name}`));
        return file.attempts.length === 1;
      }, "the failed attempt on file");
      first.process.kill("SIGKILL");
      await first.ended();

      await using second = new MainProcess(env);
      const resumed = await second.line("webhooks_resumed");
      assert.equal(resumed.pending, 1);
      const attempts = await receiver.received(2);
      assert.deepEqual(attempts.map((d) => d.status), [500, 200]);
      assert.ok(attempts.every((d) => d.verified === true), JSON.stringify(attempts));
      assert.equal(attempts[1].id, attempts[0].id);
      assert.equal(attempts[1].body, attempts[0].body);
      const body = JSON.parse(attempts[1].body);
      assert.deepEqual([body.type, body.id, body.status], ["generation.done", id, "done"]);
      assert.ok(await nothingMoreWithin(receiver, 3000), "delivered once");
      assert.deepEqual(
        [...Deno.readDirSync(spool)].map((e) => e.name).filter((n) => n.endsWith(".json")),
        [],
      );
      const delivered = await second.line("webhook_delivered");
      assert.equal(delivered.generation, id);
    } finally {
      await Deno.remove(spool, { recursive: true });
    }
  },
});

Deno.test({
  name: "Redis: a delivery waiting for its retry when its instance is killed is sent once by " +
    "another; with two instances every event is delivered once",
  ignore: redisServerMissing !== undefined,
  permissions: MAIN_PROCESS_TEST_PERMISSIONS,
  async fn() {
    await using redis = await RedisServer.start();
    const secret = randomSecret();
    await using receiver = WebhookReceiver.start({
      secret,
      answer: (d) => d.path === "/once" ? 200 : d.attempt === 1 ? 500 : 200,
    });
    const env = {
      REDIS_URL: redis.url,
      REDIS_CLAIM_IDLE_MS: "2000",
      WEBHOOK_SECRET: secret,
      WEBHOOK_ALLOW_PRIVATE: "1",
      QUEUE_SIZE: "16",
    };
    await using first = new MainProcess(env);
    const firstUrl = await first.url();
    await first.line("ready");
    const id = await postGeneration(firstUrl, { ...SMALL, webhook: receiver.url("/retry") });
    await receiver.received(1);
    await waitFor(async () => {
      const deliveries = (await status(firstUrl, id)).webhook_deliveries as
        | { state: string; attempts: unknown[] }[]
        | undefined;
      return deliveries?.[0]?.state === "pending" && deliveries[0].attempts.length === 1;
    }, "the failed attempt recorded in Redis");
    first.process.kill("SIGKILL");
    await first.ended();

    await using second = new MainProcess(env);
    const secondUrl = await second.url();
    const attempts = await receiver.received(2);
    assert.deepEqual(attempts.map((d) => [d.path, d.status]), [["/retry", 500], ["/retry", 200]]);
    assert.ok(attempts.every((d) => d.verified === true));
    assert.equal(attempts[0].id, attempts[1].id);
    await waitFor(async () => {
      const deliveries = (await status(secondUrl, id)).webhook_deliveries as {
        state: string;
        attempts: { status: number }[];
      }[];
      return deliveries[0].state === "delivered" &&
        deliveries[0].attempts.map((a) => a.status).join() === "500,200";
    }, "both attempts in the status JSON, from the other instance");

    // Two instances, several jobs: each event once.
    await using third = new MainProcess(env);
    await third.line("ready");
    await second.line("ready");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(
        await postGeneration(i % 2 === 0 ? secondUrl : await third.url(), {
          ...SMALL,
          webhook: receiver.url("/once"),
          webhook_events: "started,done",
        }),
      );
    }
    const once = await receiver.received(8, (d) => d.path === "/once" && d.status !== 0, 90_000);
    assert.ok(await nothingMoreWithin(receiver, 3000));
    const grouped = byId(receiver.deliveries.filter((d) => d.path === "/once"));
    assert.equal(grouped.size, 8, "a webhook-id per event");
    for (const [webhookId, got] of grouped) assert.equal(got.length, 1, `${webhookId} once`);
    assert.ok(once.every((d) => d.verified === true));
    const events = once.map((d) => JSON.parse(d.body)).map((b) => `${b.id} ${b.type}`).sort();
    assert.deepEqual(
      events,
      ids.flatMap((job) => [`${job} generation.done`, `${job} generation.started`]).sort(),
    );
    const sent = [second, third].map((p) =>
      p.lines.filter((l) =>
        l.event === "webhook_delivered" && String(l.target).endsWith(
          `:${receiver.port}`,
        ) && ids.includes(String(l.generation))
      ).length
    );
    assert.equal(sent[0] + sent[1], 8, `sent by the two instances: ${sent.join(" + ")}`);
  },
});
