/**
 * The "decomposed" attention form (MatMul–Softmax–MatMul, `convert --attention decomposed`) on the
 * CPU provider: every graph reproduces sgm's fixtures at the golden tolerances, as the fused form
 * does, and the runtime's attention probe passes on the CPU. (On WebGPU: tests/gpu/.)
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env tests/attention_forms_test.ts
 */

import assert from "node:assert/strict";
import { TINY } from "../pipeline/config/network_configs.ts";
import type { BuildOptions, BuiltNetwork } from "../pipeline/networks/built_network.ts";
import { buildImageEncoder } from "../pipeline/networks/image_encoder.ts";
import { buildVaeDecoder } from "../pipeline/networks/vae_decoder.ts";
import { buildVaeEncoder } from "../pipeline/networks/vae_encoder.ts";
import { buildVideoUnet } from "../pipeline/networks/video_unet.ts";
import { writeOnnxModel } from "../pipeline/onnx/model_writer.ts";
import { AttentionFormError, probeFusedAttention } from "../pipeline/runtime/attention_check.ts";
import { OnnxSession } from "../pipeline/runtime/onnx_session.ts";
import type { Tensor } from "../pipeline/tensor.ts";
import { CheckpointWeights } from "../pipeline/weights/checkpoint_weights.ts";
import type { WeightSource } from "../pipeline/weights/weight_source.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";

/** Builds `build` with decomposed attention from the fixture weights and runs it on `feeds`. */
async function runDecomposed(
  build: (source: WeightSource, options: BuildOptions) => BuiltNetwork,
  feeds: Record<string, Tensor>,
  precision: "fp32" | "fp16" = "fp32",
): Promise<{ out: Record<string, Tensor>; built: BuiltNetwork }> {
  const dir = await Deno.makeTempDir({ prefix: "attention_forms_" });
  try {
    using weights = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
    const built = build(weights, { precision, attention: "decomposed" });
    assert.ok(!built.graph.nodes.some((n) => n.opType === "MultiHeadAttention"));
    await writeOnnxModel(built.graph, `${dir}/graph.onnx`);
    const session = await OnnxSession.create(`${dir}/graph.onnx`);
    try {
      return { out: await session.run(feeds), built };
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const UNET_INPUTS = ["x", "timesteps", "context", "y", "image_only_indicator"] as const;

Deno.test("decomposed attention reproduces every graph's fixture on the CPU at the golden tolerances", async () => {
  const clip = await readFixture("clip.safetensors", ["preprocessed", "embedding"]);
  const encoder = await runDecomposed(
    (w, o) => buildImageEncoder(TINY.imageEncoder, w, o),
    { pixel_values: clip.preprocessed },
  );
  assertClose(encoder.out.image_embeds, clip.embedding, 1e-4, "clip:embedding");

  const vae = await readFixture("vae_encode.safetensors", ["x", "cond_encoder.mean"]);
  const encoded = await runDecomposed((w, o) => buildVaeEncoder(TINY.vae, w, o), { image: vae.x });
  assertClose(encoded.out.mean, vae["cond_encoder.mean"], 1e-4, "cond_encoder.mean");

  const u = await readFixture("unet.safetensors", [...UNET_INPUTS, "out"]);
  const feeds = Object.fromEntries(UNET_INPUTS.map((n) => [n, u[n]]));
  const unet = await runDecomposed((w, o) => buildVideoUnet(TINY.unet, w, o), feeds);
  assertClose(unet.out.out, u.out, 5e-4, "unet:out");

  const dec = await readFixture("vae_decode.safetensors", ["z_decoder_input", "out_single_chunk"]);
  const decoded = await runDecomposed(
    (w, o) => buildVaeDecoder(TINY.vae, w, o),
    { z: dec.z_decoder_input },
  );
  assertClose(decoded.out.image, dec.out_single_chunk, 5e-4, "vae_decode:out_single_chunk");
});

// The bound of tests/video_unet_test.ts (sqrt(weight layers)·2⁻¹¹·max|out|); the decomposed form
// computes scores and softmax in float32, so it adds no rounding of its own beyond the fused one.
Deno.test("decomposed attention in fp16 keeps the UNet within the fp16 bound", async () => {
  const u = await readFixture("unet.safetensors", [...UNET_INPUTS, "out"]);
  const feeds = Object.fromEntries(UNET_INPUTS.map((n) => [n, u[n]]));
  const { out, built } = await runDecomposed(
    (w, o) => buildVideoUnet(TINY.unet, w, o),
    feeds,
    "fp16",
  );
  const weights = new Set(built.graph.initializers.map((i) => i.name));
  const layers =
    built.graph.nodes.filter((n) =>
      n.opType === "Conv" || (n.opType === "MatMul" && weights.has(n.inputs[1]))
    ).length;
  assert.equal(layers, 509);
  const bound = Math.sqrt(layers) * 2 ** -11 *
    u.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assertClose(out.out, u.out, bound, "fp16 unet:out (decomposed)");
});

Deno.test("the attention probe passes on the CPU provider in float32 and float16", async () => {
  for (const dtype of ["float32", "float16"] as const) {
    const probe = await probeFusedAttention("cpu", dtype);
    assert.ok(probe.ok, `${dtype}: max |error| ${probe.maxAbsError}`);
    assert.ok(probe.maxAbsError < 1e-5);
  }
});

Deno.test("AttentionFormError names the provider, the error and the remedy", () => {
  const error = new AttentionFormError({
    provider: "webgpu",
    dtype: "float32",
    maxAbsError: 0.088,
    tolerance: 1e-3,
    ok: false,
  });
  assert.equal(error.name, "AttentionFormError");
  assert.match(error.message, /Provider "webgpu" computes com\.microsoft\.MultiHeadAttention/);
  assert.match(error.message, /max \|error\| 8\.80e-2/);
  assert.match(error.message, /--attention decomposed/);
});
