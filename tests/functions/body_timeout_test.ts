/**
 * Request bodies have a read timeout, and a refused or abandoned body closes its connection,
 * checked with raw TCP clients on a real `Deno.serve`: an upload that stalls mid-body is answered
 * 408 `request_timeout` once `BODY_IDLE_SECONDS` pass, one that trickles is answered 408 at
 * `BODY_TIMEOUT_SECONDS`, and the connection is closed either way; 300 stalled uploads are all
 * answered and closed while the server keeps serving. (Before: 300 stalled uploads were held for
 * 75 s and never closed.)
 */

import assert from "node:assert/strict";
import { serveHttp } from "../../functions/http_server.ts";
import { BODY_START, RawClient, type RawReply, uploadHead } from "./_raw_client.ts";
import { fakeRunner, testService, type TestServiceOptions } from "./_service.ts";

/** The service on a free loopback port, served as `main.ts` serves it. */
async function served(options: TestServiceOptions) {
  const service = await testService({ run: fakeRunner(), startLoop: false, ...options });
  const server = await serveHttp(service.app.fetch, { hostname: "127.0.0.1", port: 0 });
  return {
    service,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      server.closeAll();
      await server.shutdown();
      await service[Symbol.asyncDispose]();
    },
  };
}

/** Asserts a refusal that closed its connection: status, code, and the connection gone. */
function assertClosedWith(reply: RawReply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.json?.error?.code, code, reply.text);
  assert.equal(typeof reply.json?.error?.message, "string");
  assert.ok(reply.closed, `the connection stayed open after the answer: ${reply.text}`);
}

Deno.test({
  name:
    "an upload that stalls mid-body gets 408 request_timeout after BODY_IDLE_SECONDS, and its connection is closed",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    await using server = await served({ bodyIdleMs: 300, bodyTimeoutMs: 60_000 });
    const client = await RawClient.connect(server.port);
    try {
      await client.send(uploadHead(100_000) + BODY_START);
      const reply = await client.reply(20_000);
      assertClosedWith(reply, 408, "request_timeout");
      assert.match(reply.json!.error!.message!, /No byte of the request body arrived for 0\.3 s/);
      assert.match(reply.json!.error!.message!, /BODY_IDLE_SECONDS/);
      assert.ok(reply.ms >= 250, `answered after ${reply.ms} ms, before the idle time`);
    } finally {
      client.close();
    }
    assert.equal((await server.service.app.request("/healthz")).status, 200);
  },
});

Deno.test({
  name: "an upload that trickles in gets 408 at BODY_TIMEOUT_SECONDS though bytes keep coming",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    await using server = await served({ bodyIdleMs: 2_000, bodyTimeoutMs: 600 });
    const client = await RawClient.connect(server.port);
    let sending = true;
    try {
      await client.send(uploadHead(100_000) + BODY_START);
      const trickle = (async () => {
        while (sending) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          await client.send("x").catch(() => sending = false);
        }
      })();
      const reply = await client.reply(20_000);
      sending = false;
      await trickle;
      assertClosedWith(reply, 408, "request_timeout");
      assert.match(
        reply.json!.error!.message!,
        /not all there after 0\.6 s \(BODY_TIMEOUT_SECONDS\)/,
      );
    } finally {
      sending = false;
      client.close();
    }
  },
});

Deno.test({
  name:
    "300 stalled uploads are all answered and closed (408 in the upload slots, 503 beyond), and the server keeps serving",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    await using server = await served({
      bodyIdleMs: 500,
      maxConcurrentUploads: 16,
      queueSize: 1000,
    });
    const clients = await Promise.all(
      Array.from({ length: 300 }, () => RawClient.connect(server.port)),
    );
    try {
      await Promise.all(clients.map((c) => c.send(uploadHead(1_000_000) + BODY_START)));
      const replies = await Promise.all(clients.map((c) => c.reply(30_000)));
      const byCode = new Map<string, number>();
      for (const reply of replies) {
        const code = `${reply.status} ${reply.json?.error?.code}`;
        byCode.set(code, (byCode.get(code) ?? 0) + 1);
        assert.ok(reply.closed, `a connection stayed open after ${code}`);
      }
      assert.deepEqual(Object.fromEntries(byCode), {
        "408 request_timeout": 16,
        "503 too_many_uploads": 284,
      });
      assert.equal((await server.service.app.request("/healthz")).status, 200);
    } finally {
      for (const client of clients) client.close();
    }
  },
});

Deno.test({
  name: "a body refused before it is read (no token) closes its connection at once",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    await using server = await served({ apiToken: "s3cret", bodyIdleMs: 60_000 });
    const client = await RawClient.connect(server.port);
    try {
      await client.send(uploadHead(5_000_000) + BODY_START);
      assertClosedWith(await client.reply(20_000), 401, "unauthorized");
    } finally {
      client.close();
    }
  },
});
