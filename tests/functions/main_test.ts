/**
 * `main.ts` as it is deployed: a subprocess on a free port with the demo model. It logs JSON lines
 * for start and ready, serves a generation, and on SIGTERM refuses new work with 503, lets the
 * running job finish (or cancels it at the drain deadline) and exits 0 in time. Bad environment
 * values stop it at once with one clear line.
 */

import assert from "node:assert/strict";
import { MainProcess as Service } from "./_main_process.ts";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, upload, waitFor } from "./_service.ts";

Deno.test("main.ts serves the demo model, and on SIGTERM refuses new work, finishes the running job and exits 0", async () => {
  await using service = new Service({ DRAIN_SECONDS: "60", HEARTBEAT_SECONDS: "1" });
  const url = await service.url();
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, "/readyz 200", 120_000);
  const ready = await service.line("ready");
  assert.equal(ready.provider, "cpu");
  assert.equal(ready.model, "tiny");

  const png = await inputPng();
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(png, { ...SMALL, steps: "60", preview: "none" }),
    headers: { Accept: "text/event-stream" },
  });
  const sse = new SseReader(response);
  await sse.until((e) => e.event === "step");

  const signalled = performance.now();
  service.process.kill("SIGTERM");
  await waitFor(async () => {
    const readyz = await fetch(`${url}/readyz`);
    return (await readyz.json()).status === "draining";
  }, "draining");
  const refused = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(png, SMALL),
  });
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).error.code, "shutting_down");

  const events = await sse.rest();
  assert.equal(events.at(-1)?.event, "done", "the running job was allowed to finish");
  const { status, stderr } = await service.ended();
  assert.equal(status.code, 0, stderr);
  assert.ok(performance.now() - signalled < 60_000, "exited within DRAIN_SECONDS");
  const shutdown = await service.line("shutdown", 1000);
  assert.equal(shutdown.clean, true);
  assert.ok(service.lines.every((l) => !("raw" in l)), "stdout holds only JSON lines");
});

Deno.test("main.ts cancels a job still running at the drain deadline and exits 0 within DRAIN_SECONDS", async () => {
  await using service = new Service({ DRAIN_SECONDS: "3" });
  const url = await service.url();
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, "/readyz 200", 120_000);
  const png = await inputPng();
  const response = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(png, { ...SMALL, steps: "200", num_frames: "16", preview: "none" }),
    headers: { Accept: "text/event-stream" },
  });
  const queued = await fetch(`${url}/v1/generations`, {
    method: "POST",
    body: upload(png, SMALL),
    headers: { Accept: "text/event-stream" },
  });
  const sse = new SseReader(response);
  await sse.until((e) => e.event === "step");

  const signalled = performance.now();
  service.process.kill("SIGTERM");
  const events = await sse.rest();
  assert.equal(events.at(-1)?.event, "cancelled");
  const queuedEvents = await new SseReader(queued).rest();
  assert.deepEqual(queuedEvents.map((e) => e.event), ["queued", "cancelled"]);
  const queuedId = service.lines.filter((l) => l.event === "job_queued").at(-1)?.generation;
  const { status, stderr } = await service.ended();
  assert.equal(status.code, 0, stderr);
  const elapsed = performance.now() - signalled;
  assert.ok(elapsed < 3000 + 1500, `exited ${Math.round(elapsed)} ms after SIGTERM`);
  const shutdown = await service.line("shutdown", 1000);
  assert.equal(shutdown.clean, false, "a job was cancelled at the deadline");
  assert.match(String(shutdown.message), /running jobs were cancelled or handed back/);
  // Every job transition has its line: the queued job cancelled by the shutdown too.
  const cancelled = service.lines.find((l) =>
    l.event === "job_cancelled" && l.generation === queuedId
  );
  assert.ok(cancelled, `no job_cancelled line for the queued job ${queuedId}`);
  assert.equal(cancelled.at, "queued");
});

Deno.test("main.ts refuses a bad environment with one line naming the variable and what is allowed", async () => {
  await using service = new Service({ SLOTS: "0", ORT_PROVIDER: "tpu", LOG_LEVEL: "loud" });
  const { status } = await service.ended();
  assert.equal(status.code, 1);
  const failed = await service.line("start_failed", 1000);
  assert.match(
    String(failed.message),
    /SLOTS = "0" is out of range: allowed an integer in 1\.\.64/,
  );
  assert.match(
    String(failed.message),
    /ORT_PROVIDER = "tpu" is not supported: allowed auto \| cuda \| webgpu \| cpu/,
  );
  assert.match(String(failed.message), /LOG_LEVEL = "loud" is not supported: allowed debug \|/);
  assert.equal(failed.level, "ERROR");
});
