/**
 * `main.ts` as it is deployed: a subprocess on a free port with the demo model. It logs JSON lines
 * for start and ready, serves a generation, and on SIGTERM refuses new work with 503, lets the
 * running job finish (or cancels it at the drain deadline) and exits 0 in time. Bad environment
 * values stop it at once with one clear line.
 */

import assert from "node:assert/strict";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, upload, waitFor } from "./_service.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-ffi",
  "--allow-env",
  "--allow-net",
  "--allow-run",
];

/** `main.ts` running in a subprocess, its stdout parsed as JSON lines. */
class Service implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(env: Record<string, string>) {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, "main.ts"],
      cwd: ROOT,
      env: { PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1", ...env },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.process = process;
    this.#reading = (async () => {
      for await (const line of textLines(process.stdout)) {
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ raw: line });
        }
      }
    })();
    this.#stderr = new Response(process.stderr).text();
  }

  /** The first log line with `event`, waiting for it. */
  line(event: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    return waitFor(
      () => this.lines.find((l) => l.event === event),
      `log line "${event}"`,
      timeoutMs,
    );
  }

  async url(): Promise<string> {
    return `http://127.0.0.1:${(await this.line("start")).port}`;
  }

  /** Exit status and stderr, once the process has ended. */
  async ended(): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    const status = await this.process.status;
    await this.#reading;
    return { status, stderr: await this.#stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already ended
    }
    await this.ended();
  }
}

/** The lines of a byte stream, as they arrive. */
async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}

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
  const { status, stderr } = await service.ended();
  assert.equal(status.code, 0, stderr);
  const elapsed = performance.now() - signalled;
  assert.ok(elapsed < 3000 + 1500, `exited ${Math.round(elapsed)} ms after SIGTERM`);
});

Deno.test("main.ts refuses a bad environment with one line naming the variable and what is allowed", async () => {
  await using service = new Service({ SLOTS: "0", ORT_PROVIDER: "tpu" });
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
});
