/**
 * `svd_jobs_total{outcome="cancelled"}` counts every cancellation: a job cancelled while queued
 * (DELETE, or the client of a streaming POST leaving) as well as a running one. Issue 13 saw 2 of
 * ~2,900 counted: only the jobs a worker had taken.
 */

import assert from "node:assert/strict";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

const cancelledCount = async (app: { request(path: string): Response | Promise<Response> }) => {
  const text = await (await app.request("/metrics")).text();
  return Number(/^svd_jobs_total\{outcome="cancelled"\} (\d+)$/m.exec(text)?.[1]);
};

Deno.test("svd_jobs_total{outcome=cancelled} counts jobs cancelled while queued (DELETE, a streaming client leaving) and while running", async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  await using service = await testService({
    run: fakeRunner({ gate: () => gate, stepMs: 20 }),
    queueSize: 4,
  });
  const png = await inputPng();
  const post = (fields: Record<string, string>, stream = false) =>
    service.app.request("/v1/generations", {
      method: "POST",
      body: upload(png, { ...SMALL, ...fields }),
      ...(stream ? { headers: { Accept: "text/event-stream" } } : {}),
    });
  const running = await (await post({ steps: "200" })).json();
  await waitFor(() => service.loop.busy === 1, "the first job running (held at its gate)");
  const queued = await (await post({})).json();
  const streaming = await post({}, true);
  assert.equal(
    (await (await service.app.request(`/v1/generations/${queued.id}`)).json()).status,
    "queued",
  );

  // 1. DELETE while queued (twice: counted once).
  assert.equal(
    (await service.app.request(`/v1/generations/${queued.id}`, { method: "DELETE" })).status,
    200,
  );
  await service.app.request(`/v1/generations/${queued.id}`, { method: "DELETE" });
  assert.equal(await cancelledCount(service.app), 1);
  // 2. The client of a streaming POST leaves while its job is queued.
  const sse = new SseReader(streaming);
  await sse.until((e) => e.event === "queued");
  await sse.cancel();
  await waitFor(
    async () => await cancelledCount(service.app) === 2,
    "the left stream's job counted",
  );
  // 3. DELETE while running.
  open();
  await service.app.request(`/v1/generations/${running.id}`, { method: "DELETE" });
  await waitFor(async () => await cancelledCount(service.app) === 3, "the running job counted");
  const text = await (await service.app.request("/metrics")).text();
  // Only the job that ran is timed.
  assert.match(text, /^svd_generation_seconds_count 1$/m);
});
