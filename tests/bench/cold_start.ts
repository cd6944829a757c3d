/**
 * Cold start of the service on the tiny demo model, split as a deployment sees it: process start
 * until the port listens (the container's part), model load until `/readyz` answers 200, and the
 * first request (a 3-step generation, POST to `done`).
 *
 * Usage: deno task bench cold-start
 *
 * @module
 */

const ROOT = new URL("../..", import.meta.url).pathname;
const IMAGE = new URL("../fixtures/tiny/input.png", import.meta.url).pathname;

/** Runs the benchmark. */
export async function coldStart(): Promise<void> {
  const spawned = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "start"],
    cwd: ROOT,
    env: { PORT: "0", HOST: "127.0.0.1", ORT_PROVIDER: "cpu" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const times: Record<string, number> = {};
  let port = 0;
  while (!times.ready) {
    const { value, done } = await lines.read();
    if (done) throw new Error("the service exited before it was ready");
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      const event = JSON.parse(line);
      times[event.event] ??= performance.now();
      if (event.event === "start") port = event.port;
    }
  }
  const base = `http://127.0.0.1:${port}`;
  while ((await fetch(`${base}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const ready = performance.now();
  const form = new FormData();
  form.append("image", new Blob([await Deno.readFile(IMAGE)], { type: "image/png" }), "input.png");
  form.append("steps", "3");
  const posted = performance.now();
  const response = await fetch(`${base}/v1/generations`, {
    method: "POST",
    body: form,
    headers: { accept: "text/event-stream" },
  });
  const text = await response.text();
  const firstRequest = performance.now() - posted;
  if (!/event: done/.test(text)) throw new Error(`no done event:\n${text.slice(0, 500)}`);
  child.kill("SIGTERM");
  await child.status;
  lines.releaseLock();
  console.log(`cold start on the tiny demo model (deno task start, ORT_PROVIDER=cpu):`);
  console.log(`  process start → listening: ${(times.start - spawned).toFixed(0)} ms`);
  console.log(`  model load → /readyz 200:  ${(ready - times.start).toFixed(0)} ms`);
  console.log(
    `  first request (3 steps, 4 frames 128×64, POST → done): ${firstRequest.toFixed(0)} ms`,
  );
}
