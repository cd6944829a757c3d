/**
 * A crash of inference is a crash of one job: the service on the demo model behind a real
 * `Deno.serve`, its inference process killed by SIGKILL (what the kernel's OOM killer sends) and
 * made to segfault in native code in the middle of jobs. Each such job ends with an `error` event,
 * `/healthz` answers throughout, and the next job runs on a fresh process.
 */

import assert from "node:assert/strict";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, testService, upload } from "./_service.ts";

Deno.test("a SIGKILLed or segfaulting inference process fails only its job; /healthz answers throughout; the next job gets a fresh process", async () => {
  await using service = await testService();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const health: { status: number; ms: number }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const started = performance.now();
      const status = await fetch(`${url}/healthz`).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      }, () => 0);
      health.push({ status, ms: performance.now() - started });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    const png = await inputPng();
    const pids: number[] = [];
    const kills: [string, (pid: number) => void][] = [
      ["SIGKILL", (pid) => Deno.kill(pid, "SIGKILL")],
      ["segfault", () => service.engine!.current!.crashForTesting("test segfault", "segfault")],
    ];
    for (const [how, kill] of kills) {
      const response = await fetch(`${url}/v1/generations`, {
        method: "POST",
        body: upload(png, { ...SMALL, steps: "200", preview: "none" }),
        headers: { Accept: "text/event-stream" },
      });
      const sse = new SseReader(response);
      await sse.until((e) => e.event === "step");
      const pid = service.engine!.current!.pid;
      pids.push(pid);
      kill(pid);
      const last = (await sse.rest()).at(-1)!;
      assert.equal(last.event, "error", `${how}: ${JSON.stringify(last)}`);
      assert.equal(last.data.code, "inference_worker_crashed", how);
      const failed = service.logs.find((l) =>
        l.event === "job_failed" && l.message.includes(String(pid))
      );
      assert.ok(failed, `${how}: the job_failed line names the process`);
    }

    const next = await fetch(`${url}/v1/generations`, {
      method: "POST",
      body: upload(png, SMALL),
      headers: { Accept: "text/event-stream" },
    });
    const events = await new SseReader(next).rest();
    assert.equal(events.at(-1)?.event, "done", JSON.stringify(events.at(-1)));
    const pid = service.engine!.current!.pid;
    assert.ok(!pids.includes(pid), `a fresh process (${pid}, not ${pids})`);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^svd_jobs_total\{outcome="error"\} 2$/m);
    assert.match(metrics, /^svd_jobs_total\{outcome="done"\} 1$/m);
  } finally {
    polling = false;
    await poller;
    await server.shutdown();
  }
  assert.ok(health.length > 10, `${health.length} /healthz probes`);
  assert.deepEqual(health.filter((h) => h.status !== 200), [], "every /healthz answered 200");
  const worst = Math.max(...health.map((h) => h.ms));
  console.log(`${health.length} /healthz probes, all 200, worst ${worst.toFixed(0)} ms`);
});
