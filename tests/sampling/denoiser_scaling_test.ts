import assert from "node:assert/strict";
import { vScalingEdmCNoise } from "../../pipeline/sampling/denoiser_scaling.ts";
import { FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name:
    "vScalingEdmCNoise() at sigma 1 splits the input evenly: cSkip 1/2, cOut = -cIn = -1/sqrt(2)",
  permissions: "none",
  fn() {
    const { cSkip, cOut, cIn, cNoise } = vScalingEdmCNoise(1);
    assert.equal(cSkip, 0.5);
    assert.equal(cOut, Math.fround(-Math.SQRT1_2));
    assert.equal(cIn, Math.fround(Math.SQRT1_2));
    assert.equal(cNoise, 0); // ln 1 / 4
    // v-prediction scalings keep unit variance: cSkip + cOut^2 = 1/(s^2+1) + s^2/(s^2+1) = 1
    assert.ok(Math.abs(cSkip + cOut * cOut - 1) < 1e-7);
  },
});

Deno.test({
  name: "vScalingEdmCNoise() keeps cSkip + cOut^2 = 1 and cOut = -sigma * cIn at every noise level",
  permissions: "none",
  fn() {
    for (const sigma of [0.002, 0.1, 3, 15.589973, 700.0001]) {
      const { cSkip, cOut, cIn, cNoise } = vScalingEdmCNoise(sigma);
      assert.ok(Math.abs(cSkip + cOut * cOut - 1) < 1e-6, `sigma ${sigma}`);
      assert.ok(Math.abs(cOut + sigma * cIn) <= 1e-6 * Math.max(1, sigma * cIn), `sigma ${sigma}`);
      assert.ok(Math.abs(cNoise - Math.log(sigma) / 4) < 1e-6, `sigma ${sigma}`);
    }
    assert.equal(vScalingEdmCNoise(Math.exp(4)).cNoise, 1);
  },
});

Deno.test({
  name: "vScalingEdmCNoise() rejects a zero, negative or non-finite sigma",
  permissions: "none",
  fn() {
    for (const sigma of [0, -1, NaN, Infinity]) {
      assert.throws(() => vScalingEdmCNoise(sigma), RangeError);
    }
  },
});

Deno.test({
  name: "vScalingEdmCNoise() cNoise equals the UNet timesteps sgm fed at every step",
  permissions: { read: [FIXTURES] },
  async fn() {
    for (let step = 0; step < 3; step++) {
      const t = await readFixture("sampling.safetensors", [
        `step${step}.sigma`,
        `step${step}.unet_timesteps`,
      ]);
      const { cNoise } = vScalingEdmCNoise(t[`step${step}.sigma`].data[0]);
      for (const v of t[`step${step}.unet_timesteps`].data) {
        assert.ok(Math.abs(v - cNoise) <= 1e-6, `step ${step}: ${v} vs ${cNoise}`);
      }
    }
  },
});
