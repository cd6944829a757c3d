/**
 * Golden and wiring tests of the VideoUNet graph against `unet.safetensors` (sgm, float32).
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env tests/video_unet_test.ts
 */

import assert from "node:assert/strict";
import { TINY } from "../pipeline/config/network_configs.ts";
import { buildVideoUnet, VIDEO_UNET_PREFIX } from "../pipeline/networks/video_unet.ts";
import { writeOnnxModel } from "../pipeline/onnx/model_writer.ts";
import { OnnxSession, type OnnxSessionOptions } from "../pipeline/runtime/onnx_session.ts";
import { SafetensorsFile } from "../pipeline/safetensors/reader.ts";
import { type TensorEntry, writeSafetensors } from "../pipeline/safetensors/writer.ts";
import type { Tensor } from "../pipeline/tensor.ts";
import { CheckpointWeights } from "../pipeline/weights/checkpoint_weights.ts";
import { WeightsMismatchError } from "../pipeline/weights/weight_source.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";

/** The fixture README's acceptance for one UNet call (about 10× the float32 noise of sgm). */
const UNET_TOLERANCE = 5e-4;
/** Unit roundoff of IEEE float16 (10 stored mantissa bits): relative error of one rounding. */
const FLOAT16_UNIT_ROUNDOFF = 2 ** -11;
const INPUTS = ["x", "timesteps", "context", "y", "image_only_indicator"] as const;

interface UnetCase {
  readonly feeds: Record<string, Tensor>;
  readonly expected: Tensor;
}

/** The primary case (prefix "", the sampler's first call) or the `alt.` case of the fixture. */
async function unetCase(prefix: "" | "alt."): Promise<UnetCase> {
  const names = [...INPUTS, "out"].map((n) => prefix + n);
  const t = await readFixture("unet.safetensors", names);
  const feeds = Object.fromEntries(INPUTS.map((n) => [n, t[prefix + n]]));
  return { feeds, expected: t[`${prefix}out`] };
}

/** Builds the tiny UNet from the fixture weights, writes it to a temporary folder, loads it. */
async function withUnet(
  options: { precision?: "fp32" | "fp16"; session?: OnnxSessionOptions },
  use: (session: OnnxSession, weightLayers: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "video_unet_test_" });
  try {
    const path = `${dir}/unet.onnx`;
    using weights = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
    const { graph } = buildVideoUnet(TINY.unet, weights, { precision: options.precision });
    const weightLayers = graph.nodes.filter((n) => n.opType === "Conv" || n.opType === "MatMul")
      .length;
    await writeOnnxModel(graph, path);
    const session = await OnnxSession.create(path, options.session);
    try {
      await use(session, weightLayers);
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Rows `[start, start + count)` of the leading axis. */
function rows(t: Tensor, start: number, count: number): Tensor {
  const size = t.data.length / t.dims[0];
  const data = t.data.slice(start * size, (start + count) * size);
  return { dims: [count, ...t.dims.slice(1)], data };
}

function maxAbs(t: Tensor): number {
  return t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

// Tolerance 5e-4 (fixture README). Measured with onnxruntime-node 1.30 on CPU: out 2.5e-5,
// alt.out 1.4e-5 (sgm's own float64 rerun differs from its float32 values by 2.4e-5 and 1.4e-5).
Deno.test("buildVideoUnet fp32 reproduces unet:out and unet:alt.out, also per video", async () => {
  await withUnet({}, async (session) => {
    for (const prefix of ["", "alt."] as const) {
      const { feeds, expected } = await unetCase(prefix);
      const { out } = await session.run(feeds);
      assertClose(out, expected, UNET_TOLERANCE, `unet:${prefix}out`);
    }
    // The first video of the alt case alone (B = 1, N = T) gives its rows: videos never mix.
    const { feeds, expected } = await unetCase("alt.");
    const frames = feeds.image_only_indicator.dims[1];
    const firstVideo: Record<string, Tensor> = {};
    for (const [name, value] of Object.entries(feeds)) {
      firstVideo[name] = rows(value, 0, name === "image_only_indicator" ? 1 : frames);
    }
    const { out } = await session.run(firstVideo);
    assertClose(out, rows(expected, 0, frames), UNET_TOLERANCE, "unet:alt.out of video 0 alone");
  });
});

// Bound: sqrt(D) · u · max|out|, D = number of weight layers (Conv + MatMul nodes, 509 in the
// tiny graph), u = 2^-11. Each layer rounds its weights and its output to float16, a relative
// error of at most u; independent rounding errors accumulate like a random walk, so the relative
// error after D layers grows as sqrt(D)·u (the probabilistic rounding-error estimate, Higham,
// "Accuracy and Stability of Numerical Algorithms", §3.1), measured against the output scale.
// For the tiny UNet this is 3.2e-2 (out) and 2.8e-2 (alt.out). Measured: 6.1e-3 and 2.9e-3
// (0.19 and 0.10 of the bound; relative rms error 2.0e-3 and 1.2e-3, about 4u, below the
// random-walk rms estimate u·sqrt(D/3) = 6.4e-3). Statistics, sinusoids and graph I/O stay
// float32. ORT's CPU provider evaluates most float16 ops in float32 and rounds their outputs,
// so this checks the float16 graph's typing and rounding, not float16 accumulation in kernels.
// Semantics are held to 5e-4 by the float32 test.
Deno.test("buildVideoUnet fp16 stays within sqrt(layers)·u·max|out| of the reference", async () => {
  await withUnet({ precision: "fp16" }, async (session, weightLayers) => {
    for (const prefix of ["", "alt."] as const) {
      const { feeds, expected } = await unetCase(prefix);
      const { out } = await session.run(feeds);
      const bound = Math.sqrt(weightLayers) * FLOAT16_UNIT_ROUNDOFF * maxAbs(expected);
      assertClose(out, expected, bound, `fp16 unet:${prefix}out`);
    }
  });
});

Deno.test("buildVideoUnet graph gives the same result with ORT optimisation disabled", async () => {
  await withUnet({ session: { optimization: "disabled" } }, async (session) => {
    for (const prefix of ["", "alt."] as const) {
      const { feeds, expected } = await unetCase(prefix);
      const { out } = await session.run(feeds);
      assertClose(out, expected, UNET_TOLERANCE, `unet:${prefix}out (optimisation disabled)`);
    }
  });
});

Deno.test("buildVideoUnet uses every UNet key once and names initializers by key", async () => {
  using weights = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
  const { graph, weights: binder } = buildVideoUnet(TINY.unet, weights);
  const unetKeys = weights.keys().filter((k) => k.startsWith(VIDEO_UNET_PREFIX));
  assert.equal(binder.stats.used + binder.stats.skipped, unetKeys.length);
  // Skipped: norm2 and the to_q/to_k of the 2 cross-attentions of each of the 16 transformers.
  assert.equal(binder.stats.skipped, 16 * 2 * 4);
  const initializers = new Set(graph.initializers.map((i) => i.name));
  assert.ok(initializers.has(`${VIDEO_UNET_PREFIX}middle_block.1.time_stack.0.attn1.to_q.weight`));
  assert.ok(!initializers.has(`${VIDEO_UNET_PREFIX}middle_block.1.time_stack.0.attn2.to_q.weight`));
  assert.deepEqual(graph.inputs.map((i) => i.name), [...INPUTS]);
  assert.deepEqual(graph.outputs.map((o) => [o.name, o.type]), [["out", "float32"]]);
});

/**
 * Writes the UNet tensors of the fixture weights to `path`, leaving `omit` out, declaring
 * `reshape`'s key with other dims (zeros), and adding `extra` entries.
 */
async function writeVariant(
  path: string,
  change: { omit?: string; reshape?: [string, number[]]; extra?: [string, number[]] },
): Promise<void> {
  using source = await SafetensorsFile.open(fixturePath("weights.safetensors"));
  const zeros = (name: string, dims: number[]): TensorEntry => ({
    name,
    dtype: "F32",
    dims,
    bytes: () => new Uint8Array(4 * dims.reduce((a, b) => a * b, 1)),
  });
  const entries: TensorEntry[] = [];
  for (const key of source.keys()) {
    if (!key.startsWith(VIDEO_UNET_PREFIX) || key === change.omit) continue;
    if (key === change.reshape?.[0]) entries.push(zeros(key, change.reshape[1]));
    else {
      const { dtype, dims } = source.info(key);
      entries.push({ name: key, dtype, dims, bytes: () => source.readBytes(key) });
    }
  }
  if (change.extra) entries.push(zeros(...change.extra));
  await writeSafetensors(path, entries);
}

const MISMATCHES: [string, Parameters<typeof writeVariant>[1], string][] = [
  [
    "a missing key",
    { omit: `${VIDEO_UNET_PREFIX}output_blocks.11.1.time_pos_embed.2.bias` },
    `${VIDEO_UNET_PREFIX}output_blocks.11.1.time_pos_embed.2.bias`,
  ],
  [
    "a temporal conv kernel stored as 2-D",
    {
      reshape: [`${VIDEO_UNET_PREFIX}input_blocks.1.0.time_stack.in_layers.2.weight`, [
        32,
        32,
        3,
        1,
      ]],
    },
    `${VIDEO_UNET_PREFIX}input_blocks.1.0.time_stack.in_layers.2.weight`,
  ],
  [
    "a skipped cross-attention key of the wrong shape",
    { reshape: [`${VIDEO_UNET_PREFIX}middle_block.1.time_stack.0.attn2.to_k.weight`, [64, 32]] },
    `${VIDEO_UNET_PREFIX}middle_block.1.time_stack.0.attn2.to_k.weight`,
  ],
  [
    "an unused extra key",
    { extra: [`${VIDEO_UNET_PREFIX}extra.weight`, [4]] },
    `${VIDEO_UNET_PREFIX}extra.weight`,
  ],
];

for (const [what, change, key] of MISMATCHES) {
  Deno.test(`buildVideoUnet rejects ${what} with a WeightsMismatchError naming it`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "video_unet_test_" });
    try {
      const path = `${dir}/weights.safetensors`;
      await writeVariant(path, change);
      using weights = await CheckpointWeights.open([path]);
      assert.throws(
        () => buildVideoUnet(TINY.unet, weights),
        (error) =>
          error instanceof WeightsMismatchError && error.key === key &&
          error.message.includes(`"${key}"`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
