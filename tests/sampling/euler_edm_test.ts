import assert from "node:assert/strict";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { cfgUnetFeeds } from "../../pipeline/conditioning/cfg_batch.ts";
import { denoiserOutput } from "../../pipeline/sampling/denoiser.ts";
import {
  type EulerEdmStep,
  initialLatent,
  sampleEulerEdm,
} from "../../pipeline/sampling/euler_edm.ts";
import { applyGuidance, linearFrameGuidance } from "../../pipeline/sampling/guiders.ts";
import { type Tensor, tensor } from "../../pipeline/tensor.ts";
import { assertClose, FIXTURES, readFixture } from "../_fixtures.ts";

const zeros = (x: Tensor) => tensor(x.dims);
const constant = (value: number) => (x: Tensor) =>
  tensor(x.dims, new Float32Array(x.data.length).fill(value));

/** The fixture README's step tolerance: |diff| <= 1e-3 + 1e-5 * |ref| everywhere. */
function assertStepClose(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual(actual.dims, expected.dims, what);
  actual.data.forEach((v, i) => {
    const ref = expected.data[i];
    if (!(Math.abs(v - ref) <= 1e-3 + 1e-5 * Math.abs(ref))) {
      assert.fail(`${what}[${i}]: ${v} vs ${ref}`);
    }
  });
}

Deno.test({
  name: "sampleEulerEdm() with a zero denoiser scales x by each sigma ratio",
  permissions: "none",
  async fn() {
    // D = 0: x + (s' - s) * x / s = x * s'/s, so 8 -> 8 * 2/4 = 4 -> 4 * 1/2 = 2
    const seen: number[] = [];
    const out = await sampleEulerEdm(zeros, tensor([2], new Float32Array([8, -1])), [4, 2, 1], {
      onStep: (p) => seen.push(p.x.data[0]),
    });
    assert.deepEqual(seen, [4, 2]);
    assert.deepEqual(Array.from(out.data), [2, -0.25]);
  },
});

Deno.test({
  name: "sampleEulerEdm() lands on the denoised estimate when the last sigma is 0",
  permissions: "none",
  async fn() {
    const out = await sampleEulerEdm(constant(5), tensor([1], new Float32Array([123])), [3, 0]);
    assert.deepEqual(Array.from(out.data), [5]);
  },
});

Deno.test({
  name: "sampleEulerEdm() reports every step and passes sigma and step index to denoise",
  permissions: "none",
  async fn() {
    const calls: [number, number][] = [];
    const steps: EulerEdmStep[] = [];
    const x = tensor([1], new Float32Array([1]));
    await sampleEulerEdm(
      (v, sigma, step) => {
        calls.push([sigma, step]);
        return zeros(v);
      },
      x,
      [4, 2, 0],
      { onStep: (p) => steps.push(p) },
    );
    assert.deepEqual(calls, [[4, 0], [2, 1]]);
    assert.deepEqual(steps.map((s) => [s.step, s.total, s.sigma, s.nextSigma]), [[0, 2, 4, 2], [
      1,
      2,
      2,
      0,
    ]]);
    assert.ok(steps.every((s) => s.elapsedMs >= 0 && s.denoised.data[0] === 0));
    assert.equal(x.data[0], 1, "the input tensor is not modified");
  },
});

Deno.test({
  name: "sampleEulerEdm() stops before step 3 when aborted during step 2",
  permissions: "none",
  async fn() {
    const controller = new AbortController();
    const reason = new Error("client went away");
    let onStepCalls = 0;
    let denoiseCalls = 0;
    const error = await sampleEulerEdm(
      (x) => {
        denoiseCalls++;
        return zeros(x);
      },
      tensor([1], new Float32Array([1])),
      [5, 4, 3, 2, 0],
      {
        signal: controller.signal,
        onStep: ({ step }) => {
          onStepCalls++;
          if (step === 1) controller.abort(reason);
        },
      },
    ).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof GenerationCancelledError, `got ${error}`);
    assert.equal(error.cause, reason);
    assert.match(error.message, /before step 3 of 4/);
    assert.equal(onStepCalls, 2);
    assert.equal(denoiseCalls, 2);
  },
});

Deno.test({
  name: "sampleEulerEdm() does not call denoise when the signal is already aborted",
  permissions: "none",
  async fn() {
    let denoiseCalls = 0;
    const signal = AbortSignal.abort();
    await assert.rejects(
      sampleEulerEdm((x) => (denoiseCalls++, zeros(x)), tensor([1]), [2, 0], { signal }),
      GenerationCancelledError,
    );
    assert.equal(denoiseCalls, 0);
  },
});

Deno.test({
  name: "sampleEulerEdm() with churn raises the noise to sigma * (1 + gamma) first",
  permissions: "none",
  async fn() {
    // sChurn 0.5 over 1 step: gamma = min(0.5, sqrt(2) - 1) = sqrt(2) - 1, sigma_hat = sqrt(2).
    // x = 0 + eps * sqrt(sigma_hat^2 - 1^2) = 1 (eps = 1); then D = 0: x * 0.5 / sqrt(2).
    let denoisedAt = 0;
    const out = await sampleEulerEdm(
      (x, sigma) => {
        denoisedAt = sigma;
        return zeros(x);
      },
      tensor([1]),
      [1, 0.5],
      { sChurn: 0.5, noise: (dims) => tensor(dims, new Float32Array([1])) },
    );
    assert.ok(Math.abs(denoisedAt - Math.SQRT2) < 1e-6, `denoised at ${denoisedAt}`);
    assert.ok(Math.abs(out.data[0] - 0.5 / Math.SQRT2) < 1e-6, `x ${out.data[0]}`);
  },
});

Deno.test({
  name: "sampleEulerEdm() churns only inside [sTmin, sTmax] and needs a noise source to churn",
  permissions: "none",
  async fn() {
    const out = await sampleEulerEdm(zeros, tensor([1], new Float32Array([4])), [4, 2], {
      sChurn: 1,
      sTmax: 3,
    });
    assert.deepEqual(Array.from(out.data), [2]); // sigma 4 > sTmax: plain Euler step
    await assert.rejects(sampleEulerEdm(zeros, tensor([1]), [4, 2], { sChurn: 1 }), TypeError);
  },
});

Deno.test({
  name: "sampleEulerEdm() rejects fewer than 2 sigmas and a denoiser of the wrong size",
  permissions: "none",
  async fn() {
    await assert.rejects(sampleEulerEdm(zeros, tensor([1]), [1]), RangeError);
    await assert.rejects(sampleEulerEdm(() => tensor([2]), tensor([1]), [1, 0]), RangeError);
  },
});

Deno.test({
  name: "initialLatent() scales sgm's noise to its x_init",
  permissions: { read: [FIXTURES] },
  async fn() {
    const t = await readFixture("sampling.safetensors", ["noise", "x_init", "sigmas"]);
    // values reach ~2000 (noise * 700), where a float32 ulp is 1.2e-4: 1e-3 allows a few ulp
    assertClose(initialLatent(t.noise, t.sigmas.data[0]), t.x_init, 1e-3, "x_init");
  },
});

Deno.test({
  name: "sampleEulerEdm() reproduces each of sgm's Euler steps from its stored denoised estimate",
  permissions: { read: [FIXTURES] },
  async fn() {
    const { sigmas } = await readFixture("sampling.safetensors", ["sigmas"]);
    for (let step = 0; step < 3; step++) {
      const p = `step${step}.`;
      const t = await readFixture("sampling.safetensors", [
        `${p}x_in`,
        `${p}denoised`,
        `${p}x_out`,
      ]);
      const out = await sampleEulerEdm(() => t[`${p}denoised`], t[`${p}x_in`], [
        sigmas.data[step],
        sigmas.data[step + 1],
      ]);
      assertStepClose(out, t[`${p}x_out`], `${p}x_out`);
    }
  },
});

Deno.test({
  name: "sampleEulerEdm() fed sgm's denoised estimates reproduces its final latent",
  permissions: { read: [FIXTURES] },
  async fn() {
    const names = [
      "x_init",
      "sigmas",
      "final_latent",
      ...[0, 1, 2].flatMap((s) => [`step${s}.denoised`, `step${s}.x_in`]),
    ];
    const t = await readFixture("sampling.safetensors", names);
    const final = await sampleEulerEdm(
      (x, _sigma, step) => {
        assertStepClose(x, t[`step${step}.x_in`], `step${step}.x_in`);
        return t[`step${step}.denoised`];
      },
      t.x_init,
      t.sigmas.data,
    );
    assertClose(final, t.final_latent, 2e-3, "final_latent");
  },
});

Deno.test({
  name:
    "cfgUnetFeeds, denoiserOutput and applyGuidance around the stored UNet outputs reproduce sgm's run",
  permissions: { read: [FIXTURES] },
  async fn() {
    const steps = [0, 1, 2].flatMap((s) => [`step${s}.unet_out`, `step${s}.unet_x`]);
    const t = await readFixture("sampling.safetensors", ["noise", "final_latent", ...steps]);
    const c = await readFixture("conditioning.safetensors", [
      "c.crossattn",
      "c.concat",
      "c.vector",
    ]);
    const conditioning = {
      crossattn: c["c.crossattn"],
      concat: c["c.concat"],
      vector: c["c.vector"],
    };
    const scale = linearFrameGuidance(4, { minScale: 1, maxScale: 2.5 });
    const sigmas = (await readFixture("sampling.safetensors", ["sigmas"])).sigmas.data;
    const final = await sampleEulerEdm(
      (x, sigma, step) => {
        const feeds = cfgUnetFeeds(x, sigma, conditioning); // what the UNet would get
        assertClose(feeds.x, t[`step${step}.unet_x`], 1e-5, `step${step}.unet_x`);
        return applyGuidance(denoiserOutput(t[`step${step}.unet_out`], x, sigma), scale);
      },
      initialLatent(t.noise, sigmas[0]),
      sigmas,
    );
    assertClose(final, t.final_latent, 2e-3, "final_latent");
  },
});
