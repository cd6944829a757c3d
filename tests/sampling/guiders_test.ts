import assert from "node:assert/strict";
import {
  applyGuidance,
  linearFrameGuidance,
  triangleFrameGuidance,
} from "../../pipeline/sampling/guiders.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { assertClose, FIXTURES, readFixture } from "../_fixtures.ts";

const svd = { minScale: 1, maxScale: 2.5 };

Deno.test({
  name: "linearFrameGuidance() ramps from minScale at frame 0 to maxScale at the last frame",
  permissions: "none",
  fn() {
    assert.deepEqual(Array.from(linearFrameGuidance(4, svd)), [1, 1.5, 2, 2.5]);
    assert.deepEqual(Array.from(linearFrameGuidance(1, svd)), [1]);
    assert.throws(() => linearFrameGuidance(0, svd), RangeError);
  },
});

Deno.test({
  name: "triangleFrameGuidance() peaks mid-clip for period 1",
  permissions: "none",
  fn() {
    // v = [0, .25, .5, .75, 1]; 2|v - floor(v + .5)| = [0, .5, 1, .5, 0]; 1 + 1.5 * wave
    assert.deepEqual(Array.from(triangleFrameGuidance(5, svd)), [1, 1.75, 2.5, 1.75, 1]);
  },
});

Deno.test({
  name: "triangleFrameGuidance() fuses several periods by max, mean or product",
  permissions: "none",
  fn() {
    // period 0.5: v/p = [0, .5, 1, 1.5, 2] -> wave [0, 1, 0, 1, 0]; period 1: [0, .5, 1, .5, 0]
    assert.deepEqual(Array.from(triangleFrameGuidance(5, { ...svd, period: 0.5 })), [
      1,
      2.5,
      1,
      2.5,
      1,
    ]);
    const both = { ...svd, period: [1, 0.5] };
    assert.deepEqual(Array.from(triangleFrameGuidance(5, both)), [1, 2.5, 2.5, 2.5, 1]); // max [0, 1, 1, 1, 0]
    assert.deepEqual(
      Array.from(triangleFrameGuidance(5, { ...both, periodFusing: "mean" })),
      [1, 2.125, 1.75, 2.125, 1], // mean [0, .75, .5, .75, 0]
    );
    assert.deepEqual(
      Array.from(triangleFrameGuidance(5, { ...both, periodFusing: "multiply" })),
      [1, 1.75, 1, 1.75, 1], // product [0, .5, 0, .5, 0]
    );
  },
});

Deno.test({
  name: "applyGuidance() extrapolates from uncond towards cond by each frame's scale",
  permissions: "none",
  fn() {
    // two frames of one value each: uncond [1, 2], cond [3, 6]; scales [1, 2]
    const batch = tensor([4, 1], new Float32Array([1, 2, 3, 6]));
    const guided = applyGuidance(batch, new Float32Array([1, 2]));
    assert.deepEqual(guided.dims, [2, 1]);
    assert.deepEqual(Array.from(guided.data), [3, 2 + 2 * (6 - 2)]);
    // two videos (b = 2): rows [u0 u1 u0' u1' | c0 c1 c0' c1'], frame = row mod T
    const two = applyGuidance(
      tensor([8, 1], new Float32Array([0, 0, 0, 0, 1, 1, 1, 1])),
      new Float32Array([1, 3]),
    );
    assert.deepEqual(Array.from(two.data), [1, 3, 1, 3]);
    assert.throws(() => applyGuidance(tensor([6, 1]), new Float32Array([1, 2])), RangeError);
  },
});

Deno.test({
  name: "linearFrameGuidance() and applyGuidance() reproduce sgm's guided denoised estimates",
  permissions: { read: [FIXTURES] },
  async fn() {
    const { guidance_scale } = await readFixture("sampling.safetensors", ["guidance_scale"]);
    const scale = linearFrameGuidance(4, svd);
    assert.deepEqual(Array.from(scale), Array.from(guidance_scale.data));
    for (let step = 0; step < 3; step++) {
      const p = `step${step}.`;
      const t = await readFixture("sampling.safetensors", [`${p}denoised_batch`, `${p}denoised`]);
      assertClose(
        applyGuidance(t[`${p}denoised_batch`], scale),
        t[`${p}denoised`],
        5e-4,
        `${p}denoised`,
      );
    }
  },
});
