import assert from "node:assert/strict";
import fc from "fast-check";
import { edmSigmas } from "../../pipeline/sampling/discretization.ts";
import { FIXTURES, readFixture } from "../_fixtures.ts";

Deno.test({
  name: "edmSigmas() ends with an appended zero",
  permissions: "none",
  fn() {
    const sigmas = edmSigmas(25);
    assert.deepEqual(sigmas.length, 26);
    assert.deepEqual(sigmas[25], 0);
  },
});

Deno.test({
  name: "edmSigmas() starts at sigmaMax and descends to sigmaMin",
  permissions: "none",
  fn() {
    const sigmas = edmSigmas(25);
    // float32 rounding of (700^(1/7))^7 lands 2 ulp above 700 (ulp = 6.1e-5 there)
    assert(Math.abs(sigmas[0] - 700) <= 2e-4, `first sigma ${sigmas[0]}`);
    assert(Math.abs(sigmas[24] - 0.002) <= 1e-8, `last non-zero sigma ${sigmas[24]}`);
    for (let i = 1; i < sigmas.length; i++) {
      assert(sigmas[i] < sigmas[i - 1], `sigmas[${i}] does not descend`);
    }
  },
});

Deno.test({
  name: "edmSigmas() with rho 1 interpolates linearly between the ends",
  permissions: "none",
  fn() {
    // (3 + [0, 0.5, 1] * (1 - 3))^1 = [3, 2, 1], then the appended 0
    assert.deepEqual(Array.from(edmSigmas(3, { sigmaMin: 1, sigmaMax: 3, rho: 1 })), [3, 2, 1, 0]);
  },
});

Deno.test({
  name: "edmSigmas() matches the 25-step schedule of SVD_REFERENCE §5.6",
  permissions: "none",
  fn() {
    const sigmas = edmSigmas(25);
    const expected = [700.0, 545.73, 421.57, 322.45, 244.02];
    expected.forEach((s, i) =>
      assert(Math.abs(sigmas[i] - s) < 0.01, `sigma ${i}: ${sigmas[i]} vs ${s}`)
    );
    const tail = [0.0248, 0.00788, 0.002, 0]; // the document rounds to 3 significant digits
    tail.forEach((s, i) => {
      const got = sigmas[22 + i];
      assert(Math.abs(got - s) <= 5e-4 * s, `sigma ${22 + i}: ${got} vs ${s}`);
    });
  },
});

Deno.test({
  name: "edmSigmas() rejects a non-positive step count",
  permissions: "none",
  fn() {
    for (const steps of [0, -1, 2.5, NaN]) {
      assert.throws(() => edmSigmas(steps), RangeError, `steps ${steps} was accepted`);
    }
  },
});

Deno.test({
  name: "edmSigmas() strictly decreases and ends in 0 for any step count 2..60",
  permissions: "none",
  fn() {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 60 }), (steps) => {
        const sigmas = edmSigmas(steps);
        if (sigmas.length !== steps + 1 || sigmas[steps] !== 0) return false;
        for (let i = 1; i <= steps; i++) if (!(sigmas[i] < sigmas[i - 1])) return false;
        return true;
      }),
    );
  },
});

Deno.test({
  name: "edmSigmas(3) equals sgm's float32 sigmas bit for bit",
  permissions: { read: [FIXTURES] },
  async fn() {
    const { sigmas } = await readFixture("sampling.safetensors", ["sigmas"]);
    assert.deepEqual(Array.from(edmSigmas(3)), Array.from(sigmas.data)); // [700.00012, 15.589973, 0.0020000036, 0]
  },
});
