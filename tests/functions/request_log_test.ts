/**
 * What an operator reads: one line per request (method, route, status, duration, generation id)
 * and one per job transition (queued, started, done with timings, failed with its code,
 * cancelled), each with a level and a stable `event` name.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env tests/functions/request_log_test.ts
 */

import assert from "node:assert/strict";
import type { CapturedLine } from "./_captured_log.ts";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

const only = (lines: CapturedLine[], event: string, generation?: string) =>
  lines.filter((l) => l.event === event && (!generation || l.generation === generation));

Deno.test("a generation is logged as one line per request and one per job transition", async () => {
  await using service = await testService({ run: fakeRunner() });
  const response = await service.app.request("/v1/generations", {
    method: "POST",
    body: upload(await inputPng(), SMALL),
  });
  assert.equal(response.status, 202);
  const { id } = await response.json();
  await new SseReader(await service.app.request(`/v1/generations/${id}/events`)).rest();
  await service.app.request(`/v1/generations/${id}`);

  const requests = only(service.logs, "request");
  assert.deepEqual(
    requests.map((l) => [l.level, l.method, l.route, l.status, l.generation]),
    [
      ["info", "POST", "/v1/generations", 202, id],
      ["info", "GET", "/v1/generations/:id/events", 200, id],
      ["info", "GET", "/v1/generations/:id", 200, id],
    ],
  );
  for (const line of requests) {
    assert.equal(typeof line.duration_ms, "number");
    assert.match(line.message, /^(POST|GET) \/v1\/generations\S* (200|202) [\d.]+ ms/);
  }
  assert.deepEqual(
    service.logs.filter((l) => l.event.startsWith("job_")).map((l) => [l.event, l.generation]),
    [["job_queued", id], ["job_started", id], ["job_done", id]],
  );
  const [started] = only(service.logs, "job_started");
  assert.equal(started.worker, "test-0");
  assert.equal(started.steps, 2);
  assert.equal(started.frames, 4);
  const [done] = only(service.logs, "job_done");
  assert.equal(done.level, "info");
  for (const timing of ["queued_ms", "sampling_ms", "decoding_ms", "encoding_ms", "total_ms"]) {
    assert.equal(typeof done[timing], "number", timing);
  }
  assert.match(done.message, new RegExp(`^job ${id} done in `));
});

Deno.test("a refused request's line carries the error code and message; a 5xx is an error line with the real error", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  await service.app.request("/v1/generations", {
    method: "POST",
    body: upload(await inputPng(), { ...SMALL, steps: "0" }),
  });
  await service.app.request("/nowhere");
  service.queue.get = () => Promise.reject(new Error("disk on fire"));
  const failed = await service.app.request("/v1/generations/abc");
  assert.equal(failed.status, 500);
  assert.doesNotMatch(await failed.text(), /disk on fire/, "the client does not see internals");

  const [refused, missing, broken] = only(service.logs, "request");
  assert.equal(refused.status, 422);
  assert.equal(refused.level, "info");
  assert.equal(refused.code, "invalid_parameter");
  assert.match(String(refused.error), /steps/);
  assert.match(refused.message, /422 .*steps/);
  assert.equal(missing.status, 404);
  assert.equal(missing.route, null, "no route matched");
  assert.equal(broken.status, 500);
  assert.equal(broken.level, "error");
  assert.equal(broken.code, "internal_error");
  assert.equal(broken.error, "disk on fire");
  assert.equal(broken.generation, "abc");
});

Deno.test("probes are logged at debug level, so LOG_LEVEL=info hides a kubelet's polling", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  for (const path of ["/healthz", "/readyz", "/metrics"]) await service.app.request(path);
  assert.deepEqual(only(service.logs, "request").map((l) => [l.path, l.level]), [
    ["/healthz", "debug"],
    ["/readyz", "debug"],
    ["/metrics", "debug"],
  ]);
});

Deno.test("a /readyz 503 while the model loads is a debug line too, not an error", async () => {
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    inferenceReady: () => false,
  });
  const response = await service.app.request("/readyz");
  assert.equal(response.status, 503);
  assert.deepEqual(only(service.logs, "request").map((l) => [l.path, l.status, l.level]), [
    ["/readyz", 503, "debug"],
  ]);
});

Deno.test("a failed job is an error line with its code; a cancelled one says where it stopped", async () => {
  await using service = await testService({
    run: fakeRunner({ stepMs: 30, fail: () => new Error("ffmpeg ate the frames") }),
  });
  const post = async (fields: Record<string, string>) =>
    (await (await service.app.request("/v1/generations", {
      method: "POST",
      body: upload(await inputPng(), { ...SMALL, ...fields }),
    })).json()).id as string;
  const failing = await post({});
  await waitFor(() => only(service.logs, "job_failed", failing)[0], "job_failed");
  const [failed] = only(service.logs, "job_failed", failing);
  assert.equal(failed.level, "error");
  assert.equal(failed.code, "internal_error");
  assert.equal(failed.error, "ffmpeg ate the frames");

  const running = await post({ steps: "200" });
  const queued = await post({});
  await waitFor(() => only(service.logs, "job_started", running)[0], "job_started");
  await service.app.request(`/v1/generations/${queued}`, { method: "DELETE" });
  await service.app.request(`/v1/generations/${running}`, { method: "DELETE" });
  await waitFor(() => only(service.logs, "job_cancelled", running)[0], "job_cancelled");
  const [whileQueued] = only(service.logs, "job_cancelled", queued);
  assert.equal(whileQueued.at, "queued");
  const [cancelled] = only(service.logs, "job_cancelled", running);
  assert.equal(cancelled.level, "info");
  assert.match(String(cancelled.at), /^at step \d+ of 200$/);
  assert.match(cancelled.message, /cancelled at step \d+ of 200 after /);
});
