import assert from "node:assert/strict";
import { tampered } from "./_tampered_weights.ts";
import { TINY } from "../pipeline/config/network_configs.ts";
import type { BuiltNetwork } from "../pipeline/networks/built_network.ts";
import { buildVaeDecoder, VAE_DECODER_PREFIX } from "../pipeline/networks/vae_decoder.ts";
import { writeOnnxModel } from "../pipeline/onnx/model_writer.ts";
import { OnnxSession } from "../pipeline/runtime/onnx_session.ts";
import { numel, type Tensor } from "../pipeline/tensor.ts";
import { CheckpointWeights } from "../pipeline/weights/checkpoint_weights.ts";
import { WeightsMismatchError } from "../pipeline/weights/weight_source.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";

const weightsPath = fixturePath("weights.safetensors");
const fixture = await readFixture("vae_decode.safetensors", [
  "z",
  "z_decoder_input",
  "out",
  "out_single_chunk",
]);
/** `decoding_t` of the fixture: frames [0, 1, 2] form the first chunk, [3] the second. */
const DECODING_T = 3;

/** Frames `[from, to)` of a [T, ...] tensor. */
function frames(t: Tensor, from: number, to: number): Tensor {
  const size = numel(t.dims.slice(1));
  return { dims: [to - from, ...t.dims.slice(1)], data: t.data.slice(from * size, to * size) };
}

/** Concatenation along the frame axis. */
function concatFrames(parts: readonly Tensor[]): Tensor {
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  return { dims: [parts.reduce((n, p) => n + p.dims[0], 0), ...parts[0].dims.slice(1)], data };
}

/**
 * Writes `network` to a temporary folder and decodes `z` twice: in chunks of `DECODING_T` frames
 * (one graph call per chunk, outputs concatenated, as `decode_first_stage`) and in one call.
 */
async function decode(
  network: BuiltNetwork,
  z: Tensor,
): Promise<{ chunked: Tensor; single: Tensor }> {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/vae_decoder.onnx`;
    await writeOnnxModel(network.graph, path);
    const session = await OnnxSession.create(path);
    try {
      const parts: Tensor[] = [];
      for (let from = 0; from < z.dims[0]; from += DECODING_T) {
        const chunk = frames(z, from, Math.min(from + DECODING_T, z.dims[0]));
        parts.push((await session.run({ z: chunk })).image);
      }
      const single = (await session.run({ z })).image;
      return { chunked: concatFrames(parts), single };
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the fixture's decoder input is z times float32(1 / 0.18215)", () => {
  const scale = Math.fround(1 / 0.18215);
  const { z, z_decoder_input: expected } = fixture;
  for (let i = 0; i < z.data.length; i++) {
    assert.equal(Math.fround(z.data[i] * scale), expected.data[i], `value ${i}`);
  }
});

Deno.test("buildVaeDecoder() reproduces chunked and single-chunk decoding", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const { chunked, single } = await decode(
    buildVaeDecoder(TINY.vae, weights),
    fixture.z_decoder_input,
  );
  // measured 3.3e-6 for both; sgm's own float32-vs-float64 difference is 3.1e-6
  assertClose(chunked, fixture.out, 5e-4, "out (chunks of 3)");
  assertClose(single, fixture.out_single_chunk, 5e-4, "out_single_chunk");
  // the chunk boundary matters: the two decodings must differ far beyond the tolerance
  assert.ok(maxDiff(chunked, single) > 1e-2, "chunked and single-chunk decodings are equal");
});

/**
 * fp16 (float16 weights and activations, float32 GroupNorm statistics, α and I/O), ORT CPU 1.30:
 * measured max |fp16 − fixture| 4.6e-3 (chunked) and 4.4e-3 (single chunk), with optimisations
 * `all` and `disabled` alike, on outputs up to |3.0|. float16's unit roundoff is 2^-11 ≈ 4.9e-4,
 * ≈1.5e-3 on values near 3 from the final rounding alone, and the rounding of every weight and
 * activation accumulates over ~40 convolutions. 2e-2 leaves ~4× margin for kernels that
 * accumulate differently (the CPU provider computes most fp16 ops in fp32 between casts; a GPU
 * keeps more in fp16). Semantic errors are far larger: chunked and single-chunk decodings differ
 * by up to 1.7.
 */
const FP16_BOUND = 2e-2;

Deno.test("buildVaeDecoder() in fp16 stays within its bound", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const network = buildVaeDecoder(TINY.vae, weights, { precision: "fp16" });
  const { chunked, single } = await decode(network, fixture.z_decoder_input);
  assertClose(chunked, fixture.out, FP16_BOUND, "fp16 out (chunks of 3)");
  assertClose(single, fixture.out_single_chunk, FP16_BOUND, "fp16 out_single_chunk");
});

function maxDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

Deno.test("buildVaeDecoder() names a missing key", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const key = `${VAE_DECODER_PREFIX}up.2.block.1.mix_factor`;
  assert.throws(
    () => buildVaeDecoder(TINY.vae, tampered(weights, { missing: key })),
    (error: unknown) =>
      error instanceof WeightsMismatchError && error.key === key &&
      error.message.includes(key),
  );
});

Deno.test("buildVaeDecoder() names a key of the wrong shape", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  const key = `${VAE_DECODER_PREFIX}conv_out.time_mix_conv.weight`;
  assert.throws(
    () => buildVaeDecoder(TINY.vae, tampered(weights, { reshaped: [key, [3, 3, 3, 3, 3]] })),
    (error: unknown) =>
      error instanceof WeightsMismatchError && error.key === key &&
      error.message.includes("[3, 3, 3, 3, 3]"),
  );
});

Deno.test("buildVaeDecoder() rejects a 2-D decoder, naming a temporal key it lacks", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  // the conditioner's autoencoder holds a plain 2-D Decoder (no time_stack, no mix_factor)
  const prefix = "conditioner.embedders.3.encoder.decoder.";
  assert.throws(
    () => buildVaeDecoder(TINY.vae, weights, { prefix }),
    (error: unknown) =>
      error instanceof WeightsMismatchError &&
      error.key === `${prefix}mid.block_1.time_stack.in_layers.0.weight`,
  );
});

Deno.test("buildVaeDecoder() rejects a video kernel it cannot run", async () => {
  using weights = await CheckpointWeights.open([weightsPath]);
  assert.throws(
    () => buildVaeDecoder({ ...TINY.vae, videoKernelSize: [3, 3, 3] }, weights),
    RangeError,
  );
});
