/**
 * GPU-kernel tier: what ONNX Runtime 1.30's WebGPU provider computes for attention and
 * normalisation on SwiftShader, and the forms the graphs use because of it.
 *
 * - `com.microsoft.MultiHeadAttention` is exact while the node has fewer than 32 queries (ORT's
 *   split-reduce kernel) or at most 4 keys, and wrong from 32 queries and 5 keys on (its prefill
 *   FlashAttention kernel, whose subgroup branch scores 8 keys per step but advances by the
 *   subgroup size, 4 on SwiftShader): see docs/upstream/webgpu-flash-attention-subgroup-size-4.md.
 *   These tests pin that down so that an ONNX Runtime upgrade that fixes it shows up here.
 * - The runtime's start-up probe catches it, and `InferenceClient` refuses a fused model there.
 * - InstanceNormalization and LayerNormalization take the variance as E[x²] − E[x]²; the graphs
 *   centre their input first, which makes them exact again.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env --allow-run tests/gpu/webgpu_attention_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { convertCheckpoint } from "../../pipeline/convert/convert.ts";
import { startNetwork } from "../../pipeline/networks/built_network.ts";
import { attention, groupNorm, layerNorm } from "../../pipeline/networks/layers.ts";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import { writeOnnxModel } from "../../pipeline/onnx/model_writer.ts";
import { probeFusedAttention } from "../../pipeline/runtime/attention_check.ts";
import { InferenceClient, InferenceWorkerError } from "../../pipeline/runtime/mod.ts";
import { OnnxSession, type Provider } from "../../pipeline/runtime/onnx_session.ts";
import type { Tensor } from "../../pipeline/tensor.ts";
import { CheckpointWeights } from "../../pipeline/weights/checkpoint_weights.ts";
import type { WeightSource } from "../../pipeline/weights/weight_source.ts";
import { fixturePath } from "../_fixtures.ts";
import { tinyModelDir } from "../runtime/_tiny_model.ts";
import { webgpuTest } from "./_webgpu.ts";

/** Deterministic values in [-1, 1]. */
function values(n: number, seed: number, mean = 0, spread = 1): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = mean + spread * (state / 2 ** 32 * 2 - 1);
  }
  return out;
}

/** Writes `graph`, runs it once on `provider` and returns output `y`. */
async function runGraph(
  graph: GraphBuilder,
  provider: Provider,
  feeds: Record<string, Tensor>,
): Promise<Tensor> {
  const dir = await Deno.makeTempDir({ prefix: "webgpu_attention_" });
  try {
    await writeOnnxModel(graph, `${dir}/m.onnx`);
    const session = await OnnxSession.create(`${dir}/m.onnx`, { provider });
    try {
      return (await session.run(feeds)).y;
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** `softmax(q kᵀ/√d) v` per video and head in float64; layout [B, S, heads·d]. */
function reference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  shape: { batch: number; queries: number; keys: number; heads: number; d: number },
): Float64Array {
  const { batch, queries, keys, heads, d } = shape;
  const width = heads * d;
  const out = new Float64Array(batch * queries * width);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < queries; i++) {
        const qi = (b * queries + i) * width + h * d;
        const scores = Array.from({ length: keys }, (_, j) => {
          const kj = (b * keys + j) * width + h * d;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[qi + c] * k[kj + c];
          return dot / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < keys; j++) {
          const vj = (b * keys + j) * width + h * d;
          for (let c = 0; c < d; c++) out[qi + c] += e[j] / sum * v[vj + c];
        }
      }
    }
  }
  return out;
}

interface Case {
  readonly batch: number;
  readonly queries: number;
  readonly keys: number;
  readonly heads: number;
  readonly d: number;
}

/** max |WebGPU − float64| of one attention node built by `build` (fused or decomposed). */
async function attentionError(shape: Case, form: "fused" | "decomposed"): Promise<number> {
  const { batch, queries, keys, heads, d } = shape;
  const width = heads * d;
  const q = values(batch * queries * width, 1);
  const k = values(batch * keys * width, 2);
  const v = values(batch * keys * width, 3);
  const net = startNetwork("attention", NO_WEIGHTS, { attention: form });
  const y = attention(
    net,
    net.g.input("q", "float32", [batch, queries, width]),
    net.g.input("k", "float32", [batch, keys, width]),
    net.g.input("v", "float32", [batch, keys, width]),
    heads,
    width,
  );
  net.g.output("y", y, "float32", [batch, queries, width]);
  const out = await runGraph(net.g, "webgpu", {
    q: { dims: [batch, queries, width], data: q },
    k: { dims: [batch, keys, width], data: k },
    v: { dims: [batch, keys, width], data: v },
  });
  return maxDiff(out.data, reference(q, k, v, shape));
}

/** A weight source with none: attention and the probes take no weights. */
const NO_WEIGHTS: WeightSource = {
  description: "none",
  keys: () => [],
  dims: () => undefined,
  read: () => Promise.reject(new Error("no weights")),
};

const EXACT: [string, Case][] = [
  ["31 queries (split-reduce kernel)", { batch: 2, queries: 31, keys: 77, heads: 4, d: 64 }],
  ["32 queries, 4 keys", { batch: 1, queries: 32, keys: 4, heads: 1, d: 8 }],
  ["77 queries, 1 key (the issue's cross-attention)", {
    batch: 2,
    queries: 77,
    keys: 1,
    heads: 4,
    d: 64,
  }],
];
const WRONG: [string, Case][] = [
  ["32 queries, 5 keys", { batch: 1, queries: 32, keys: 5, heads: 1, d: 8 }],
  ["77 queries and keys, 4 heads of 64 (the issue's self-attention)", {
    batch: 2,
    queries: 77,
    keys: 77,
    heads: 4,
    d: 64,
  }],
  ["128 tokens, 2 heads of 16 (tiny UNet level 0)", {
    batch: 8,
    queries: 128,
    keys: 128,
    heads: 2,
    d: 16,
  }],
];

webgpuTest(
  "WebGPU MultiHeadAttention (ORT 1.30, SwiftShader) is exact below 32 queries or with at most 4 keys",
  async () => {
    for (const [what, shape] of EXACT) {
      const error = await attentionError(shape, "fused");
      assert.ok(error < 1e-5, `${what}: max |error| ${error}`);
    }
  },
);

webgpuTest(
  "WebGPU MultiHeadAttention (ORT 1.30, SwiftShader) is wrong from 32 queries and 5 keys",
  async () => {
    for (const [what, shape] of WRONG) {
      const error = await attentionError(shape, "fused");
      console.log(`  fused ${what}: max |error| ${error.toExponential(2)}`);
      assert.ok(
        error > 1e-2,
        `${what}: max |error| ${error}. If ONNX Runtime fixed its FlashAttention kernel, the ` +
          "decomposed form is no longer needed on SwiftShader: update layers.ts and this tier",
      );
    }
  },
);

webgpuTest("decomposed attention is exact on WebGPU where the fused kernel is wrong", async () => {
  for (const [what, shape] of WRONG) {
    const error = await attentionError(shape, "decomposed");
    assert.ok(error < 1e-5, `${what}: max |error| ${error}`);
  }
});

webgpuTest(
  "the start-up attention probe fails on WebGPU over SwiftShader and passes on the CPU",
  async () => {
    const webgpu = await probeFusedAttention("webgpu");
    assert.equal(webgpu.ok, false, `WebGPU probe error ${webgpu.maxAbsError}`);
    assert.ok(webgpu.maxAbsError > 1e-2);
    const cpu = await probeFusedAttention("cpu");
    assert.ok(cpu.ok, `CPU probe error ${cpu.maxAbsError}`);
  },
);

webgpuTest(
  "InferenceClient refuses a fused model on WebGPU over SwiftShader, naming the remedy",
  async () => {
    const modelDir = await tinyModelDir();
    await assert.rejects(
      InferenceClient.start({ modelDir, provider: "webgpu" }),
      (error) => {
        assert.ok(error instanceof InferenceWorkerError, String(error));
        assert.equal(error.reason, "failedToStart");
        assert.match(error.message, /provider "webgpu"/);
        assert.match(
          error.message,
          /computes com\.microsoft\.MultiHeadAttention \(float32\) wrongly/,
        );
        assert.match(error.message, /--attention decomposed/);
        // The probe's failure crossed the process boundary with its name: no install hint.
        assert.ok(error.cause instanceof Error);
        assert.equal(error.cause.name, "AttentionFormError");
        assert.doesNotMatch(error.message, /needs a GPU adapter through a Vulkan driver/);
        return true;
      },
    );
  },
);

webgpuTest("InferenceClient starts a decomposed model on WebGPU over SwiftShader", async () => {
  const root = await Deno.makeTempDir({ prefix: "webgpu_decomposed_" });
  try {
    using source = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
    const config = await loadConfig(fixturePath("config.yaml"));
    await convertCheckpoint({ config, source, out: `${root}/tiny`, attention: "decomposed" });
    await using client = await InferenceClient.start({
      modelDir: `${root}/tiny`,
      provider: "webgpu",
    });
    assert.equal(client.provider, "webgpu");
    assert.equal(client.model.manifest.attention, "decomposed");
    assert.deepEqual(client.graphs.sort(), ["image_encoder", "unet", "vae_decoder", "vae_encoder"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Identity affine weights (γ = 1, β = 0) for any normalisation key. */
const UNIT_AFFINE: WeightSource = {
  description: "unit affine",
  keys: () => undefined,
  dims: (_key, expected) => expected,
  read: (key, dims) =>
    Promise.resolve(
      new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(key.endsWith(".weight") ? 1 : 0),
    ),
};

/** (x − mean) / sqrt(var + eps) over consecutive runs of `size` values, in float64. */
function normalized(x: Float32Array, size: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let start = 0; start < x.length; start += size) {
    let mean = 0;
    for (let i = 0; i < size; i++) mean += x[start + i] / size;
    let variance = 0;
    for (let i = 0; i < size; i++) variance += (x[start + i] - mean) ** 2 / size;
    for (let i = 0; i < size; i++) {
      out[start + i] = (x[start + i] - mean) / Math.sqrt(variance + eps);
    }
  }
  return out;
}

// Data with mean 100 and spread 0.1 (standard deviation ≈ 0.058): E[x²] and E[x]² agree in their
// first 7 digits, which is all float32 holds.
const OFFSET: Tensor = { dims: [2, 32, 4, 64], data: values(2 * 32 * 4 * 64, 7, 100, 0.1) };

webgpuTest(
  "WebGPU InstanceNormalization loses the variance of data far from zero (E[x²] − E[x]²)",
  async () => {
    const g = new GraphBuilder("instance_norm");
    const x = g.op("Reshape", [g.input("x", "float32", OFFSET.dims), g.constInt([2, 32, -1])]);
    const y = g.op("InstanceNormalization", [
      x,
      g.constFloat(new Array(32).fill(1)),
      g.constFloat(new Array(32).fill(0)),
    ], { epsilon: { float: 1e-6 } });
    g.output("y", y, "float32", [2, 32, 256]);
    const out = await runGraph(g, "webgpu", { x: OFFSET });
    const error = maxDiff(out.data, normalized(OFFSET.data, 256, 1e-6));
    console.log(`  raw InstanceNormalization: max |error| ${error.toExponential(2)}`);
    assert.ok(error > 1e-1, `max |error| ${error}: has ORT's kernel changed? Then centring may go`);
  },
);

webgpuTest(
  "groupNorm and layerNorm centre their input, so WebGPU normalises data far from zero exactly",
  async () => {
    const net = startNetwork("norms", UNIT_AFFINE, {});
    const x = net.g.input("x", "float32", OFFSET.dims);
    net.g.output("y", groupNorm(net, x, "gn", 32, 1e-6, 4), "float32", OFFSET.dims);
    const grouped = await runGraph(net.g, "webgpu", { x: OFFSET });
    // 32 groups of 32 channels: each group is one channel's 4·64 values.
    const groupError = maxDiff(grouped.data, normalized(OFFSET.data, 256, 1e-6));
    console.log(`  centred groupNorm: max |error| ${groupError.toExponential(2)}`);
    assert.ok(groupError < 1e-5, `groupNorm: max |error| ${groupError}`);

    const ln = startNetwork("layer_norm", UNIT_AFFINE, {});
    const input = ln.g.input("x", "float32", OFFSET.dims);
    ln.g.output("y", layerNorm(ln, input, "ln", 64), "float32", OFFSET.dims);
    const layered = await runGraph(ln.g, "webgpu", { x: OFFSET });
    const layerError = maxDiff(layered.data, normalized(OFFSET.data, 64, 1e-5));
    console.log(`  centred layerNorm: max |error| ${layerError.toExponential(2)}`);
    assert.ok(layerError < 1e-5, `layerNorm: max |error| ${layerError}`);
  },
);
