/**
 * Admission by cost at the door: a submission's cost (frames × pixels × steps) and planned memory
 * are checked at the size it will be generated at — after the size policy, so for every policy —
 * before anything is queued; over a limit it is 422 `job_too_large` naming the limit and the
 * request's value. (Before: `size=native` made a 275 KB 4000×4000 PNG a 3968×3968 generation that
 * froze and then killed the process.)
 */

import assert from "node:assert/strict";
import { encodePng } from "../../pipeline/image/png_encode.ts";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { checkJobCost, jobCost, resolveJobLimits } from "../../pipeline/service/job_cost.ts";
import type { JobAdmission } from "../../functions/job_admission.ts";
import { MainProcess } from "./_main_process.ts";
import { fakeRunner, testService, upload } from "./_service.ts";

/** A 4000×4000 grey PNG: 16 Mpx in a few tens of kilobytes. */
function bigPng(): Uint8Array {
  const rgb = new Uint8Array(4000 * 4000 * 3).fill(128);
  return encodePng(rgb, 4000, 4000);
}

/** The tiny demo model's admission against `limits`, on the CPU's plan, as `main.ts` wires it. */
async function admission(maxJobCost: number, maxJobMemoryGb?: number): Promise<JobAdmission> {
  const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
  const limits = resolveJobLimits({ maxJobCost, maxJobMemoryGb, provider: "cpu" });
  const model = { config: manifest.config, precision: manifest.precision };
  return (shape) => {
    const error = checkJobCost(jobCost(shape, model, "cpu", limits), limits);
    if (error) throw error;
  };
}

Deno.test("the cost is checked at the size each size policy makes of the image, before queueing", async () => {
  const png = bigPng();
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    // between contain's 576×576 (663,552 for 2 frames, 1 step) and the 1024×576 target's 1,179,648
    admitJob: await admission(700_000),
  });
  const submit = (size: string) =>
    service.app.request("/v1/generations", {
      method: "POST",
      body: upload(png, { size, width: "1024", height: "576", num_frames: "2", steps: "1" }),
    });
  const verdicts: Record<string, unknown> = {};
  for (const size of ["cover", "stretch", "contain", "native"]) {
    const response = await submit(size);
    const body = await response.json();
    verdicts[size] = response.status === 202 ? 202 : `${response.status} ${body.error.code}`;
    if (response.status === 422) {
      assert.match(body.error.message, /MAX_JOB_COST = 700,000/);
      assert.equal(body.error.allowed, "MAX_JOB_COST = 700000");
    }
    if (size === "native") {
      // 4000² is generated at 2048² (the side limit): 2 × 2048 × 2048 × 1 = 8,388,608
      assert.match(body.error.message, /2 frames × 2048×2048 pixels × 1 steps = 8,388,608/);
    }
  }
  assert.deepEqual(verdicts, {
    cover: "422 job_too_large",
    stretch: "422 job_too_large",
    contain: 202,
    native: "422 job_too_large",
  });
  assert.equal((await service.queue.stats()).queued, 1, "only the admitted one was queued");
});

Deno.test("a job over the planned memory limit is 422 job_too_large naming MAX_JOB_MEMORY_GB", async () => {
  await using service = await testService({
    run: fakeRunner(),
    startLoop: false,
    admitJob: await admission(1e15, 0.1),
  });
  const response = await service.app.request("/v1/generations", {
    method: "POST",
    body: upload(bigPng(), { size: "native", num_frames: "14", steps: "1" }),
  });
  assert.equal(response.status, 422);
  const { error } = await response.json();
  assert.equal(error.code, "job_too_large");
  assert.match(error.message, /planned to need [\d.]+ GiB of RAM, over MAX_JOB_MEMORY_GB = 0\.10/);
  assert.equal(error.allowed, "MAX_JOB_MEMORY_GB = 0.1");
});

Deno.test({
  name: "main.ts refuses a size=native upload over MAX_JOB_COST with 422 before queueing it",
  permissions: { net: ["127.0.0.1"], read: true, write: true, env: true, run: true, ffi: true },
  async fn() {
    await using service = new MainProcess({ MAX_JOB_COST: "1000000" });
    const url = await service.url();
    const response = await fetch(`${url}/v1/generations`, {
      method: "POST",
      body: upload(bigPng(), { size: "native", num_frames: "4", steps: "2" }),
    });
    const body = await response.json();
    assert.equal(response.status, 422, JSON.stringify(body));
    assert.equal(body.error.code, "job_too_large");
    assert.match(body.error.message, /4 frames × 2048×2048 pixels × 2 steps = 33,554,432/);
    assert.match(body.error.message, /MAX_JOB_COST = 1,000,000/);
    const stats = await (await fetch(`${url}/metrics`)).text();
    assert.match(stats, /^svd_queue_depth 0$/m);
  },
});
