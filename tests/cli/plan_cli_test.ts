/**
 * `deno task plan` as a user runs it.
 *
 * Run: deno test --allow-read --allow-run --allow-env tests/cli/plan_cli_test.ts
 */

import assert from "node:assert/strict";
import { runTask } from "../_run_task.ts";

Deno.test("deno task plan prints each decoding_t's peak and the largest that fits each GPU", async () => {
  const { code, stdout, stderr } = await runTask("plan", ["--model", "svd_xt", "--gpu", "l4,h100"]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  assert.match(lines[0], /^svd_xt, fp16, 25 frames at 1024×576: planned peak GPU memory, GiB$/);
  assert.match(
    lines[1],
    /^runtime \d+\.\d\d {2}weights 4\.38 {2}encoders \d+\.\d\d {2}UNet \(CFG batch 50\) \d+\.\d\d$/,
  );
  const rows = lines.filter((l) => /^\s+\d+\s+\d+\.\d\d\s+\d+\.\d\d$/.test(l));
  assert.equal(rows.length, 25);
  const totals = rows.map((r) => Number(r.trim().split(/\s+/)[2]));
  assert.ok(totals.every((t, i) => i === 0 || t > totals[i - 1]), "grows with decoding_t");
  assert.match(stdout, /^h100 \(NVIDIA H100 80GB HBM3, 79\.65 GiB\): largest decoding_t 25$/m);
  assert.match(
    stdout,
    /^l4 \(NVIDIA L4, 22\.49 GiB\): nothing fits \(decoding_t 1 needs \d+\.\d\d GiB\); with the CFG batch split \(--unet-batch split\): largest decoding_t 3$/m,
  );
});

Deno.test("deno task plan --json takes frames and size overrides and the CPU provider", async () => {
  const { code, stdout, stderr } = await runTask("plan", [
    "--model",
    "svd",
    "--provider",
    "cpu",
    "--frames",
    "4",
    "--width",
    "512",
    "--height",
    "256",
    "--gpu",
    "a100-40",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const result = JSON.parse(stdout);
  assert.deepEqual(
    [result.model, result.precision, result.provider, result.frames, result.width, result.height],
    ["svd", "fp32", "cpu", 4, 512, 256],
  );
  assert.equal(result.plans.length, 4);
  assert.equal(result.fits[0].gpu, "a100-40");
});

Deno.test("deno task plan names a bad --gpu, --width or --model and the allowed values", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--model", "svd_xt", "--gpu", "t4"],
      /gpu = "t4" is not known: allowed l4, a100-40, a100-80, h100, h200/,
    ],
    [["--model", "svd_xt", "--width", "1000"], /--width must be a multiple of 64, got 1000/],
    [
      ["--model", "nope"],
      /--model "nope" is neither a model directory, a config file, nor a config/,
    ],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await runTask("plan", args);
    assert.equal(code, 2, stderr);
    assert.match(stderr, message);
  }
});
