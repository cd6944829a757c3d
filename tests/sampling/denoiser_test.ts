import assert from "node:assert/strict";
import { denoiserOutput } from "../../pipeline/sampling/denoiser.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { assertClose, FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name: "denoiserOutput() adds cOut * F to cSkip * x, pairing every batch copy with x",
  permissions: "none",
  fn() {
    // sigma 1: cSkip = 1/2, cOut = -1/sqrt(2). x = [2, 4]; F = [0, 0 | sqrt(2), 0]
    const x = tensor([2, 1], new Float32Array([2, 4]));
    const f = tensor([4, 1], new Float32Array([0, 0, Math.SQRT2, 0]));
    const d = denoiserOutput(f, x, 1);
    assert.deepEqual(d.dims, [4, 1]);
    const expected = [1, 2, 0, 2]; // row 2: -sqrt(2)/sqrt(2) + 2/2, exact up to float32 rounding
    d.data.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-6, `row ${i}: ${v}`));
  },
});

Deno.test({
  name: "denoiserOutput() rejects an output that is not a stack of the input",
  permissions: "none",
  fn() {
    assert.throws(() => denoiserOutput(tensor([3, 2]), tensor([2, 2]), 1), RangeError);
    assert.throws(() => denoiserOutput(tensor([4, 3]), tensor([2, 2]), 1), RangeError);
  },
});

Deno.test({
  name: "denoiserOutput() turns sgm's stored UNet outputs into its denoised batches",
  permissions: { read: [FIXTURES] },
  async fn() {
    for (let step = 0; step < 3; step++) {
      const p = `step${step}.`;
      const t = await readFixture("sampling.safetensors", [
        `${p}unet_out`,
        `${p}x_in`,
        `${p}sigma`,
        `${p}denoised_batch`,
      ]);
      const d = denoiserOutput(t[`${p}unet_out`], t[`${p}x_in`], t[`${p}sigma`].data[0]);
      assertClose(d, t[`${p}denoised_batch`], 5e-4, `${p}denoised_batch`);
    }
  },
});
