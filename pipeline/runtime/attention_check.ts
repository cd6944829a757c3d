/**
 * Does this provider compute `com.microsoft.MultiHeadAttention` right on this device? One small
 * MultiHeadAttention node, run on the provider and compared with a float64 reference.
 *
 * Why a run and not a table: ONNX Runtime 1.30's WebGPU provider picks its attention kernel by the
 * adapter (vendor, subgroup support and size), which the Node binding does not report. Its
 * FlashAttention kernel is wrong on adapters whose subgroup size is 4 (SwiftShader, for one) once a
 * node has 32 or more queries and 5 or more keys (see `docs/upstream/` and the module doc of
 * `pipeline/networks/layers.ts`). The probe has those shapes, so it fails exactly where the fused
 * form cannot be trusted; `InferenceClient` runs it before serving a model whose attention form is
 * `fused` on a GPU provider (cuda or webgpu, in each precision the model's graphs use) and refuses
 * the model when it fails. It proves the kernel ORT picks at the probe's shapes; on CUDA that is
 * not necessarily the flash kernel SVD-XT's 9,216-token attention gets (see the CUDA coverage
 * check of issue 15, point 3, for that).
 *
 * @example
 * ```ts
 * import { probeFusedAttention } from "./pipeline/runtime/attention_check.ts";
 * const probe = await probeFusedAttention("webgpu");
 * probe.ok; // false on SwiftShader: maxAbsError ≈ 0.1 against a tolerance of 1e-3
 * ```
 *
 * @module
 */

import { GraphBuilder } from "../onnx/graph.ts";
import { encodeOnnxModel } from "../onnx/model_writer.ts";
import type { Tensor } from "../tensor.ts";
import { OnnxSession, type Provider } from "./onnx_session.ts";

/**
 * The probe's shapes: 64 queries (ORT's WebGPU provider sends 32 or more to its prefill
 * FlashAttention kernel), 40 keys (not a multiple of 16, so partial key tiles are exercised too),
 * 2 videos, 2 heads of 16.
 */
export const ATTENTION_PROBE_SHAPE = {
  batch: 2,
  queries: 64,
  keys: 40,
  heads: 2,
  headSize: 16,
} as const;

/**
 * Largest error accepted, per precision. Outputs are convex combinations of values in [-1, 1].
 * float32 kernels are off by ~1e-7; float16 ones by a few units of 2⁻¹¹ ≈ 4.9e-4 (inputs are
 * rounded to float16 before the reference is computed, so only the kernel's own rounding counts).
 * The defect this catches is off by ~1e-1.
 */
export const ATTENTION_PROBE_TOLERANCE = { float32: 1e-3, float16: 1e-2 } as const;

/** What {@linkcode probeFusedAttention} measured. */
export interface AttentionProbeResult {
  readonly provider: Provider;
  readonly dtype: "float32" | "float16";
  /** max |provider − float64 reference| over the output. */
  readonly maxAbsError: number;
  readonly tolerance: number;
  readonly ok: boolean;
}

/**
 * A model's attention form is computed wrongly by the chosen provider on this device. The message
 * names the provider, the measured error and what to do instead.
 */
export class AttentionFormError extends Error {
  /** The failed probe. */
  readonly probe: AttentionProbeResult;
  constructor(probe: AttentionProbeResult, options?: ErrorOptions) {
    super(
      `Provider "${probe.provider}" computes com.microsoft.MultiHeadAttention (${probe.dtype}) ` +
        `wrongly on this device: max |error| ${probe.maxAbsError.toExponential(2)} on a ` +
        `${describeShape()} probe, tolerance ${probe.tolerance}. This model was converted with ` +
        `attention "fused"; convert it with --attention decomposed to run it here (exact on every ` +
        `provider, but it holds every attention score, so only for small models), or use ` +
        `another provider. Known cause on WebGPU: ONNX Runtime's FlashAttention kernel on adapters ` +
        `with subgroup size 4 (docs/upstream/webgpu-flash-attention-subgroup-size-4.md)`,
      options,
    );
    this.name = "AttentionFormError";
    this.probe = probe;
  }
}

/** Runs the probe on `provider` and compares it with the float64 reference. */
export async function probeFusedAttention(
  provider: Provider,
  dtype: "float32" | "float16" = "float32",
): Promise<AttentionProbeResult> {
  const { batch, queries, keys, heads, headSize } = ATTENTION_PROBE_SHAPE;
  const width = heads * headSize;
  const round = dtype === "float16" ? Math.f16round : Math.fround;
  const q = probeValues(batch * queries * width, 1, 2, round);
  const k = probeValues(batch * keys * width, 2, 1, round);
  const v = probeValues(batch * keys * width, 3, 1, round);
  // Built and loaded in memory: the inference process that runs the probe may not write.
  const session = await OnnxSession.fromBytes(
    encodeOnnxModel(probeGraph(dtype)),
    `attention probe (${dtype})`,
    { provider },
  );
  let out: Tensor;
  try {
    ({ out } = await session.run({
      q: { dims: [batch, queries, width], data: q },
      k: { dims: [batch, keys, width], data: k },
      v: { dims: [batch, keys, width], data: v },
    }));
  } finally {
    await session.release();
  }
  const expected = referenceAttention(q, k, v);
  let maxAbsError = 0;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(out.data[i] - expected[i]);
    // NaN counts as an unbounded error.
    maxAbsError = error > maxAbsError || Number.isNaN(error) ? error : maxAbsError;
  }
  const tolerance = ATTENTION_PROBE_TOLERANCE[dtype];
  return { provider, dtype, maxAbsError, tolerance, ok: maxAbsError <= tolerance };
}

/**
 * Runs the probe for each dtype and throws on the first that fails.
 *
 * @throws {AttentionFormError} naming the provider, the error and the remedy.
 */
export async function assertFusedAttention(
  provider: Provider,
  dtypes: readonly ("float32" | "float16")[],
): Promise<void> {
  for (const dtype of dtypes) {
    const probe = await probeFusedAttention(provider, dtype);
    if (!probe.ok) throw new AttentionFormError(probe);
  }
}

/** One MultiHeadAttention node; float32 I/O, computing in `dtype`. */
function probeGraph(dtype: "float32" | "float16"): GraphBuilder {
  const { batch, queries, keys, heads, headSize } = ATTENTION_PROBE_SHAPE;
  const width = heads * headSize;
  const g = new GraphBuilder("attention_probe");
  const cast = (x: string, to: number) => dtype === "float16" ? g.op("Cast", [x], { to }) : x;
  const FLOAT = 1;
  const FLOAT16 = 10;
  const q = cast(g.input("q", "float32", [batch, queries, width]), FLOAT16);
  const k = cast(g.input("k", "float32", [batch, keys, width]), FLOAT16);
  const v = cast(g.input("v", "float32", [batch, keys, width]), FLOAT16);
  const attended = g.op("MultiHeadAttention", [q, k, v], { num_heads: heads }, "com.microsoft");
  g.output("out", cast(attended, FLOAT), "float32", [batch, queries, width]);
  return g;
}

/** `softmax(q kᵀ / √d) v` per video and head, in float64. Layout [B, S, heads·d]. */
function referenceAttention(q: Float32Array, k: Float32Array, v: Float32Array): Float64Array {
  const { batch, queries, keys, heads, headSize } = ATTENTION_PROBE_SHAPE;
  const width = heads * headSize;
  const out = new Float64Array(batch * queries * width);
  const scores = new Float64Array(keys);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < queries; i++) {
        const qi = (b * queries + i) * width + h * headSize;
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          const kj = (b * keys + j) * width + h * headSize;
          let dot = 0;
          for (let c = 0; c < headSize; c++) dot += q[qi + c] * k[kj + c];
          scores[j] = dot / Math.sqrt(headSize);
          max = Math.max(max, scores[j]);
        }
        let sum = 0;
        for (let j = 0; j < keys; j++) sum += scores[j] = Math.exp(scores[j] - max);
        for (let j = 0; j < keys; j++) {
          const vj = (b * keys + j) * width + h * headSize;
          for (let c = 0; c < headSize; c++) out[qi + c] += scores[j] / sum * v[vj + c];
        }
      }
    }
  }
  return out;
}

/** Deterministic values in [-scale, scale] (a linear congruential sequence), rounded by `round`. */
function probeValues(
  n: number,
  seed: number,
  scale: number,
  round: (x: number) => number,
): Float32Array {
  const values = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = round(scale * (state / 2 ** 32 * 2 - 1));
  }
  return values;
}

function describeShape(): string {
  const { batch, queries, keys, heads, headSize } = ATTENTION_PROBE_SHAPE;
  return `${batch}×${queries} queries × ${keys} keys, ${heads} heads of ${headSize}`;
}
