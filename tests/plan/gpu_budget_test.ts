/**
 * Where the GPU memory budget comes from: `nvidia-smi` (faked here), `GPU_MEMORY_GB`, or neither,
 * and the default `decoding_t` the service derives from it.
 *
 * Run: deno test --allow-read tests/plan/gpu_budget_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import {
  type CommandRunner,
  parseMemoryTotal,
  queryGpuMemory,
} from "../../pipeline/plan/gpu_memory.ts";
import { largestDecodingT } from "../../pipeline/plan/mod.ts";
import { serviceDecodingT } from "../../pipeline/plan/service_decoding_t.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const GIB = 1024 ** 3;

const answering = (stdout: string, code = 0, stderr = ""): CommandRunner => () =>
  Promise.resolve({ code, stdout, stderr });

Deno.test("queryGpuMemory() reads memory.total (MiB) and the name of the first GPU nvidia-smi lists", async () => {
  let asked: readonly string[] = [];
  const probe = await queryGpuMemory(0, (command, args) => {
    asked = [command, ...args];
    return answering("23034, NVIDIA L4\n")(command, args);
  });
  assert.deepEqual(probe, { found: true, bytes: 23034 * 1024 ** 2, name: "NVIDIA L4" });
  assert.deepEqual(asked, [
    "nvidia-smi",
    "--query-gpu=memory.total,name",
    "--format=csv,noheader,nounits",
    "--id=0",
  ]);
});

Deno.test("queryGpuMemory() says why it found no GPU instead of throwing", async () => {
  const missing = await queryGpuMemory(
    0,
    () => Promise.reject(new Deno.errors.NotFound("nvidia-smi")),
  );
  assert.deepEqual(missing, { found: false, reason: "nvidia-smi is not installed" });
  const failed = await queryGpuMemory(
    0,
    answering(
      "",
      9,
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
    ),
  );
  assert.deepEqual(failed, {
    found: false,
    reason:
      "nvidia-smi exited with 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
  });
  assert.deepEqual(parseMemoryTotal("[N/A], NVIDIA A100"), {
    found: false,
    reason: 'unexpected nvidia-smi answer "[N/A], NVIDIA A100"',
  });
});

Deno.test("serviceDecodingT() plans from the smaller of nvidia-smi and GPU_MEMORY_GB", async () => {
  const config = await loadConfig(`${ROOT}configs/svd_xt.yaml`);
  const h100 = () =>
    Promise.resolve({
      found: true as const,
      bytes: 81559 * 1024 ** 2,
      name: "NVIDIA H100 80GB HBM3",
    });
  const question = { config, precision: "fp16", provider: "auto", probe: h100 } as const;
  const whole = await serviceDecodingT(question);
  assert.equal(whole.source, "plan");
  assert.equal(whole.budget?.from, "nvidia-smi (NVIDIA H100 80GB HBM3)");
  assert.equal(whole.decodingT, 14); // the model's default: never more than sgm decodes at once
  const slice = await serviceDecodingT({ ...question, gpuMemoryGb: 40 });
  assert.equal(slice.budget?.from, "GPU_MEMORY_GB");
  // 40 GiB: the batched UNet reaches decoding_t 8, split 11: split wins (same video).
  assert.equal(slice.unetBatch, "split");
  const expected = largestDecodingT(
    { config, precision: "fp16", provider: "cuda", unetBatch: "split" },
    40 * GIB,
  ).decodingT;
  assert.equal(slice.decodingT, Math.min(14, expected!));
  assert.ok(slice.decodingT < 14);
});

Deno.test("serviceDecodingT() keeps the model's default on the CPU and without any budget", async () => {
  const config = await loadConfig(`${ROOT}configs/svd_xt.yaml`);
  const noGpu = () =>
    Promise.resolve({ found: false as const, reason: "nvidia-smi is not installed" });
  const cpu = await serviceDecodingT({
    config,
    precision: "fp32",
    provider: "cpu",
    gpuMemoryGb: 1,
    probe: noGpu,
  });
  assert.deepEqual([cpu.decodingT, cpu.source], [14, "config"]);
  const unknown = await serviceDecodingT({
    config,
    precision: "fp16",
    provider: "cuda",
    probe: noGpu,
  });
  assert.deepEqual([unknown.decodingT, unknown.source], [14, "config"]);
  assert.equal(
    unknown.note,
    "nvidia-smi is not installed; no GPU memory known (set GPU_MEMORY_GB)",
  );
});

Deno.test("serviceDecodingT() in an API process uses GPU_MEMORY_GB without probing, and warns when nothing fits", async () => {
  const config = await loadConfig(`${ROOT}configs/svd_xt.yaml`);
  const probe = () => Promise.reject(new Error("an API process must not probe the GPU"));
  const api = await serviceDecodingT({
    config,
    precision: "fp16",
    provider: "cuda",
    gpuMemoryGb: 8,
    probeGpu: false,
    probe,
  });
  assert.deepEqual([api.decodingT, api.fits, api.unetBatch], [1, false, "split"]);
  assert.match(
    api.note!,
    /^even decoding_t = 1 is planned at \d+\.\d\d GiB, over the 8\.00 GiB budget/,
  );
});

Deno.test("serviceDecodingT() on a 24 GB L4 runs SVD-XT with the CFG batch split and decoding_t 3", async () => {
  const config = await loadConfig(`${ROOT}configs/svd_xt.yaml`);
  const l4 = () =>
    Promise.resolve({ found: true as const, bytes: 23034 * 1024 ** 2, name: "NVIDIA L4" });
  const choice = await serviceDecodingT({ config, precision: "fp16", provider: "cuda", probe: l4 });
  assert.deepEqual([choice.unetBatch, choice.decodingT, choice.fits], ["split", 3, true]);
  assert.equal(choice.note, undefined);
});
