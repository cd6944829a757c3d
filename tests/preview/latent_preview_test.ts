import assert from "node:assert/strict";
import { latentToRgb } from "../../pipeline/preview/latent_preview.ts";
import { tensor } from "../../pipeline/tensor.ts";

Deno.test({
  name: "latentToRgb() maps a unit latent channel to its factor row, (v + 1) / 2 * 255 rounded",
  permissions: "none",
  fn() {
    // latent (1, 0, 0, 0) -> (0.3512, 0.2297, 0.3227) -> 1.3512 * 127.5 = 172.28, 156.79, 168.64
    const [frame] = latentToRgb(tensor([1, 4, 1, 1], new Float32Array([1, 0, 0, 0])));
    assert.deepEqual(Array.from(frame), [172, 157, 169]);
    // zero latent -> mid grey: 127.5 rounds to 128
    assert.deepEqual(Array.from(latentToRgb(tensor([1, 4, 1, 1]))[0]), [128, 128, 128]);
  },
});

Deno.test({
  name: "latentToRgb() clamps to [-1, 1] and lays each frame out as [h, w, 3]",
  permissions: "none",
  fn() {
    // frame 0: pixel 0 = 10 * channel 3 -> (-2.12, -2.616, -7.177) clamps to 0;
    //          pixel 1 = 10 * channel 1 -> (3.25, 4.974, 2.35) clamps to 255
    // frame 1: all zero
    const x = new Float32Array(2 * 4 * 2);
    x[3 * 2 + 0] = 10;
    x[1 * 2 + 1] = 10;
    const frames = latentToRgb(tensor([2, 4, 1, 2], x));
    assert.equal(frames.length, 2);
    assert.deepEqual(Array.from(frames[0]), [0, 0, 0, 255, 255, 255]);
    assert.deepEqual(Array.from(frames[1]), [128, 128, 128, 128, 128, 128]);
    assert.throws(() => latentToRgb(tensor([1, 3, 1, 1])), RangeError);
  },
});
