/**
 * The HTTP function behind the server `main.ts` runs (`serveHttp`: `node:http`) on loopback,
 * driven like a client: fetch, reading the SSE body as it arrives; a client that drops its
 * streaming POST cancels the job (unless `keep_running`); the clip over HTTP with byte ranges.
 */

import assert from "node:assert/strict";
import type { Hono } from "hono";
import { serveHttp } from "../../functions/http_server.ts";
import { probeVideo } from "../../pipeline/video/probe.ts";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

/** Serves `app` on 127.0.0.1 at a free port, as `main.ts` does. */
async function serve(app: Hono): Promise<AsyncDisposable & { url: string }> {
  const server = await serveHttp(app.fetch, { hostname: "127.0.0.1", port: 0 });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      server.closeAll();
      await server.shutdown();
    },
  };
}

async function status(url: string): Promise<Record<string, unknown>> {
  const response = await fetch(url);
  return await response.json();
}

Deno.test("over real HTTP a streaming POST delivers events while the job runs, and the clip supports ranges", async () => {
  await using service = await testService();
  await using server = await serve(service.app);
  const response = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    body: upload(await inputPng(), { ...SMALL, steps: "3", num_frames: "6" }),
    headers: { Accept: "text/event-stream" },
  });
  assert.equal(response.status, 200);
  const id = response.headers.get("X-Generation-Id")!;
  const sse = new SseReader(response);
  assert.equal((await sse.next())?.event, "queued");
  const step = await sse.until((e) => e.event === "step");
  assert.equal(step?.data.frames.length, 6);
  // The event arrived while the job was still running: the stream is not buffered.
  const during = await status(`${server.url}/v1/generations/${id}`);
  assert.ok(["running", "done"].includes(during.status as string));
  const events = await sse.rest();
  assert.equal(sse.retries.length, 1);
  const done = events.at(-1)!;
  assert.equal(done.event, "done");

  const video = await fetch(`${server.url}${done.data.video_url}`);
  assert.equal(video.status, 200);
  assert.equal(video.headers.get("Accept-Ranges"), "bytes");
  const bytes = new Uint8Array(await video.arrayBuffer());
  assert.equal(bytes.length, done.data.bytes);
  const partial = await fetch(`${server.url}${done.data.video_url}`, {
    headers: { Range: "bytes=100-199" },
  });
  assert.equal(partial.status, 206);
  assert.equal(partial.headers.get("Content-Range"), `bytes 100-199/${bytes.length}`);
  assert.deepEqual(new Uint8Array(await partial.arrayBuffer()), bytes.slice(100, 200));
  const beyond = await fetch(`${server.url}${done.data.video_url}`, {
    headers: { Range: `bytes=${bytes.length}-` },
  });
  assert.equal(beyond.status, 416);
  await beyond.body?.cancel();

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/clip.mp4`, bytes);
    assert.equal((await probeVideo(`${dir}/clip.mp4`)).frames, 6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client that drops its streaming POST cancels the job within a step or two", async () => {
  await using service = await testService();
  await using server = await serve(service.app);
  const client = new AbortController();
  const response = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    body: upload(await inputPng(), { ...SMALL, steps: "200", preview: "none" }),
    headers: { Accept: "text/event-stream" },
    signal: client.signal,
  });
  const id = response.headers.get("X-Generation-Id")!;
  const sse = new SseReader(response);
  const step = await sse.until((e) => e.event === "step");
  client.abort(); // the client goes away mid-generation
  await sse.cancel();

  const url = `${server.url}/v1/generations/${id}`;
  const final = await waitFor(async () => {
    const s = await status(url);
    return s.status === "running" ? undefined : s;
  }, "the job to stop");
  assert.equal(final.status, "cancelled");
  const events = await new SseReader(await fetch(`${url}/events`)).rest();
  assert.equal(events.at(-1)?.event, "cancelled");
  const lastStep = events.findLast((e) => e.event === "step")!.data.step;
  assert.ok(
    lastStep - step!.data.step <= 4,
    `cancelled at step ${lastStep}, ${lastStep - step!.data.step} after the client left`,
  );
});

Deno.test("with keep_running=true a client that drops its streaming POST leaves the job running to done", async () => {
  await using service = await testService();
  await using server = await serve(service.app);
  const client = new AbortController();
  const response = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    body: upload(await inputPng(), { ...SMALL, steps: "20", keep_running: "true" }),
    headers: { Accept: "text/event-stream" },
    signal: client.signal,
  });
  const id = response.headers.get("X-Generation-Id")!;
  const sse = new SseReader(response);
  await sse.until((e) => e.event === "step");
  client.abort();
  await sse.cancel();
  const final = await waitFor(async () => {
    const s = await status(`${server.url}/v1/generations/${id}`);
    return ["done", "error", "cancelled"].includes(s.status as string) ? s : undefined;
  }, "the job to end");
  assert.equal(final.status, "done");
  const video = await fetch(`${server.url}/v1/generations/${id}/video`);
  assert.equal(video.status, 200);
  await video.body?.cancel();
});

Deno.test("over real HTTP an oversized upload is refused with 413 before the body is stored", async () => {
  await using service = await testService({ maxUploadBytes: 64 * 1024 });
  await using server = await serve(service.app);
  const big = new Uint8Array(1024 * 1024);
  big.set(await inputPng());
  const response = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    body: upload(big, SMALL),
  });
  assert.equal(response.status, 413);
  assert.equal((await response.json()).error.code, "body_too_large");
  assert.deepEqual(await service.queue.stats(), { queued: 0, running: 0 });
});
