/**
 * What is decided before an upload's body is read: a full queue answers 429 `queue_full` without
 * reading a byte (uploads being read count against its places), concurrent uploads beyond
 * `MAX_CONCURRENT_UPLOADS` get 503 `too_many_uploads` with `Retry-After`, and a queue that fills
 * while a body is read still refuses it (429) once read. (Before: a full queue read and parsed
 * the whole body before answering 429.)
 */

import assert from "node:assert/strict";
import { serveHttp } from "../../functions/http_server.ts";
import { ConcurrentUploads } from "../../functions/middleware/upload_admission.ts";
import { jobRequest } from "./_job_request.ts";
import { BODY_START, RawClient, uploadHead } from "./_raw_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload } from "./_service.ts";

/** A multipart body as a stream that counts the chunks pulled from it and can be held. */
async function countedBody(options: { hold?: Promise<void> } = {}) {
  const form = new Response(upload(await inputPng(), SMALL));
  const type = form.headers.get("Content-Type")!;
  const bytes = new Uint8Array(await form.arrayBuffer());
  const state = { pulled: 0 };
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (offset === 0 && options.hold) await options.hold;
      state.pulled++;
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset += 1024));
    },
  }, { highWaterMark: 0 });
  return {
    state,
    init: {
      method: "POST",
      body: stream,
      headers: { "Content-Type": type },
      duplex: "half",
    } as RequestInit,
  };
}

Deno.test("a full queue answers 429 queue_full with Retry-After before reading a byte of the body", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using service = await testService({
    run: fakeRunner({ gate: () => gate }),
    slots: 1,
    queueSize: 0,
  });
  const first = await service.app.request("/v1/generations", {
    method: "POST",
    body: upload(await inputPng(), SMALL),
  });
  assert.equal(first.status, 202);
  const { state, init } = await countedBody();
  const refused = await service.app.request("/v1/generations", init);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("Retry-After"), "7");
  const { error } = await refused.json();
  assert.equal(error.code, "queue_full");
  assert.match(error.message, /0 queued and 1 running of 1 places/);
  assert.equal(state.pulled, 0, "no byte of the body was read");
  release();
});

Deno.test({
  name:
    "over a socket, a full queue's 429 comes before the body is sent, and the connection closes",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    await using service = await testService({
      run: fakeRunner({ gate: () => gate }),
      slots: 1,
      queueSize: 0,
    });
    await service.queue.submit(jobRequest(), await inputPng());
    const server = await serveHttp(service.app.fetch, { hostname: "127.0.0.1", port: 0 });
    const client = await RawClient.connect(server.addr.port);
    try {
      // 20 MB announced, only the head sent: the answer must not wait for the body
      await client.send(uploadHead(20_000_000));
      const reply = await client.reply(20_000);
      assert.equal(reply.status, 429, reply.text);
      assert.equal(reply.json?.error?.code, "queue_full");
      assert.match(reply.text, /retry-after: 7/i);
      assert.ok(reply.closed, "the connection was closed after the 429");
    } finally {
      client.close();
      release();
      server.closeAll();
      await server.shutdown();
    }
  },
});

Deno.test("uploads beyond MAX_CONCURRENT_UPLOADS get 503 too_many_uploads with Retry-After; the places free as uploads end", async () => {
  let open!: () => void;
  const hold = new Promise<void>((resolve) => open = resolve);
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    queueSize: 100,
    maxConcurrentUploads: 2,
  });
  const held = await Promise.all([countedBody({ hold }), countedBody({ hold })]);
  const pending = held.map(({ init }) => service.app.request("/v1/generations", init));
  await new Promise((resolve) => setTimeout(resolve, 50)); // both are reading their bodies
  const third = await countedBody();
  const refused = await service.app.request("/v1/generations", third.init);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("Retry-After"), "1");
  const { error } = await refused.json();
  assert.equal(error.code, "too_many_uploads");
  assert.match(error.message, /MAX_CONCURRENT_UPLOADS/);
  assert.equal(third.state.pulled, 0, "the refused upload was not read");
  open();
  for (const response of await Promise.all(pending)) assert.equal(response.status, 202);
  const after = await service.app.request("/v1/generations", (await countedBody()).init);
  assert.equal(after.status, 202, "a place is free again");
});

Deno.test("two apps built with the same upload places share MAX_CONCURRENT_UPLOADS, as the API role's apps do across a model change", async () => {
  let open!: () => void;
  const hold = new Promise<void>((resolve) => open = resolve);
  const uploads = new ConcurrentUploads(2);
  const options = { run: fakeRunner(), startLoop: false, queueSize: 100, uploads };
  // The app before the model change, and the one built after it (same process, same places).
  await using before = await testService(options);
  await using after = await testService(options);
  const held = [await countedBody({ hold }), await countedBody({ hold })];
  const pending = [
    before.app.request("/v1/generations", held[0].init),
    after.app.request("/v1/generations", held[1].init),
  ];
  await new Promise((resolve) => setTimeout(resolve, 50)); // both are reading their bodies
  assert.equal(uploads.count, 2);
  for (const app of [before.app, after.app]) {
    const third = await countedBody();
    const refused = await app.request("/v1/generations", third.init);
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).error.code, "too_many_uploads");
    assert.equal(third.state.pulled, 0, "the refused upload was not read");
  }
  open();
  for (const response of await Promise.all(pending)) assert.equal(response.status, 202);
  assert.equal(uploads.count, 0, "every place was given back");
  const again = await after.app.request("/v1/generations", (await countedBody()).init);
  assert.equal(again.status, 202, "a place is free again");
});

Deno.test("ConcurrentUploads refuses a cap that is not an integer ≥ 1, naming the value", () => {
  for (const max of [0, -1, 1.5, NaN]) {
    assert.throws(() => new ConcurrentUploads(max), RangeError);
  }
  assert.throws(
    () => new ConcurrentUploads(0),
    /MAX_CONCURRENT_UPLOADS must be an integer ≥ 1, got 0/,
  );
});

Deno.test("a queue that fills while a body is read still refuses it, with 429 once it is read", async () => {
  let open!: () => void;
  const hold = new Promise<void>((resolve) => open = resolve);
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    slots: 1,
    queueSize: 0,
  });
  const { state, init } = await countedBody({ hold });
  const pending = service.app.request("/v1/generations", init);
  await new Promise((resolve) => setTimeout(resolve, 50)); // admitted, reading
  await service.queue.submit(jobRequest(), await inputPng()); // the last place, taken meanwhile
  open();
  const refused = await pending;
  assert.equal(refused.status, 429);
  assert.equal((await refused.json()).error.code, "queue_full");
  assert.ok(state.pulled > 1, "the body was read before the queue said no");
});

Deno.test({
  name: "a stalled upload holding the last place is refused 408 and frees it",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true },
  async fn() {
    await using service = await testService({
      run: fakeRunner(),
      startLoop: false,
      slots: 1,
      queueSize: 0,
      bodyIdleMs: 300,
    });
    const server = await serveHttp(service.app.fetch, { hostname: "127.0.0.1", port: 0 });
    const stalled = await RawClient.connect(server.addr.port);
    try {
      await stalled.send(uploadHead(100_000) + BODY_START);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const busy = await fetch(`http://127.0.0.1:${server.addr.port}/v1/generations`, {
        method: "POST",
        body: upload(await inputPng(), SMALL),
      });
      assert.equal(busy.status, 429, "the one place is the stalled upload's");
      await busy.body?.cancel();
      assert.equal((await stalled.reply(20_000)).status, 408);
      const accepted = await fetch(`http://127.0.0.1:${server.addr.port}/v1/generations`, {
        method: "POST",
        body: upload(await inputPng(), SMALL),
      });
      assert.equal(accepted.status, 202, await accepted.text());
    } finally {
      stalled.close();
      server.closeAll();
      await server.shutdown();
    }
  },
});
