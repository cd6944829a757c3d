/**
 * `deno task bench gpu` on the CPU with the tiny model: the GPU benchmark's whole path (conversion,
 * load, generations with previews and mp4, memory plan, JSON line) runs without a GPU, so it is
 * ready the day one is at hand. Timings are printed, never asserted.
 *
 * Run: deno test --allow-read --allow-run --allow-env tests/cli/bench_gpu_test.ts
 */

import assert from "node:assert/strict";
import { attentionKernels } from "../bench/gpu.ts";
import { runTask } from "../_run_task.ts";

Deno.test("deno task bench gpu --provider cpu prints one JSON line with every field", async () => {
  const { code, stdout, stderr } = await runTask("bench", [
    "gpu",
    "--provider",
    "cpu",
    "--config",
    "configs/tiny.yaml",
    "--frames",
    "4",
    "--steps",
    "2",
    "--width",
    "128",
    "--height",
    "64",
  ]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 1, stdout);
  const result = JSON.parse(lines[0]);
  assert.equal(result.bench, "gpu");
  assert.equal(result.provider, "cpu");
  assert.deepEqual(
    [result.model, result.frames, result.steps, result.width, result.height, result.decoding_t],
    ["tiny", 4, 2, 128, 64, 3],
  );
  for (
    const field of [
      "model_load_s",
      "unet_ms_per_step",
      "decode_ms",
      "encode_ms",
      "end_to_end_s",
      "first_preview_s",
      "planned_peak_mib",
    ]
  ) assert.ok(typeof result[field] === "number" && result[field] > 0, field);
  assert.ok(result.cold.end_to_end_s > 0);
  assert.equal(result.peak_gpu_mib, null, "no nvidia-smi here");
  assert.equal(result.goal_end_to_end_s, 12);
});

Deno.test("attentionKernels() counts ORT's attention debug lines by op, data type and kernel", () => {
  const log = [
    "\x1B[36mOperator=MultiHeadAttention Node=MultiHeadAttention_88 DataType=fp16 SdpaKernel=FLASH_ATTENTION\x1B[0m",
    "\x1B[36mOperator=MultiHeadAttention Node=MultiHeadAttention_90 DataType=fp16 SdpaKernel=FLASH_ATTENTION\x1B[0m",
    "\x1B[36mOperator=MultiHeadAttention Node=MultiHeadAttention_5 DataType=fp32 SdpaKernel=EFFICIENT_ATTENTION\x1B[0m",
    "RESULT {}",
  ].join("\n");
  assert.deepEqual(attentionKernels(log), {
    "MultiHeadAttention fp16 FLASH_ATTENTION": 2,
    "MultiHeadAttention fp32 EFFICIENT_ATTENTION": 1,
  });
});
