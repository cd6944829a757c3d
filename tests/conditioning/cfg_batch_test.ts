import assert from "node:assert/strict";
import { cfgUnetFeeds, splitCfgFeeds } from "../../pipeline/conditioning/cfg_batch.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { assertClose, FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name: "cfgUnetFeeds() stacks [uncond; cond] with zero context and zero concat for uncond",
  permissions: "none",
  fn() {
    // T = 2 frames of a 1-channel 1x1 latent, concat 1 channel; sigma 1: cIn = 1/sqrt(2), cNoise 0
    const x = tensor([2, 1, 1, 1], new Float32Array([Math.SQRT2, 2 * Math.SQRT2]));
    const feeds = cfgUnetFeeds(x, 1, {
      crossattn: tensor([1, 1, 2], new Float32Array([7, 8])),
      concat: tensor([1, 1, 1, 1], new Float32Array([9])),
      vector: tensor([2, 1], new Float32Array([5, 6])),
    });
    assert.deepEqual(feeds.x.dims, [4, 2, 1, 1]);
    const expectedX = [1, 0, 2, 0, 1, 9, 2, 9]; // rows: [c_in x_t | concat], uncond concat = 0
    feeds.x.data.forEach((v, i) => assert.ok(Math.abs(v - expectedX[i]) < 1e-6, `x[${i}] = ${v}`));
    assert.deepEqual(Array.from(feeds.timesteps.data), [0, 0, 0, 0]);
    assert.deepEqual(feeds.context.dims, [4, 1, 2]);
    assert.deepEqual(Array.from(feeds.context.data), [0, 0, 0, 0, 7, 8, 7, 8]);
    assert.deepEqual(Array.from(feeds.y.data), [5, 6, 5, 6]); // the same vector for both halves
    assert.deepEqual(feeds.imageOnlyIndicator.dims, [2, 2]);
    assert.deepEqual(Array.from(feeds.imageOnlyIndicator.data), [0, 0, 0, 0]);
  },
});

Deno.test({
  name: "cfgUnetFeeds() rejects conditioning that does not fit the latent",
  permissions: "none",
  fn() {
    const good = {
      crossattn: tensor([1, 1, 2]),
      concat: tensor([1, 4, 2, 2]),
      vector: tensor([3, 8]),
    };
    const x = tensor([3, 4, 2, 2]);
    assert.doesNotThrow(() => cfgUnetFeeds(x, 1, good));
    assert.throws(() => cfgUnetFeeds(x, 1, { ...good, concat: tensor([2, 4, 2, 2]) }), RangeError);
    assert.throws(() => cfgUnetFeeds(x, 1, { ...good, concat: tensor([1, 4, 2, 3]) }), RangeError);
    assert.throws(() => cfgUnetFeeds(x, 1, { ...good, vector: tensor([2, 8]) }), RangeError);
    assert.throws(() => cfgUnetFeeds(tensor([3, 4, 4]), 1, good), RangeError);
  },
});

Deno.test({
  name: "cfgUnetFeeds() reproduces the UNet feeds of every step of sgm's run",
  permissions: { read: [FIXTURES] },
  async fn() {
    const c = await readFixture("conditioning.safetensors", [
      "c.crossattn",
      "c.concat",
      "c.vector",
    ]);
    const s = await readFixture("sampling.safetensors", [
      "sigmas",
      "unet_context",
      "unet_y",
      "image_only_indicator",
    ]);
    for (let step = 0; step < 3; step++) {
      const p = `step${step}.`;
      const t = await readFixture("sampling.safetensors", [
        `${p}x_in`,
        `${p}unet_x`,
        `${p}unet_timesteps`,
      ]);
      const feeds = cfgUnetFeeds(t[`${p}x_in`], s.sigmas.data[step], {
        crossattn: c["c.crossattn"],
        concat: c["c.concat"],
        vector: c["c.vector"],
      });
      assertClose(feeds.x, t[`${p}unet_x`], 1e-5, `${p}unet_x`);
      assertClose(feeds.timesteps, t[`${p}unet_timesteps`], 1e-6, `${p}unet_timesteps`);
      assertClose(feeds.context, s.unet_context, 0, "unet_context");
      assertClose(feeds.y, s.unet_y, 0, "unet_y");
      assertClose(feeds.imageOnlyIndicator, s.image_only_indicator, 0, "image_only_indicator");
    }
  },
});

Deno.test("splitCfgFeeds() cuts the CFG batch into the unconditional and the conditional video", () => {
  const x = tensor([2, 4, 1, 2], Float32Array.from({ length: 16 }, (_, i) => i));
  const feeds = cfgUnetFeeds(x, 1, {
    crossattn: tensor([1, 1, 3], Float32Array.of(1, 2, 3)),
    concat: tensor([1, 4, 1, 2], Float32Array.from({ length: 8 }, (_, i) => 100 + i)),
    vector: tensor([2, 768], new Float32Array(2 * 768).fill(5)),
  });
  const [uncond, cond] = splitCfgFeeds(feeds);
  for (const [name, video, rows] of [["uncond", uncond, [0, 1]], ["cond", cond, [2, 3]]] as const) {
    assert.deepEqual(video.x.dims, [2, 8, 1, 2], name);
    assert.deepEqual([...video.x.data], [...feeds.x.data.slice(rows[0] * 16, (rows[1] + 1) * 16)]);
    assert.deepEqual([...video.timesteps.data], [
      ...feeds.timesteps.data.slice(rows[0], rows[1] + 1),
    ]);
    assert.deepEqual(video.context.dims, [2, 1, 3]);
    assert.deepEqual(video.y.dims, [2, 768]);
    assert.deepEqual(video.imageOnlyIndicator.dims, [1, 2]);
    assert.deepEqual([...video.imageOnlyIndicator.data], [0, 0]);
  }
  assert.deepEqual([...uncond.context.data], [0, 0, 0, 0, 0, 0], "uncond: zero context");
  assert.deepEqual([...cond.context.data], [1, 2, 3, 1, 2, 3]);
});
