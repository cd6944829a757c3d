/**
 * Admission by cost: a resolved request's cost (frames × pixels × steps) and planned peak memory,
 * the CFG split where only that fits, the service's limits and the errors that name them.
 *
 * Run: deno test --allow-read tests/service/job_cost_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { GPUS, planMemory } from "../../pipeline/plan/mod.ts";
import {
  checkJobCost,
  DEFAULT_MAX_JOB_COST,
  jobCost,
  JobLimitError,
  resolveJobLimits,
} from "../../pipeline/service/job_cost.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const GIB = 1024 ** 3;
const svdXt = async () => ({
  config: await loadConfig(`${ROOT}configs/svd_xt.yaml`),
  precision: "fp16" as const,
});
const FULL = { frames: 25, width: 1024, height: 576, steps: 25, decodingT: 3 } as const;

Deno.test("jobCost() is frames × pixels × steps and the plan's peak, RAM on the CPU and GPU memory on CUDA", async () => {
  const model = await svdXt();
  const gpu = jobCost(FULL, model, "cuda");
  assert.equal(gpu.cost, 25 * 1024 * 576 * 25);
  assert.equal(gpu.memoryKind, "GPU memory");
  assert.equal(gpu.unetBatch, "cfg");
  const plan = planMemory({ ...model, provider: "cuda", ...FULL, unetBatch: "cfg" });
  assert.equal(gpu.memoryBytes, plan.totalBytes);
  const cpu = jobCost(FULL, model, "cpu");
  assert.equal(cpu.memoryKind, "RAM");
  assert.equal(cpu.memoryBytes, planMemory({ ...model, provider: "cpu", ...FULL }).totalBytes);
  // WebGPU has no plan of its own: the GPU arena model is the estimate.
  assert.equal(jobCost(FULL, model, "webgpu").memoryBytes, gpu.memoryBytes);
});

Deno.test("jobCost() splits the CFG batch only where the batched UNet is over the memory limit and the split one is not", async () => {
  const model = await svdXt();
  const l4 = resolveJobLimits({ provider: "cuda", gpuBudgetBytes: GPUS.l4.memoryBytes });
  const onL4 = jobCost(FULL, model, "cuda", l4);
  assert.equal(onL4.unetBatch, "split");
  assert.ok(onL4.memoryBytes <= l4.maxMemoryBytes);
  assert.equal(checkJobCost(onL4, l4), undefined, "SVD-XT at full size is admitted on an L4");
  const h100 = resolveJobLimits({ provider: "cuda", gpuBudgetBytes: GPUS.h100.memoryBytes });
  assert.equal(jobCost(FULL, model, "cuda", h100).unetBatch, "cfg");
  // Nothing fits: planned batched (and refused).
  const huge = jobCost({ ...FULL, decodingT: 25 }, model, "cuda", l4);
  assert.equal(huge.unetBatch, "cfg");
});

Deno.test("checkJobCost() refuses a job over MAX_JOB_COST or MAX_JOB_MEMORY_GB, naming the limit and the request's value", async () => {
  const model = await svdXt();
  const limits = resolveJobLimits({ provider: "cuda", gpuBudgetBytes: GPUS.l4.memoryBytes });
  const costly = checkJobCost(jobCost({ ...FULL, steps: 200 }, model, "cuda", limits), limits);
  assert.ok(costly instanceof JobLimitError);
  assert.equal(costly.code, "job_too_large");
  assert.equal(costly.limit, "MAX_JOB_COST");
  assert.equal(costly.value, 25 * 1024 * 576 * 200);
  assert.equal(costly.allowed, DEFAULT_MAX_JOB_COST);
  assert.equal(
    costly.message,
    "This generation costs 25 frames × 1024×576 pixels × 200 steps = 2,949,120,000, over " +
      "MAX_JOB_COST = 737,280,000: ask for fewer frames, steps or pixels",
  );
  // One 2048² frame, one step: cheap, but not small (the 139 s, 6 GB step on a CPU).
  const cpu = resolveJobLimits({ provider: "cpu", maxJobMemoryGb: 4 });
  const big = { frames: 1, width: 2048, height: 2048, steps: 1, decodingT: 1 };
  const memory = checkJobCost(jobCost(big, model, "cpu", cpu), cpu);
  assert.ok(memory instanceof JobLimitError);
  assert.equal(memory.limit, "MAX_JOB_MEMORY_GB");
  assert.equal(memory.allowed, 4);
  assert.ok(memory.value > 4);
  assert.match(
    memory.message,
    /^This generation \(1 frames at 2048×2048, decoding_t 1\) is planned to need \d+\.\d\d GiB of RAM, over MAX_JOB_MEMORY_GB = 4\.00: ask for a smaller decoding_t, fewer frames or fewer pixels$/,
  );
  assert.equal(checkJobCost(jobCost(FULL, model, "cuda", limits), limits), undefined);
});

Deno.test("resolveJobLimits() takes the settings, else the GPU's memory, else the defaults that keep a 24 GB machine alive", () => {
  assert.deepEqual(resolveJobLimits({ provider: "cpu" }), {
    maxCost: DEFAULT_MAX_JOB_COST,
    maxMemoryBytes: 16 * GIB,
    memorySource: "default for the CPU provider (16 GiB of RAM)",
  });
  assert.equal(resolveJobLimits({ provider: "auto" }).maxMemoryBytes, 16 * GIB, "no GPU seen");
  const l4 = resolveJobLimits({ provider: "auto", gpuBudgetBytes: GPUS.l4.memoryBytes });
  assert.equal(l4.maxMemoryBytes, GPUS.l4.memoryBytes);
  assert.equal(l4.memorySource, "the GPU's memory (22.49 GiB)");
  assert.equal(resolveJobLimits({ provider: "cuda" }).maxMemoryBytes, 22 * GIB);
  const set = resolveJobLimits({
    provider: "cuda",
    gpuBudgetBytes: GPUS.h100.memoryBytes,
    maxJobMemoryGb: 40,
    maxJobCost: 1e10,
  });
  assert.deepEqual(set, {
    maxCost: 1e10,
    maxMemoryBytes: 40 * GIB,
    memorySource: "MAX_JOB_MEMORY_GB",
  });
});

Deno.test("jobCost() refuses a shape the model cannot run, naming the field", async () => {
  const model = await svdXt();
  assert.throws(
    () => jobCost({ ...FULL, width: 1000 }, model, "cuda"),
    /width = 1000 is not a positive multiple of 64/,
  );
  assert.throws(
    () => jobCost({ ...FULL, steps: 0 }, model, "cuda"),
    /steps = 0 is not a positive integer/,
  );
});
