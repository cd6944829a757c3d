/**
 * The HTTP function on the tiny demo model, through `app.request()`: the full event sequence with
 * one preview per frame at every step, a clip ffprobe reads with the requested frames, resuming a
 * stream with `Last-Event-ID`, cancelling a running job, an inference worker crash, readiness.
 */

import assert from "node:assert/strict";
import { createApp } from "../../functions/app.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { Metrics } from "../../functions/metrics.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { InferenceClient, readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { InferenceEngine } from "../../pipeline/service/inference_engine.ts";
import { probeVideo } from "../../pipeline/video/probe.ts";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

const streaming = (body: FormData) => ({
  method: "POST",
  body,
  headers: { Accept: "text/event-stream" },
});

Deno.test("a streaming generation on the demo model sends every event, one preview per frame per step, and a playable clip", async () => {
  await using service = await testService();
  const response = await service.app.request(
    "/v1/generations",
    streaming(upload(await inputPng(), { ...SMALL, steps: "3", num_frames: "5" })),
  );
  assert.equal(response.status, 200);
  const events = await new SseReader(response).rest();
  assert.deepEqual(events.map((e) => e.event), [
    "queued",
    "started",
    "step",
    "step",
    "step",
    "decoding", // decoding_t 3: frames 0-2
    "decoding", // frames 3-4
    "encoding",
    "done",
  ]);
  assert.deepEqual(events[1].data, {
    model: "tiny",
    frames: 5,
    steps: 3,
    width: 128,
    height: 64,
    seed: 23,
  });
  for (const [i, step] of events.filter((e) => e.event === "step").entries()) {
    assert.equal(step.data.step, i + 1);
    assert.equal(step.data.total, 3);
    assert.equal(step.data.frames.length, 5, "one preview per video frame");
    for (const url of step.data.frames) assert.match(url, /^data:image\/png;base64,[A-Za-z0-9+/]/);
  }
  assert.deepEqual(events[5].data, { chunk: 1, total: 2 });
  const done = events.at(-1)!.data;
  assert.equal(done.format, "mp4");
  assert.equal(done.seed, 23);

  const video = await service.app.request(done.video_url);
  assert.equal(video.headers.get("Content-Type"), "video/mp4");
  const bytes = new Uint8Array(await video.arrayBuffer());
  assert.equal(bytes.length, done.bytes);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/clip.mp4`, bytes);
    const probe = await probeVideo(`${dir}/clip.mp4`);
    assert.deepEqual(
      { codec: probe.codec, frames: probe.frames, width: probe.width, height: probe.height },
      { codec: "h264", frames: 5, width: 128, height: 64 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stream dropped mid-generation (keep_running) resumes with Last-Event-ID: later events only, no repeats", async () => {
  await using service = await testService();
  const response = await service.app.request(
    "/v1/generations",
    streaming(upload(await inputPng(), { ...SMALL, steps: "4", keep_running: "true" })),
  );
  const id = response.headers.get("X-Generation-Id")!;
  const first = new SseReader(response);
  const lastSeen = await first.until((e) => e.event === "step");
  await first.cancel(); // the client drops; keep_running keeps the job going
  const seen = first.events;

  const resumed = await new SseReader(
    await service.app.request(`/v1/generations/${id}/events`, {
      headers: { "Last-Event-ID": lastSeen!.id! },
    }),
  ).rest();
  assert.ok(resumed.length > 0);
  assert.ok(resumed.every((e) => Number(e.id) > Number(lastSeen!.id)), "only later events");
  assert.equal(resumed.at(-1)?.event, "done");
  const all = await new SseReader(await service.app.request(`/v1/generations/${id}/events`)).rest();
  assert.deepEqual([...seen, ...resumed], all, "seen + resumed = the whole stream, once each");
});

Deno.test("DELETE stops a running generation within a step or two; the stream ends with cancelled", async () => {
  await using service = await testService();
  const response = await service.app.request(
    "/v1/generations",
    streaming(upload(await inputPng(), { ...SMALL, steps: "200", preview: "none" })),
  );
  const id = response.headers.get("X-Generation-Id")!;
  const sse = new SseReader(response);
  const step = await sse.until((e) => e.event === "step");
  const cancel = await service.app.request(`/v1/generations/${id}`, { method: "DELETE" });
  assert.equal(cancel.status, 202);
  const seenAtCancel = sse.events.filter((e) => e.event === "step").length;
  await cancel.body?.cancel();
  const events = await sse.rest();
  assert.equal(events.at(-1)?.event, "cancelled");
  const steps = events.filter((e) => e.event === "step");
  assert.ok(
    steps.length - seenAtCancel <= 3,
    `${steps.length - seenAtCancel} steps after the cancel (first seen: ${step?.data.step})`,
  );
  const status = await (await service.app.request(`/v1/generations/${id}`)).json();
  assert.equal(status.status, "cancelled");
  assert.ok(status.finished_at);
});

Deno.test("an inference worker that crashes fails its job with an error event; the next job succeeds", async () => {
  await using service = await testService();
  const png = await inputPng();
  const response = await service.app.request(
    "/v1/generations",
    streaming(upload(png, { ...SMALL, steps: "100", preview: "none" })),
  );
  const sse = new SseReader(response);
  await sse.until((e) => e.event === "step");
  service.engine!.current!.crashForTesting();
  const events = await sse.rest();
  const last = events.at(-1)!;
  assert.equal(last.event, "error");
  assert.equal(last.data.code, "inference_worker_crashed");
  assert.doesNotMatch(last.data.message, /\n\s+at /);

  const next = await service.app.request("/v1/generations", streaming(upload(png, SMALL)));
  const nextEvents = await new SseReader(next).rest();
  assert.equal(nextEvents.at(-1)?.event, "done", JSON.stringify(nextEvents.at(-1)));
  const metrics = await (await service.app.request("/metrics")).text();
  assert.match(metrics, /^svd_jobs_total\{outcome="error"\} 1$/m);
  assert.match(metrics, /^svd_jobs_total\{outcome="done"\} 1$/m);
  assert.equal((await service.app.request("/healthz")).status, 200);
});

Deno.test("/readyz answers 503 until the inference engine has loaded the model, then 200, also while a crashed process is replaced", async () => {
  const modelDir = await ensureDemoModel();
  const engine = new InferenceEngine(() => InferenceClient.start({ modelDir }));
  const queue = new MemoryJobQueue({ capacity: 2, retentionMs: 1000 });
  try {
    const app = createApp({
      queue,
      model: {
        name: "tiny",
        sampling: (await readModelDirectory(modelDir)).manifest.config.sampling,
      },
      metrics: new Metrics(),
      provider: "cpu",
      inferenceReady: () => engine.ready,
      maxUploadBytes: 1 << 20,
      maxPixels: 16e6,
      imagePool: { validate: () => Promise.reject(new Error("no uploads in this test")) },
      heartbeatMs: 1000,
    });
    assert.equal((await app.request("/readyz")).status, 503);
    const loading = engine.acquire();
    assert.equal((await app.request("/readyz")).status, 503, "still loading");
    await loading;
    const ready = await app.request("/readyz");
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).provider, "cpu");
    const crashed = engine.current!;
    crashed.crashForTesting();
    // Jobs wait for the replacement as for a busy slot: the instance stays in rotation.
    const statuses = new Set<number>();
    await waitFor(async () => {
      statuses.add((await app.request("/readyz")).status);
      return engine.current !== undefined && engine.current !== crashed;
    }, "the replacement loaded");
    assert.deepEqual([...statuses], [200], "ready all through the restart");
  } finally {
    await queue.close();
    await engine.close();
  }
});
