/**
 * The SSRF guard and one attempt's POST: loopback, private, link-local (cloud metadata), carrier-
 * grade NAT, unique-local, mapped and IPv4-embedding IPv6 addresses are refused, as literals and
 * after resolution, at request time (a ParameterError naming `webhook`) and at connect time
 * (DNS rebinding: the receiver gets nothing); redirects are not followed; an attempt that does
 * not answer fails after its timeout. The receiver is a real server on loopback.
 */

import assert from "node:assert/strict";
import {
  checkWebhookTarget,
  forbiddenAddress,
  resolveTarget,
  WebhookTargetError,
} from "../../functions/webhooks/address_guard.ts";
import { postWebhook } from "../../functions/webhooks/webhook_sender.ts";
import { parseWebhookSecrets, signWebhook } from "../../functions/webhooks/webhook_signature.ts";
import { HttpError } from "../../functions/errors.ts";
import { ParameterError } from "../../pipeline/request/mod.ts";
import { randomSecret, testTls, WebhookReceiver } from "./_webhook_receiver.ts";

const LOCAL: Deno.PermissionOptions = { net: ["127.0.0.1"] };

Deno.test({
  name: "forbiddenAddress() passes public unicast addresses only, IPv4 and IPv6, mapped forms too",
  permissions: "none",
  fn() {
    for (const ok of ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) {
      assert.equal(forbiddenAddress(ok), undefined, ok);
    }
    const refused: [string, RegExp][] = [
      ["127.0.0.1", /loopback/],
      ["127.8.9.10", /loopback/],
      ["::1", /loopback/],
      ["::ffff:127.0.0.1", /loopback/],
      ["::127.0.0.1", /loopback/],
      ["10.0.0.1", /private/],
      ["172.16.5.4", /private/],
      ["192.168.1.1", /private/],
      ["::ffff:10.0.0.1", /private/],
      ["169.254.169.254", /link-local .*metadata/],
      ["fe80::1", /link-local/],
      ["fd00:ec2::254", /unique local/],
      ["fc00::1", /unique local/],
      ["100.100.100.200", /carrier-grade NAT/],
      ["0.0.0.0", /unspecified/],
      ["::", /unspecified/],
      ["255.255.255.255", /broadcast/],
      ["224.0.0.251", /multicast/],
      ["240.0.0.1", /reserved/],
      ["64:ff9b::a00:1", /NAT64/],
      ["2002:a00:1::", /6to4/],
      ["2001:0:a00:1::", /Teredo/],
      ["not-an-ip", /not an IP address/],
    ];
    for (const [address, why] of refused) {
      assert.match(forbiddenAddress(address) ?? "", why, address);
    }
  },
});

Deno.test({
  name: "resolveTarget() checks every address a name resolves to, and literals as written",
  permissions: "none",
  async fn() {
    const resolver = (map: Record<string, string[]>) => ({
      allowPrivate: false,
      resolve: (host: string) =>
        map[host] ? Promise.resolve(map[host]) : Promise.reject(Object.assign(new Error("x"), {
          code: "ENOTFOUND",
        })),
    });
    const policy = resolver({
      "hooks.example.com": ["93.184.216.34", "2606:2800:220:1::248"],
      "mixed.example.com": ["93.184.216.34", "10.1.2.3"],
      "metadata.google.internal": ["169.254.169.254"],
    });
    assert.deepEqual(await resolveTarget("hooks.example.com", policy), [
      "93.184.216.34",
      "2606:2800:220:1::248",
    ]);
    await assert.rejects(
      resolveTarget("mixed.example.com", policy),
      /mixed\.example\.com resolves to 10\.1\.2\.3, a private address/,
    );
    await assert.rejects(resolveTarget("metadata.google.internal", policy), /link-local/);
    await assert.rejects(
      resolveTarget("nowhere.example", policy),
      /does not resolve \(ENOTFOUND\)/,
    );
    await assert.rejects(resolveTarget("[::1]", policy), /::1 is a loopback address/);
    await assert.rejects(resolveTarget("127.0.0.1", policy), WebhookTargetError);
    assert.deepEqual(
      await resolveTarget("mixed.example.com", { ...policy, allowPrivate: true }),
      ["93.184.216.34", "10.1.2.3"],
      "WEBHOOK_ALLOW_PRIVATE lets them all pass",
    );
    const slow = {
      allowPrivate: false,
      resolve: () => new Promise<string[]>(() => {}),
      resolveTimeoutMs: 50,
    };
    await assert.rejects(resolveTarget("slow.example", slow), /took longer than 0.05 s/);
  },
});

Deno.test({
  name: "checkWebhookTarget() answers 503 webhook_check_unavailable when the resolver fails for " +
    "now, 422 when the name does not exist, and stops waiting when the client leaves",
  permissions: "none",
  async fn() {
    const failing = (code: string) => ({
      allowPrivate: false,
      resolve: () => Promise.reject(Object.assign(new Error(code), { code })),
    });
    for (const code of ["EAI_AGAIN", "ESERVFAIL"]) {
      await assert.rejects(checkWebhookTarget("https://hooks.example/x", failing(code)), (e) => {
        assert.ok(e instanceof HttpError, String(e));
        assert.equal(e.status, 503);
        assert.equal(e.code, "webhook_check_unavailable");
        assert.equal(e.field, "webhook");
        assert.equal(e.headers["Retry-After"], "5");
        assert.match(e.message, new RegExp(`hooks\\.example does not resolve \\(${code}\\)`));
        return true;
      });
    }
    const silent = { allowPrivate: false, resolve: () => new Promise<string[]>(() => {}) };
    await assert.rejects(
      checkWebhookTarget("https://slow.example/x", { ...silent, resolveTimeoutMs: 50 }),
      (e) => e instanceof HttpError && e.status === 503 && /took longer/.test(e.message),
    );
    await assert.rejects(
      checkWebhookTarget("https://gone.example/x", failing("ENOTFOUND")),
      (e) => {
        assert.ok(e instanceof ParameterError, String(e));
        assert.match(e.message, /does not resolve \(ENOTFOUND\)/);
        return true;
      },
    );
    // The client leaves while the resolver is silent: the check ends at once with its reason.
    const client = new AbortController();
    const started = performance.now();
    const check = checkWebhookTarget("https://slow.example/x", silent, client.signal);
    setTimeout(() => client.abort(new Error("client left")), 20);
    await assert.rejects(check, /client left/);
    assert.ok(performance.now() - started < 4000, "long before the 5 s resolver timeout");
  },
});

Deno.test({
  name: "checkWebhookTarget() with WEBHOOK_ALLOW_PRIVATE says what it allows then",
  permissions: "none",
  async fn() {
    const policy = {
      allowPrivate: true,
      resolve: () => Promise.reject(Object.assign(new Error("x"), { code: "ENOTFOUND" })),
    };
    await assert.rejects(checkWebhookTarget("http://nowhere.test/x", policy), (e) => {
      assert.ok(e instanceof ParameterError, String(e));
      assert.equal(e.allowed, "an http or https URL whose host resolves");
      return true;
    });
  },
});

Deno.test({
  name: "checkWebhookTarget() refuses a URL whose host is not public with a ParameterError " +
    "naming webhook (a 422), literals in every form included",
  permissions: "none",
  async fn() {
    const policy = { allowPrivate: false, resolve: () => Promise.resolve(["192.168.0.7"]) };
    for (
      const url of [
        "https://127.0.0.1/hook",
        "https://2130706433/hook", // the URL parser writes it 127.0.0.1
        "https://0x7f.1/hook",
        "https://[::1]:8443/",
        "https://[::ffff:7f00:1]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://printer.lan/hook",
      ]
    ) {
      await assert.rejects(checkWebhookTarget(url, policy), (error: unknown) => {
        assert.ok(error instanceof ParameterError, String(error));
        assert.equal(error.field, "webhook");
        assert.equal(error.allowed, "an https URL of a public host");
        assert.match(error.message, /is refused: .*(loopback|link-local|private)/, url);
        return true;
      });
    }
    await checkWebhookTarget("https://93.184.216.34/hook", policy);
  },
});

Deno.test({
  name: "postWebhook() refuses loopback at connect time: a name that resolved to a public " +
    "address before and to 127.0.0.1 now (DNS rebinding) never reaches the receiver",
  permissions: LOCAL,
  async fn() {
    await using receiver = WebhookReceiver.start({ secret: randomSecret(), answer: () => 200 });
    const post = { url: `http://rebind.example:${receiver.port}/hook`, headers: {}, body: "{}" };
    // Request time: public. Connect time: loopback.
    let answers = [["93.184.216.34"], ["127.0.0.1"]];
    const policy = { allowPrivate: false, resolve: () => Promise.resolve(answers.shift()!) };
    await checkWebhookTarget(post.url, policy);
    const result = await postWebhook(post, { policy, timeoutMs: 10_000 });
    assert.deepEqual(result, { error: "rebind.example resolves to 127.0.0.1, a loopback address" });
    const literal = await postWebhook({ ...post, url: receiver.url() }, {
      policy,
      timeoutMs: 10_000,
    });
    assert.deepEqual(literal, { error: "127.0.0.1 is a loopback address" });
    assert.equal(receiver.deliveries.length, 0, "nothing reached the receiver");

    answers = [["127.0.0.1"]];
    const allowed = await postWebhook(post, {
      policy: { ...policy, allowPrivate: true },
      timeoutMs: 10_000,
    });
    assert.deepEqual(allowed, { status: 200 });
    assert.equal(receiver.deliveries.length, 1);
    assert.equal(receiver.deliveries[0].path, "/hook");
  },
});

Deno.test({
  name: "postWebhook() does not follow redirects, reports Retry-After, and gives up on a " +
    "receiver that does not answer",
  permissions: LOCAL,
  async fn() {
    const policy = { allowPrivate: true };
    let hang: (() => void) | undefined;
    await using receiver = WebhookReceiver.start({
      secret: randomSecret(),
      answer: (d) =>
        d.path === "/moved"
          ? new Response(null, { status: 307, headers: { Location: "/hook" } })
          : d.path === "/busy"
          ? new Response("later", { status: 503, headers: { "Retry-After": "120" } })
          : 200,
    });
    const send = (path: string) =>
      postWebhook({ url: receiver.url(path), headers: {}, body: "{}" }, {
        policy,
        timeoutMs: 10_000,
      });
    assert.deepEqual(await send("/moved"), { status: 307 });
    assert.deepEqual(receiver.deliveries.map((d) => d.path), ["/moved"], "/hook never asked");
    assert.deepEqual(await send("/busy"), { status: 503, retryAfterMs: 120_000 });

    const silent = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Promise<Response>((resolve) => hang = () => resolve(new Response("late"))),
    );
    try {
      const result = await postWebhook(
        { url: `http://127.0.0.1:${silent.addr.port}/`, headers: {}, body: "{}" },
        { policy, timeoutMs: 300 },
      );
      assert.deepEqual(result, { error: "no answer within 0.3 s" });
    } finally {
      hang?.();
      await silent.shutdown();
    }
    const refused = await postWebhook(
      { url: "http://127.0.0.1:1/", headers: {}, body: "{}" },
      { policy, timeoutMs: 5000 },
    );
    assert.ok(
      "error" in refused && /ECONNREFUSED|refused/i.test(refused.error),
      JSON.stringify(refused),
    );
  },
});

Deno.test({
  name: "postWebhook() speaks https for the URL's name over the checked address, and the " +
    "standardwebhooks package verifies what it sent; a certificate it cannot trust fails",
  permissions: { net: ["127.0.0.1"], read: true },
  async fn() {
    const tls = await testTls();
    const secret = randomSecret();
    await using receiver = WebhookReceiver.start({ secret, tls, answer: () => 202 });
    const body = JSON.stringify({ type: "generation.done", id: "x" });
    const now = Math.floor(Date.now() / 1000);
    const post = {
      url: receiver.url("/hook?via=tls"),
      body,
      headers: {
        "webhook-id": "msg_tls",
        "webhook-timestamp": String(now),
        "webhook-signature": signWebhook(parseWebhookSecrets(secret), "msg_tls", now, body),
      },
    };
    // receiver.test is the receiver on loopback, which only the test's policy lets through.
    const policy = { allowPrivate: true, resolve: () => Promise.resolve(["127.0.0.1"]) };
    assert.deepEqual(await postWebhook(post, { policy, timeoutMs: 10_000, caCerts: [tls.ca] }), {
      status: 202,
    });
    const [got] = await receiver.received(1);
    assert.equal(got.verified, true);
    assert.equal(got.body, body);
    assert.equal(got.path, "/hook");

    const untrusted = await postWebhook(post, { policy, timeoutMs: 10_000 });
    assert.ok(
      "error" in untrusted && /certificate|issuer/i.test(untrusted.error),
      JSON.stringify(untrusted),
    );
    const byAddress = await postWebhook(
      { ...post, url: `https://127.0.0.1:${receiver.port}/hook` },
      { policy, timeoutMs: 10_000, caCerts: [tls.ca] },
    );
    assert.ok(
      "error" in byAddress && /certificate|name/i.test(byAddress.error),
      JSON.stringify(byAddress),
    );
    assert.equal(receiver.deliveries.length, 1, "only the trusted attempt was received");
  },
});
