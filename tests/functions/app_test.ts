/**
 * The HTTP function through `app.request()`, on a fake job runner (no model): the API's shapes,
 * every bad-input class, auth, the bounded queue, cancel, byte ranges, probes, metrics, OpenAPI.
 */

import assert from "node:assert/strict";
import { pngFile } from "../image/_png_bytes.ts";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload, waitFor } from "./_service.ts";

const post = (body: BodyInit, headers: Record<string, string> = {}) => ({
  method: "POST",
  body,
  headers,
});

/** Asserts an error response: status, code, field, and nothing that looks like a stack. */
async function assertError(
  response: Response,
  status: number,
  code: string,
  field?: string,
): Promise<{ code: string; message: string; field?: string; allowed?: string }> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.match(response.headers.get("Content-Type") ?? "", /application\/json/);
  const { error } = JSON.parse(text);
  assert.equal(error.code, code, text);
  if (field !== undefined) assert.equal(error.field, field, text);
  assert.equal(typeof error.message, "string");
  assert.doesNotMatch(text, /\n\s+at |\.ts:\d+/, "no stack trace");
  return error;
}

Deno.test("POST /v1/generations answers 202 with the URLs; the status goes from queued to done", async () => {
  await using service = await testService({ run: fakeRunner() });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), SMALL)),
  );
  assert.equal(response.status, 202);
  const body = await response.json();
  assert.equal(body.status, "queued");
  assert.equal(body.status_url, `/v1/generations/${body.id}`);
  assert.equal(body.events_url, `/v1/generations/${body.id}/events`);
  assert.equal(body.video_url, `/v1/generations/${body.id}/video`);
  assert.equal(response.headers.get("Location"), body.status_url);

  const done = await waitFor(async () => {
    const status = await (await service.app.request(body.status_url)).json();
    return status.status === "done" ? status : undefined;
  }, "status done");
  assert.equal(done.id, body.id);
  assert.equal(done.video_url, body.video_url);
  assert.ok(Date.parse(done.created_at) <= Date.parse(done.started_at));
  assert.ok(Date.parse(done.started_at) <= Date.parse(done.finished_at));
  assert.deepEqual(
    { steps: done.params.steps, num_frames: done.params.num_frames, format: done.params.format },
    { steps: 2, num_frames: 4, format: "mp4" },
  );
  assert.equal(done.params.seed, 23, "the demo model's default seed is filled in");
});

Deno.test("a streaming POST is the job's event stream: retry once, monotonic ids, queued first, done last", async () => {
  await using service = await testService({ run: fakeRunner() });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), { ...SMALL, steps: "3" }), { Accept: "text/event-stream" }),
  );
  assert.equal(response.status, 200);
  assert.match(response.headers.get("Content-Type")!, /^text\/event-stream/);
  assert.equal(response.headers.get("Cache-Control"), "no-cache, no-transform");
  assert.ok(response.headers.get("X-Generation-Id"));
  const sse = new SseReader(response);
  const events = await sse.rest();
  assert.deepEqual(sse.retries.length, 1);
  assert.deepEqual(events.map((e) => e.event), [
    "queued",
    "started",
    "step",
    "step",
    "step",
    "decoding",
    "encoding",
    "done",
  ]);
  const ids = events.map((e) => Number(e.id));
  assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `ids ${ids} are monotonic`);
  assert.deepEqual(events[0].data, { position: 1 });
  assert.deepEqual(events[1].data, {
    model: "tiny",
    frames: 4,
    steps: 3,
    width: 128,
    height: 64,
    seed: 23,
  });
  for (const step of events.filter((e) => e.event === "step")) {
    assert.equal(step.data.frames.length, 4, "one preview per video frame");
    assert.deepEqual(Object.keys(step.data).sort(), [
      "elapsed_ms",
      "eta_ms",
      "frames",
      "sigma",
      "step",
      "total",
    ]);
  }
  const done = events.at(-1)!.data;
  assert.equal(done.video_url, `/v1/generations/${response.headers.get("X-Generation-Id")}/video`);
  assert.equal(done.format, "mp4");
  assert.equal(done.bytes, 1000);
  assert.equal(done.seed, 23);
  assert.equal(typeof done.timings.total_ms, "number");
});

Deno.test("preview=none leaves the frames out of step events", async () => {
  await using service = await testService({ run: fakeRunner() });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), { ...SMALL, preview: "none" }), { Accept: "text/event-stream" }),
  );
  const steps = (await new SseReader(response).rest()).filter((e) => e.event === "step");
  assert.equal(steps.length, 2);
  for (const step of steps) assert.equal(step.data.frames, undefined);
});

Deno.test("an idle event stream sends a comment heartbeat every heartbeat interval", async () => {
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    heartbeatMs: 40,
  });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), SMALL), { Accept: "text/event-stream" }),
  );
  const sse = new SseReader(response);
  assert.equal((await sse.next())?.event, "queued");
  const reading = sse.next(); // nothing comes: the job waits for a worker
  await waitFor(() => sse.comments >= 3, "three heartbeats", 10_000);
  await sse.cancel();
  await reading;
});

Deno.test("GET /events resumes after Last-Event-ID: only later events, no repeats, then the end, then 204", async () => {
  await using service = await testService({ run: fakeRunner() });
  const { id } = await (await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), SMALL)),
  )).json();
  const all = await new SseReader(await service.app.request(`/v1/generations/${id}/events`)).rest();
  assert.equal(all.at(-1)?.event, "done");
  const resumed = await new SseReader(
    await service.app.request(`/v1/generations/${id}/events`, {
      headers: { "Last-Event-ID": all[2].id! },
    }),
  ).rest();
  assert.deepEqual(resumed, all.slice(3));
  const byQuery = await new SseReader(
    await service.app.request(`/v1/generations/${id}/events?last_event_id=${all[4].id}`),
  ).rest();
  assert.deepEqual(byQuery, all.slice(5));
  const afterEnd = await service.app.request(`/v1/generations/${id}/events`, {
    headers: { "Last-Event-ID": all.at(-1)!.id! },
  });
  assert.equal(afterEnd.status, 204, "nothing after the terminal event: 204 stops an EventSource");
  assert.equal(await afterEnd.text(), "");
});

Deno.test("bad input is refused with the right status, a code, the field, and no stack trace", async (t) => {
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    maxUploadBytes: 64 * 1024,
    maxPixels: 16e6,
  });
  const png = await inputPng();
  const request = (body: BodyInit, headers: Record<string, string> = {}) =>
    service.app.request("/v1/generations", post(body, headers));

  await t.step("a body over MAX_UPLOAD_BYTES: 413 body_too_large", async () => {
    const big = new Uint8Array(100 * 1024);
    big.set(png);
    await assertError(await request(upload(big, SMALL)), 413, "body_too_large");
  });
  await t.step("a chunked body over the limit is cut off while it is read: 413", async () => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 10 * 1024 * 1024) return controller.close(); // never reached
        sent += 16 * 1024;
        controller.enqueue(new Uint8Array(16 * 1024));
      },
    });
    const response = await service.app.request("/v1/generations", {
      method: "POST",
      body,
      headers: { "Content-Type": "multipart/form-data; boundary=x" },
      duplex: "half",
    } as RequestInit);
    await assertError(response, 413, "body_too_large");
    assert.ok(sent <= 64 * 1024 + 3 * 16 * 1024, `read ${sent} bytes, stopped near the limit`);
  });
  await t.step("a GIF: 415 unsupported_media_type", async () => {
    const gif = new TextEncoder().encode("GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    const error = await assertError(
      await request(upload(gif, SMALL)),
      415,
      "unsupported_media_type",
      "image",
    );
    assert.match(error.message, /GIF/);
  });
  await t.step("a text file named .png: 415 unsupported_media_type", async () => {
    const text = new TextEncoder().encode("hello, I am not an image\n");
    await assertError(await request(upload(text, SMALL)), 415, "unsupported_media_type", "image");
  });
  await t.step(
    "a PNG header claiming 100000×100000: 413 image_too_large, nothing decoded",
    async () => {
      const bomb = pngFile(100000, 100000, [["IEND", new Uint8Array(0)]]);
      const error = await assertError(
        await request(upload(bomb, SMALL)),
        413,
        "image_too_large",
        "image",
      );
      assert.match(error.message, /100000×100000/);
    },
  );
  await t.step("a field out of range: 422 naming the field and the allowed range", async () => {
    const error = await assertError(
      await request(upload(png, { ...SMALL, steps: "0" })),
      422,
      "invalid_parameter",
      "steps",
    );
    assert.equal(error.allowed, "1..200");
    await assertError(
      await request(upload(png, { width: "100" })),
      422,
      "invalid_parameter",
      "width",
    );
    await assertError(
      await request(upload(png, { cond_aug: "lots" })),
      422,
      "invalid_parameter",
      "cond_aug",
    );
    await assertError(
      await request(upload(png, { min_guidance: "5", max_guidance: "2" })),
      422,
      "invalid_parameter",
      "min_guidance",
    );
    await assertError(
      await request(upload(png, { format: "frames" })),
      422,
      "invalid_parameter",
      "format",
    );
    await assertError(
      await request(upload(png, { format: "gif", crf: "20" })),
      422,
      "invalid_parameter",
      "crf",
    );
    await assertError(
      await request(upload(png, { crf: "52" })),
      422,
      "invalid_parameter",
      "crf",
    );
    // beyond every format's range, the error still says the format's
    const crf99 = await assertError(
      await request(upload(png, { crf: "99" })),
      422,
      "invalid_parameter",
      "crf",
    );
    assert.equal(crf99.allowed, "0..51 for mp4");
    await assertError(
      await request(upload(png, { keep_running: "yes" })),
      422,
      "invalid_parameter",
      "keep_running",
    );
    await assertError(
      await request(upload(png, { model: "svd_xt" })),
      422,
      "invalid_parameter",
      "model",
    );
  });
  await t.step("an unknown field: 422 unknown_field naming it", async () => {
    await assertError(
      await request(upload(png, { num_steps: "3" })),
      422,
      "unknown_field",
      "num_steps",
    );
  });
  await t.step("a field given twice: 422 duplicate_field", async () => {
    const form = upload(png, { steps: "2" });
    form.append("steps", "3");
    await assertError(await request(form), 422, "duplicate_field", "steps");
  });
  await t.step("no image: 422 missing_field; image as text: 422", async () => {
    await assertError(await request(upload(undefined, SMALL)), 422, "missing_field", "image");
    await assertError(await request(upload("abc", SMALL)), 422, "invalid_parameter", "image");
  });
  await t.step("malformed multipart (garbage, or cut short): 400 malformed_request", async () => {
    const multipart = { "Content-Type": "multipart/form-data; boundary=x" };
    await assertError(await request("garbage", multipart), 400, "malformed_request");
    const truncated = '--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"' +
      "\r\n\r\n\x89PNG";
    await assertError(await request(truncated, multipart), 400, "malformed_request");
  });
  await t.step("not multipart at all: 415 unsupported_content_type", async () => {
    await assertError(
      await request(JSON.stringify({ steps: 3 }), { "Content-Type": "application/json" }),
      415,
      "unsupported_content_type",
    );
  });
  await t.step("nothing was queued by any of it, and the service still works", async () => {
    assert.deepEqual(await service.queue.stats(), { queued: 0, running: 0 });
    assert.equal((await request(upload(png, SMALL))).status, 202);
  });
});

Deno.test("with API_TOKEN every route needs the bearer token except /healthz, /readyz, /metrics and the demo page", async () => {
  await using service = await testService({ run: fakeRunner(), apiToken: "s3cret" });
  const png = await inputPng();
  const missing = await service.app.request("/v1/generations", post(upload(png, SMALL)));
  await assertError(missing, 401, "unauthorized");
  assert.match(missing.headers.get("WWW-Authenticate") ?? "", /^Bearer/);
  await assertError(
    await service.app.request(
      "/v1/generations",
      post(upload(png, SMALL), { Authorization: "Bearer wrong" }),
    ),
    401,
    "unauthorized",
  );
  await assertError(await service.app.request("/v1/generations/x"), 401, "unauthorized");
  await assertError(await service.app.request("/openapi.json"), 401, "unauthorized");
  const ok = await service.app.request(
    "/v1/generations",
    post(upload(png, SMALL), { Authorization: "Bearer s3cret" }),
  );
  assert.equal(ok.status, 202);
  await ok.body?.cancel();
  for (const path of ["/healthz", "/readyz", "/metrics", "/", "/demo/demo.js", "/demo/demo.css"]) {
    const response = await service.app.request(path);
    assert.equal(response.status, 200, path);
    await response.body?.cancel();
  }
});

Deno.test("a full queue answers 429 with Retry-After and takes jobs again once there is room", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using service = await testService({
    run: fakeRunner({ gate: () => gate }),
    slots: 1,
    queueSize: 1,
  });
  const png = await inputPng();
  const submit = () => service.app.request("/v1/generations", post(upload(png, SMALL)));
  const first = await (await submit()).json();
  await waitFor(async () => (await service.queue.stats()).running === 1, "the first job running");
  const second = await (await submit()).json();
  const status = await (await service.app.request(second.status_url)).json();
  assert.equal(status.status, "queued");
  assert.equal(status.position, 1);
  const refused = await submit();
  assert.equal(refused.headers.get("Retry-After"), "7");
  await assertError(refused, 429, "queue_full");
  release();
  for (const { status_url } of [first, second]) {
    await waitFor(
      async () => (await (await service.app.request(status_url)).json()).status === "done",
      "done",
    );
  }
  assert.equal((await submit()).status, 202);
});

Deno.test("DELETE cancels a queued job at once (200) and a running one at its next step (202)", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using service = await testService({ run: fakeRunner({ gate: () => gate, stepMs: 50 }) });
  const png = await inputPng();
  const running = await (await service.app.request(
    "/v1/generations",
    post(upload(png, { ...SMALL, steps: "200" })),
  )).json();
  const queued = await (await service.app.request("/v1/generations", post(upload(png, SMALL))))
    .json();
  await waitFor(async () => (await service.queue.stats()).running === 1, "first job running");

  const cancelQueued = await service.app.request(queued.status_url, { method: "DELETE" });
  assert.equal(cancelQueued.status, 200);
  assert.equal((await cancelQueued.json()).status, "cancelled");
  const queuedEvents = await new SseReader(await service.app.request(queued.events_url)).rest();
  assert.deepEqual(queuedEvents.map((e) => e.event), ["queued", "cancelled"]);

  release();
  const sse = new SseReader(await service.app.request(running.events_url));
  await sse.until((e) => e.event === "step");
  const cancelRunning = await service.app.request(running.status_url, { method: "DELETE" });
  assert.equal(cancelRunning.status, 202);
  assert.equal((await cancelRunning.json()).cancel_requested, true);
  const rest = await sse.rest();
  assert.equal(rest.at(-1)?.event, "cancelled");
  assert.ok(rest.filter((e) => e.event === "step").length < 200);
  const status = await (await service.app.request(running.status_url)).json();
  assert.equal(status.status, "cancelled");
  await assertError(
    await service.app.request(running.video_url),
    409,
    "generation_cancelled",
  );
  const again = await service.app.request(running.status_url, { method: "DELETE" });
  assert.equal(again.status, 200, "cancelling a cancelled job is idempotent");
  await again.body?.cancel();
});

Deno.test("an unknown id is 404 not_found on every generation route", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  for (
    const [path, method] of [["", "GET"], ["/events", "GET"], ["/video", "GET"], ["", "DELETE"]]
  ) {
    await assertError(
      await service.app.request(`/v1/generations/nope${path}`, { method }),
      404,
      "not_found",
    );
  }
  await assertError(await service.app.request("/v2/whatever"), 404, "not_found");
});

Deno.test("the video: 404 until done, then the bytes with Range support (206, 416)", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using service = await testService({ run: fakeRunner({ gate: () => gate }) });
  const job = await (await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), { ...SMALL, format: "webm" })),
  )).json();
  await assertError(await service.app.request(job.video_url), 404, "video_not_ready");
  release();
  await new SseReader(await service.app.request(job.events_url)).rest();
  const expected = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);

  const full = await service.app.request(job.video_url);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get("Content-Type"), "video/webm");
  assert.equal(full.headers.get("Accept-Ranges"), "bytes");
  assert.equal(full.headers.get("Content-Length"), "1000");
  assert.deepEqual(new Uint8Array(await full.arrayBuffer()), expected);

  const cases: [string, number, number][] = [
    ["bytes=10-19", 10, 19],
    ["bytes=990-", 990, 999],
    ["bytes=-5", 995, 999],
    ["bytes=900-5000", 900, 999],
  ];
  for (const [range, start, end] of cases) {
    const partial = await service.app.request(job.video_url, { headers: { Range: range } });
    assert.equal(partial.status, 206, range);
    assert.equal(partial.headers.get("Content-Range"), `bytes ${start}-${end}/1000`, range);
    assert.equal(partial.headers.get("Content-Length"), String(end - start + 1), range);
    assert.deepEqual(
      new Uint8Array(await partial.arrayBuffer()),
      expected.slice(start, end + 1),
      range,
    );
  }
  const unsatisfiable = await service.app.request(job.video_url, {
    headers: { Range: "bytes=1000-" },
  });
  assert.equal(unsatisfiable.headers.get("Content-Range"), "bytes */1000");
  await assertError(unsatisfiable, 416, "range_not_satisfiable");
  const multiple = await service.app.request(job.video_url, {
    headers: { Range: "bytes=0-1,5-6" },
  });
  assert.equal(multiple.status, 200, "several ranges: the whole clip");
  await multiple.body?.cancel();
});

Deno.test("a job that fails ends with an error event; its video is 409 generation_failed", async () => {
  await using service = await testService({
    run: fakeRunner({ fail: () => new Error("disk on fire at /secret/path") }),
  });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), SMALL), { Accept: "text/event-stream" }),
  );
  const id = response.headers.get("X-Generation-Id");
  const events = await new SseReader(response).rest();
  const error = events.at(-1)!;
  assert.equal(error.event, "error");
  assert.deepEqual(error.data, {
    code: "internal_error",
    message: "The generation failed unexpectedly",
  });
  const status = await (await service.app.request(`/v1/generations/${id}`)).json();
  assert.equal(status.status, "error");
  assert.equal(status.error.code, "internal_error");
  await assertError(
    await service.app.request(`/v1/generations/${id}/video`),
    409,
    "generation_failed",
  );
  assert.ok(service.logs.some((l) => String(l.error).includes("disk on fire")), "logged");
});

Deno.test("/readyz is 503 until the models are loaded, then 200 with provider and model", async () => {
  let loaded = false;
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    inferenceReady: () => loaded,
  });
  const before = await service.app.request("/readyz");
  assert.equal(before.status, 503);
  assert.equal((await before.json()).status, "loading");
  assert.equal((await service.app.request("/healthz")).status, 200);
  loaded = true;
  const after = await service.app.request("/readyz");
  assert.equal(after.status, 200);
  const body = await after.json();
  assert.deepEqual(
    { status: body.status, provider: body.provider, model: body.model },
    { status: "ready", provider: "cpu", model: "tiny" },
  );
});

Deno.test("/metrics has queue depth, running jobs, outcomes, step and generation histograms, provider", async () => {
  await using service = await testService({ run: fakeRunner() });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), { ...SMALL, steps: "3" }), { Accept: "text/event-stream" }),
  );
  await new SseReader(response).rest();
  await waitFor(async () => (await service.queue.stats()).running === 0, "job completed");
  const metrics = await service.app.request("/metrics");
  assert.match(metrics.headers.get("Content-Type")!, /^text\/plain; version=0\.0\.4/);
  const text = await metrics.text();
  for (
    const line of [
      "svd_queue_depth 0",
      "svd_jobs_running 0",
      'svd_jobs_total{outcome="done"} 1',
      'svd_jobs_total{outcome="error"} 0',
      'svd_jobs_total{outcome="cancelled"} 0',
      'svd_step_seconds_bucket{le="+Inf"} 3',
      "svd_step_seconds_count 3",
      "svd_generation_seconds_count 1",
      'svd_provider_info{provider="cpu",model="tiny"} 1',
      "# TYPE svd_step_seconds histogram",
      "# TYPE svd_jobs_total counter",
    ]
  ) {
    assert.ok(text.split("\n").includes(line), `metrics lack "${line}":\n${text}`);
  }
});

Deno.test("/openapi.json is an OpenAPI 3.1 document listing every path", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const response = await service.app.request("/openapi.json");
  assert.equal(response.status, 200);
  const document = await response.json();
  assert.equal(document.openapi, "3.1.0");
  assert.deepEqual(Object.keys(document.paths).sort(), [
    "/",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/readyz",
    "/v1/generations",
    "/v1/generations/{id}",
    "/v1/generations/{id}/events",
    "/v1/generations/{id}/video",
  ]);
  assert.ok(document.paths["/v1/generations"].post);
  assert.ok(document.paths["/v1/generations/{id}"].delete);
  const fields = document.components.schemas.GenerationUpload.properties;
  const { type, minimum, maximum, default: byDefault } = fields.steps;
  assert.deepEqual({ type, minimum, maximum }, { type: "integer", minimum: 1, maximum: 200 });
  assert.equal(byDefault, 3, "the loaded model's default");
  assert.deepEqual(fields.format.enum, ["mp4", "webm", "gif"]);
  // every $ref resolves
  const refs = JSON.stringify(document).match(/"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
  for (const ref of refs) {
    const name = ref.slice(1, -1).split("/").at(-1)!;
    assert.ok(document.components.schemas[name], `${ref} resolves`);
  }
});

Deno.test("GET / is the demo page; its script and stylesheet are served beside it", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const response = await service.app.request("/");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("Content-Type")!, /^text\/html/);
  const html = await response.text();
  assert.match(html, /<html/i);
  for (
    const [path, type] of [["/demo/demo.js", "text/javascript"], ["/demo/demo.css", "text/css"]]
  ) {
    assert.ok(html.includes(`"${path}"`), `the page links ${path}`);
    const asset = await service.app.request(path);
    assert.equal(asset.status, 200, path);
    assert.match(asset.headers.get("Content-Type")!, new RegExp(`^${type}`));
    assert.ok((await asset.text()).length > 1000);
  }
});

Deno.test("results are deleted after the retention time", async () => {
  await using service = await testService({ run: fakeRunner(), retentionMs: 300 });
  const response = await service.app.request(
    "/v1/generations",
    post(upload(await inputPng(), SMALL), { Accept: "text/event-stream" }),
  );
  const id = response.headers.get("X-Generation-Id");
  await new SseReader(response).rest();
  assert.equal((await service.app.request(`/v1/generations/${id}/video`)).status, 200);
  await waitFor(
    async () => (await service.app.request(`/v1/generations/${id}`)).status === 404,
    "the job to expire",
    10_000,
  );
  await assertError(
    await service.app.request(`/v1/generations/${id}/video`),
    404,
    "not_found",
  );
  assert.equal(service.queue.size, 0);
});

Deno.test("while draining, new generations get 503 shutting_down and /readyz 503", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const { createApp } = await import("../../functions/app.ts");
  const app = createApp({
    queue: service.queue,
    model: service.model,
    metrics: service.metrics,
    provider: "cpu",
    inferenceReady: () => true,
    maxUploadBytes: 1 << 20,
    maxPixels: 16e6,
    imagePool: service.imagePool,
    heartbeatMs: 1000,
    draining: () => true,
  });
  const refused = await app.request("/v1/generations", post(upload(await inputPng(), SMALL)));
  assert.ok(refused.headers.get("Retry-After"));
  await assertError(refused, 503, "shutting_down");
  const ready = await app.request("/readyz");
  assert.equal(ready.status, 503);
  assert.equal((await ready.json()).status, "draining");
});

Deno.test("an upload still arriving when the drain begins gets 503 shutting_down and queues nothing", async () => {
  await using service = await testService({ run: fakeRunner(), startLoop: false });
  const { createApp } = await import("../../functions/app.ts");
  let draining = false;
  const app = createApp({
    queue: service.queue,
    model: service.model,
    metrics: service.metrics,
    provider: "cpu",
    inferenceReady: () => true,
    maxUploadBytes: 1 << 20,
    maxPixels: 16e6,
    imagePool: service.imagePool,
    heartbeatMs: 1000,
    draining: () => draining,
  });
  const form = new Request("http://localhost/", {
    method: "POST",
    body: upload(await inputPng(), SMALL),
  });
  const bytes = new Uint8Array(await form.arrayBuffer());
  // SIGTERM comes after the upload was admitted, while its body is being read.
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      draining = true;
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const response = await app.request("/v1/generations", {
    method: "POST",
    body,
    headers: { "Content-Type": form.headers.get("Content-Type")! },
    duplex: "half",
  } as RequestInit);
  assert.ok(response.headers.get("Retry-After"));
  await assertError(response, 503, "shutting_down");
  assert.deepEqual(await service.queue.stats(), { queued: 0, running: 0 });
});
