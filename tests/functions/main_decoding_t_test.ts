/**
 * `main.ts` chooses the default `decoding_t` from the memory plan at start: a request without
 * `decoding_t` gets it, one with `decoding_t` keeps its own.
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { planMemory } from "../../pipeline/plan/mod.ts";
import { MainProcess as Service } from "./_main_process.ts";
import { inputPng, SMALL, upload, waitFor } from "./_service.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("main.ts gives requests without decoding_t the plan's choice for GPU_MEMORY_GB", async () => {
  // A budget between the demo model's plans at decoding_t 2 and 3 (its default) gives 2.
  const config = await loadConfig(`${ROOT}configs/tiny.yaml`);
  const plan = (decodingT: number) =>
    planMemory({
      config,
      precision: "fp32",
      provider: "cuda",
      frames: 4,
      width: 128,
      height: 64,
      decodingT,
    })
      .totalBytes;
  const budgetGb = (plan(2) + plan(3)) / 2 / 1024 ** 3;
  // auto: the plan applies (no nvidia-smi here, so GPU_MEMORY_GB is the budget); ORT falls back to the CPU.
  await using service = new Service({ ORT_PROVIDER: "auto", GPU_MEMORY_GB: budgetGb.toFixed(6) });
  const decided = await service.line("decoding_t");
  assert.equal(decided.decodingT, 2);
  assert.equal(decided.source, "plan");
  assert.deepEqual((decided.budget as { from: string }).from, "GPU_MEMORY_GB");
  const url = await service.url();
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, "/readyz 200", 120_000);

  const png = await inputPng();
  const params = async (fields: Record<string, string>) => {
    const response = await fetch(`${url}/v1/generations`, {
      method: "POST",
      body: upload(png, fields),
    });
    assert.equal(response.status, 202);
    const { status_url } = await response.json();
    const status = await waitFor(
      async () => {
        const body = await (await fetch(`${url}${status_url}`)).json();
        return body.status === "done" ? body : undefined;
      },
      "done",
      120_000,
    );
    return status.params;
  };
  assert.equal((await params({ ...SMALL, preview: "none" })).decoding_t, 2);
  assert.equal((await params({ ...SMALL, preview: "none", decoding_t: "4" })).decoding_t, 4);
});
