import assert from "node:assert/strict";
import { tampered } from "./_tampered_weights.ts";
import { TINY } from "../pipeline/config/network_configs.ts";
import type { BuiltNetwork } from "../pipeline/networks/built_network.ts";
import { buildVaeEncoder, VAE_ENCODER_PREFIX } from "../pipeline/networks/vae_encoder.ts";
import { writeOnnxModel } from "../pipeline/onnx/model_writer.ts";
import { OnnxSession } from "../pipeline/runtime/onnx_session.ts";
import type { Tensor } from "../pipeline/tensor.ts";
import { CheckpointWeights } from "../pipeline/weights/checkpoint_weights.ts";
import { WeightsMismatchError } from "../pipeline/weights/weight_source.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";

/** Writes `network` to a temporary folder, runs it once on `feeds` and cleans up. */
async function runOnce(
  network: BuiltNetwork,
  feeds: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/${network.graph.name}.onnx`;
    await writeOnnxModel(network.graph, path);
    const session = await OnnxSession.create(path);
    try {
      return await session.run(feeds);
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `moments[:, from:from+4]` of a [N, 8, h, w] tensor, optionally clamped as sgm's logvar. */
function channels(moments: Tensor, from: number, clamp = false): Tensor {
  const [n, c, h, w] = moments.dims;
  const plane = h * w;
  const half = c / 2;
  const data = new Float32Array(n * half * plane);
  for (let b = 0; b < n; b++) {
    const src = moments.data.subarray((b * c + from) * plane, (b * c + from + half) * plane);
    data.set(src, b * half * plane);
  }
  if (clamp) {
    for (let i = 0; i < data.length; i++) {
      data[i] = Math.min(20, Math.max(-30, data[i]));
    }
  }
  return { dims: [n, half, h, w], data };
}

const weightsPath = fixturePath("weights.safetensors");
const fixture = await readFixture("vae_encode.safetensors", [
  "x",
  "cond_encoder.moments",
  "cond_encoder.mean",
  "cond_encoder.logvar",
  "first_stage.moments",
]);

Deno.test("buildVaeEncoder() reproduces the conditioner encoder's mean and logvar", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const out = await runOnce(buildVaeEncoder(TINY.vae, weights), { image: fixture.x });
  const moments = fixture["cond_encoder.moments"];
  // measured 7.5e-6 (ORT CPU 1.30); sgm's own float32-vs-float64 difference is 7.6e-6
  assertClose(out.mean, channels(moments, 0), 1e-4, "cond_encoder mean");
  assertClose(out.logvar, channels(moments, 4, true), 1e-4, "cond_encoder logvar");
  assertClose(out.mean, fixture["cond_encoder.mean"], 1e-4, "cond_encoder.mean");
  assertClose(out.logvar, fixture["cond_encoder.logvar"], 1e-4, "cond_encoder.logvar");
});

Deno.test("buildVaeEncoder() without quant_conv reproduces the first stage's moments", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const network = buildVaeEncoder(TINY.vae, weights, {
    prefix: "first_stage_model.",
    quantConv: false,
  });
  const out = await runOnce(network, { image: fixture.x });
  const moments = fixture["first_stage.moments"];
  // measured 7.0e-6; sgm's own float32-vs-float64 difference is 6.2e-6
  assertClose(out.mean, channels(moments, 0), 1e-4, "first_stage mean");
  assertClose(out.logvar, channels(moments, 4, true), 1e-4, "first_stage logvar");
});

/**
 * fp16 (float16 weights and activations, float32 GroupNorm statistics and I/O), ORT CPU 1.30:
 * measured max |fp16 − fixture| 5.5e-3 (mean) and 8.5e-3 (logvar) for the conditioner encoder,
 * 2.7e-3 for the first stage's, with optimisations `all` and `disabled` alike, on moments up to
 * |2.9|. float16's unit roundoff 2^-11 ≈ 4.9e-4 gives ≈1.4e-3 on such values from one rounding,
 * and the rounding of every weight and activation accumulates over ~20 convolutions and the
 * attention. 3e-2 leaves ~3.5× margin for kernels that keep more in fp16 than the CPU provider
 * (which computes most fp16 ops in fp32 between casts); a semantic error is ≥ 1e-1.
 */
const FP16_BOUND = 3e-2;

Deno.test("buildVaeEncoder() in fp16 stays within its bound", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const cond = await runOnce(buildVaeEncoder(TINY.vae, weights, { precision: "fp16" }), {
    image: fixture.x,
  });
  const condMoments = fixture["cond_encoder.moments"];
  assertClose(cond.mean, channels(condMoments, 0), FP16_BOUND, "fp16 cond_encoder mean");
  assertClose(cond.logvar, channels(condMoments, 4, true), FP16_BOUND, "fp16 cond_encoder logvar");
  const first = await runOnce(
    buildVaeEncoder(TINY.vae, weights, {
      prefix: "first_stage_model.",
      quantConv: false,
      precision: "fp16",
    }),
    { image: fixture.x },
  );
  const firstMoments = fixture["first_stage.moments"];
  assertClose(first.mean, channels(firstMoments, 0), FP16_BOUND, "fp16 first_stage mean");
  assertClose(first.logvar, channels(firstMoments, 4, true), FP16_BOUND, "fp16 first_stage logvar");
});

Deno.test("buildVaeEncoder() names a missing key", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const key = `${VAE_ENCODER_PREFIX}encoder.mid.attn_1.k.weight`;
  assert.throws(
    () => buildVaeEncoder(TINY.vae, tampered(weights, { missing: key })),
    (error: unknown) =>
      error instanceof WeightsMismatchError && error.key === key &&
      error.message.includes(key),
  );
});

Deno.test("buildVaeEncoder() names a key of the wrong shape", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const key = `${VAE_ENCODER_PREFIX}quant_conv.weight`;
  assert.throws(
    () => buildVaeEncoder(TINY.vae, tampered(weights, { reshaped: [key, [8, 8, 3, 3]] })),
    (error: unknown) =>
      error instanceof WeightsMismatchError && error.key === key &&
      error.message.includes("[8, 8, 3, 3]"),
  );
});

Deno.test("buildVaeEncoder() with quant_conv rejects a checkpoint that has none", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  assert.throws(
    () => buildVaeEncoder(TINY.vae, weights, { prefix: "first_stage_model." }),
    (error: unknown) =>
      error instanceof WeightsMismatchError && error.key === "first_stage_model.quant_conv.weight",
  );
});

Deno.test("buildVaeEncoder() reports keys its config leaves unused", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  // one resnet block per level leaves down.*.block.1.* unused
  assert.throws(
    () => buildVaeEncoder({ ...TINY.vae, numResBlocks: 1 }, weights),
    (error: unknown) =>
      error instanceof WeightsMismatchError && /\.down\.\d\.block\.1\./.test(error.key),
  );
});
