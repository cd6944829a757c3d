/**
 * Webhooks through the service (the app, the embedded queue, the worker loop on a fake runner,
 * the dispatcher) to a real receiver on loopback that verifies every delivery with the
 * third-party `standardwebhooks` package: the events asked for arrive signed, a failed attempt is
 * retried and every attempt shows in the status JSON, the bodies match the OpenAPI document's
 * `GenerationWebhook`; bad webhooks are refused with 422 naming the field; a name that rebinds to
 * loopback is refused at connect time until the delivery is given up; 410 stops at once, 3xx is
 * retried; a receiver that hangs never holds up a worker.
 */

import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { type AddressPolicy, checkWebhookTarget } from "../../functions/webhooks/address_guard.ts";
import {
  WebhookDispatcher,
  type WebhookDispatcherOptions,
} from "../../functions/webhooks/webhook_dispatcher.ts";
import { parseWebhookSecrets } from "../../functions/webhooks/webhook_signature.ts";
import { capturedLog } from "./_captured_log.ts";
import {
  fakeRunner,
  type FakeRunnerOptions,
  inputPng,
  SMALL,
  testService,
  upload,
  waitFor,
} from "./_service.ts";
import { randomSecret, type ReceiverOptions, WebhookReceiver } from "./_webhook_receiver.ts";

const PERMISSIONS: Deno.PermissionOptions = {
  read: true,
  write: true, // the demo model's cache
  net: ["127.0.0.1"],
  env: true,
  sys: ["homedir", "osRelease", "uid", "gid"],
  run: true,
  ffi: true,
};

interface HookedOptions {
  readonly answer?: ReceiverOptions["answer"];
  /** The policy of requests (default: loopback allowed, http too). */
  readonly requestPolicy?: AddressPolicy;
  /** The policy of the sender (default: the request's). */
  readonly sendPolicy?: AddressPolicy;
  readonly runner?: FakeRunnerOptions;
  readonly dispatcher?: Partial<WebhookDispatcherOptions>;
}

/** A service with webhooks on, its dispatcher and a receiver; dispose to stop them all. */
async function hooked(options: HookedOptions = {}) {
  const secret = randomSecret();
  const receiver = WebhookReceiver.start({ secret, answer: options.answer });
  const requestPolicy = options.requestPolicy ?? { allowPrivate: true };
  const service = await testService({
    run: fakeRunner(options.runner),
    webhookTargets: {
      scheme: requestPolicy.allowPrivate ? "http" : "https",
      check: (url) => checkWebhookTarget(url, requestPolicy),
    },
  });
  const log = capturedLog();
  const dispatcher = new WebhookDispatcher({
    outbox: service.queue.webhooks,
    keys: parseWebhookSecrets(secret),
    policy: options.sendPolicy ?? requestPolicy,
    firstRetryMs: 200,
    maxRetryMs: 1000,
    log,
    ...options.dispatcher,
  });
  dispatcher.start();
  const submit = async (fields: Record<string, string>) => {
    const response = await service.app.request("/v1/generations", {
      method: "POST",
      body: upload(await inputPng(), { ...SMALL, ...fields }),
    });
    const body = await response.json();
    assert.equal(response.status, 202, JSON.stringify(body));
    return body.id as string;
  };
  const status = async (id: string) =>
    await (await service.app.request(`/v1/generations/${id}`)).json();
  return {
    service,
    receiver,
    dispatcher,
    logs: log.lines,
    submit,
    status,
    async [Symbol.asyncDispose]() {
      await dispatcher.stop(5000);
      await service[Symbol.asyncDispose]();
      await receiver[Symbol.asyncDispose]();
    },
  };
}

Deno.test({
  name: "the events a webhook asks for arrive signed; a failed attempt is retried and every " +
    "attempt shows in the status JSON",
  permissions: PERMISSIONS,
  async fn() {
    await using t = await hooked(); // the receiver answers 500, then 200, to each webhook-id
    const id = await t.submit({
      webhook: t.receiver.url("/svd?token=abc"),
      webhook_events: "started,done",
    });
    const received = await t.receiver.received(4);
    for (const delivery of received) {
      assert.equal(delivery.verified, true, String(delivery.verified));
    }
    assert.ok(received.every((d) => d.path === "/svd"));
    const byId = Object.groupBy(received, (d) => d.id);
    assert.equal(Object.keys(byId).length, 2, "one webhook-id per event");
    for (const attempts of Object.values(byId)) {
      assert.deepEqual(attempts!.map((d) => d.status), [500, 200]);
      assert.equal(attempts![0].body, attempts![1].body, "the same body at every attempt");
    }
    const bodies = Object.values(byId).map((attempts) => JSON.parse(attempts![0].body));
    const started = bodies.find((b) => b.type === "generation.started");
    const done = bodies.find((b) => b.type === "generation.done");
    assert.equal(started.id, id);
    assert.equal(started.status, "running", "the status as of the event");
    assert.equal(done.status, "done");
    assert.equal(done.video_url, `/v1/generations/${id}/video`);
    assert.equal(done.params.webhook, t.receiver.url("/svd?token=abc"));
    assert.deepEqual(done.params.webhook_events, ["started", "done"]);
    assert.ok(Date.parse(done.timestamp) >= Date.parse(started.timestamp));
    assert.ok(!("webhook_deliveries" in done), "a body is the status as of its event");

    const status = await waitFor(async () => {
      const json = await t.status(id);
      return json.webhook_deliveries?.every((d: { state: string }) => d.state === "delivered")
        ? json
        : undefined;
    }, "both deliveries delivered");
    assert.deepEqual(
      status.webhook_deliveries.map((d: Record<string, unknown>) => d.event),
      ["started", "done"],
    );
    for (const delivery of status.webhook_deliveries) {
      assert.ok(byId[delivery.id], "the status names each delivery by its webhook-id");
      assert.deepEqual(delivery.attempts.map((a: { status: number }) => a.status), [500, 200]);
      for (const attempt of delivery.attempts) {
        assert.ok(Number.isFinite(Date.parse(attempt.at)) && attempt.ms >= 0);
      }
      assert.ok(!("next_attempt_at" in delivery));
    }
    assert.ok(
      t.logs.some((l) => l.event === "webhook_retrying" && l.status === 500),
    );
    assert.equal(t.logs.filter((l) => l.event === "webhook_delivered").length, 2);
    assert.ok(
      t.logs.every((l) => !l.message.includes("token=abc")),
      "the URL's query is not logged",
    );

    // The bodies and the status are what /openapi.json says.
    const document = await (await t.service.app.request("/openapi.json")).json();
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema(document, "api");
    for (
      const [schema, value] of [["GenerationWebhook", started], ["GenerationWebhook", done], [
        "GenerationStatus",
        status,
      ]]
    ) {
      const validate = ajv.getSchema(`api#/components/schemas/${schema}`)!;
      assert.ok(validate(value), `${schema}: ${ajv.errorsText(validate.errors)}`);
    }
  },
});

Deno.test({
  name: "a bad webhook is refused with 422 naming the field, and nothing is queued",
  permissions: PERMISSIONS,
  async fn() {
    await using off = await testService({ run: fakeRunner(), startLoop: false });
    const post = async (service: typeof off, fields: Record<string, string>) => {
      const response = await service.app.request("/v1/generations", {
        method: "POST",
        body: upload(await inputPng(), { ...SMALL, ...fields }),
      });
      assert.equal(response.status, 422, JSON.stringify(fields));
      return (await response.json()).error;
    };
    const noSecret = await post(off, { webhook: "https://hooks.example.com/svd" });
    assert.equal(noSecret.field, "webhook");
    assert.match(noSecret.message, /no WEBHOOK_SECRET/);

    // Names resolve through this table; addresses in the URL are checked as written.
    const dns: Record<string, string[]> = {
      "hooks.example.com": ["93.184.216.34"],
      "intranet.example.com": ["93.184.216.34", "10.0.0.3"],
      "metadata.google.internal": ["169.254.169.254"],
    };
    const policy: AddressPolicy = {
      allowPrivate: false,
      resolve: (host) => Promise.resolve(dns[host] ?? []),
    };
    await using on = await testService({
      run: fakeRunner(),
      startLoop: false,
      webhookTargets: { scheme: "https", check: (url) => checkWebhookTarget(url, policy) },
    });
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ webhook: "http://hooks.example.com/svd" }, "webhook", /is not an https URL/],
      [{ webhook: "https://127.0.0.1:8443/svd" }, "webhook", /127\.0\.0\.1 is a loopback/],
      [{ webhook: "https://localhost./svd" }, "webhook", /has no address|does not resolve/],
      [{ webhook: "https://[::ffff:169.254.169.254]/" }, "webhook", /link-local/],
      [{ webhook: "https://[fd00:ec2::254]/" }, "webhook", /unique local/],
      [{ webhook: "https://intranet.example.com/" }, "webhook", /10\.0\.0\.3, a private/],
      [{ webhook: "https://metadata.google.internal/" }, "webhook", /link-local/],
      [{ webhook: "hooks.example.com/svd" }, "webhook", /is not a valid URL/],
      [{ webhook_events: "done" }, "webhook_events", /without a webhook/],
      [
        { webhook: "https://hooks.example.com/", webhook_events: "done,finished" },
        "webhook_events",
        /not an allowed value/,
      ],
    ];
    for (const [fields, field, message] of cases) {
      const error = await post(on, fields);
      assert.equal(error.code, "invalid_parameter");
      assert.equal(error.field, field, JSON.stringify(fields));
      assert.match(error.message, message);
      assert.equal(typeof error.allowed, "string");
    }
    assert.deepEqual(await on.queue.stats(), { queued: 0, running: 0 });
    const accepted = await on.app.request("/v1/generations", {
      method: "POST",
      body: upload(await inputPng(), { ...SMALL, webhook: "https://hooks.example.com/svd" }),
    });
    assert.equal(accepted.status, 202, "a public host is accepted");
  },
});

Deno.test({
  name: "a name that resolves to loopback at connect time (DNS rebinding) never reaches the " +
    "receiver: each attempt is refused until the delivery is given up",
  permissions: PERMISSIONS,
  async fn() {
    await using t = await hooked({
      // At request time the name is public; when the sender connects it is loopback.
      requestPolicy: { allowPrivate: false, resolve: () => Promise.resolve(["93.184.216.34"]) },
      sendPolicy: { allowPrivate: false, resolve: () => Promise.resolve(["127.0.0.1"]) },
      dispatcher: { retryWindowMs: 1500 },
    });
    const portless = await t.submit({ webhook: "https://rebind.example.com/hook" });
    const status = await waitFor(async () => {
      const json = await t.status(portless);
      return json.webhook_deliveries?.[0]?.state === "failed" ? json : undefined;
    }, "the delivery given up");
    const [delivery] = status.webhook_deliveries;
    assert.equal(delivery.event, "done");
    assert.ok(delivery.attempts.length >= 2, "retried first");
    for (const attempt of delivery.attempts) {
      assert.equal(attempt.error, "rebind.example.com resolves to 127.0.0.1, a loopback address");
      assert.ok(!("status" in attempt));
    }
    assert.equal(t.receiver.deliveries.length, 0);
    assert.ok(t.logs.some((l) => l.event === "webhook_failed"));
  },
});

Deno.test({
  name: "410 Gone stops a delivery at once; a redirect is a failed attempt, not followed",
  permissions: PERMISSIONS,
  async fn() {
    await using t = await hooked({
      answer: (d) =>
        d.path === "/gone"
          ? 410
          : d.attempt === 1
          ? new Response(null, { status: 302, headers: { Location: "/elsewhere" } })
          : 204,
    });
    const gone = await t.submit({ webhook: t.receiver.url("/gone") });
    const moved = await t.submit({ webhook: t.receiver.url("/moved") });
    const states = async (id: string) =>
      (await t.status(id)).webhook_deliveries?.map((d: Record<string, unknown>) => [
        d.state,
        (d.attempts as { status: number }[]).map((a) => a.status),
      ]);
    await waitFor(async () => (await states(moved))?.[0]?.[0] === "delivered", "moved delivered");
    await waitFor(async () => (await states(gone))?.[0]?.[0] === "failed", "gone given up");
    assert.deepEqual(await states(gone), [["failed", [410]]]);
    assert.deepEqual(await states(moved), [["delivered", [302, 204]]]);
    assert.ok(!t.receiver.deliveries.some((d) => d.path === "/elsewhere"));
  },
});

Deno.test({
  name: "a receiver that does not answer holds up no worker: the next jobs run and finish " +
    "while its attempt waits",
  permissions: PERMISSIONS,
  async fn() {
    let release: (() => void) | undefined;
    const hanging = new Promise<void>((resolve) => release = resolve);
    await using t = await hooked({
      answer: (d) => d.path === "/slow" ? hanging.then(() => 200) : 200,
      dispatcher: { timeoutMs: 60_000 },
    });
    try {
      const first = await t.submit({ webhook: t.receiver.url("/slow"), webhook_events: "started" });
      await t.receiver.received(1, (d) => d.path === "/slow");
      const others = [await t.submit({}), await t.submit({})];
      for (const id of [first, ...others]) {
        await waitFor(async () => (await t.status(id)).status === "done", `job ${id} done`);
      }
      assert.equal(t.dispatcher.busy, 1, "the attempt still waits for its receiver");
      assert.equal((await t.status(first)).webhook_deliveries[0].state, "pending");
    } finally {
      release?.();
    }
  },
});
