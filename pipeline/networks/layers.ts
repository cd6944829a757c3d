/**
 * Building blocks shared by SVD's four networks, emitted as ONNX ops in the forms that ORT's CPU
 * provider runs natively (measured on ONNX Runtime 1.30):
 * GroupNorm as Reshape → (centre) → InstanceNormalization → Reshape → affine, LayerNorm as
 * (centre) → LayerNormalization, attention as `com.microsoft.MultiHeadAttention` (or decomposed,
 * below), Linear as MatMul with the weight stored transposed.
 *
 * Precision: with `type: "float16"` activations and weights are float16, while every
 * normalisation computes its statistics in float32 (Cast around it, affine in float32) and
 * sinusoidal embeddings are computed in float32.
 *
 * ## Attention: the decision (issue 15)
 *
 * Two forms, chosen at conversion (`deno task convert --attention fused|decomposed`, recorded as
 * `attention` in model.json):
 *
 * - **fused** (default, what every provider should run): one `com.microsoft.MultiHeadAttention`
 *   per attention, Q, K and V as three separate `[B, S, heads·d]` inputs (ORT's `Q_K_V_BSNH`), no
 *   bias, no key padding mask, no attention bias, no past/present, default scale 1/√d, head size d
 *   64 at SVD-XT's size (temporal attention: S = frames, 25 for SVD-XT), float16 in fp16 models.
 *   This is unchanged from before issue 15: the CUDA provider sees the same node, and which of its
 *   kernels (flash / memory-efficient) it picks at 9,216 tokens is checked by the CUDA-coverage
 *   work, not here. CPU: exact (golden tests) and the fastest form measured.
 * - **decomposed**: per head `Softmax((q/√d) kᵀ) v` as Reshape/Transpose → MatMul → Softmax →
 *   MatMul, scores and softmax in float32. Exact on every provider, but it holds all S·L scores
 *   of a head (9,216² per head at SVD-XT: not for full size). For devices whose fused kernel is
 *   wrong.
 *
 * Why two: ORT 1.30's WebGPU provider computes MultiHeadAttention wrongly on adapters whose
 * subgroup size is 4 (SwiftShader, the CPU Vulkan driver of the GPU-kernel test tier), and nothing
 * in the node's form avoids that kernel without giving up the fused kernel everywhere:
 *
 * - Measured (tests/gpu/webgpu_attention_test.ts, single nodes against float64): exact with fewer
 *   than 32 queries (any keys) or at most 4 keys; wrong from 32 queries and 5 keys on: 1.5e-1 at
 *   32×5, 3.8e-2 at the issue's 77 tokens × 4 heads of 64 (batch 1 or 2 alike), 2.2e-2 at the
 *   tiny UNet's 128 tokens. K/V given as BNSH: same error. Packed QKV: not implemented on WebGPU or
 *   the CPU. Cross-attention over one key: exact (the softmax of one score is 1). Not scale (exact
 *   below 32 queries), not layout, not precision (float32 throughout).
 * - Cause, from ORT's source and confirmed by the thresholds above: sequences of 32+ queries go to
 *   the prefill FlashAttention kernel; on adapters with subgroups that are not NVIDIA or Apple it
 *   takes its subgroup branch, which for subgroup size ≤ 8 scores 8 keys per step via
 *   `subgroupShuffle` but advances by the subgroup size. With 4-wide subgroups keys 4–7 of each
 *   step are read from lanes that do not exist and counted twice. NVIDIA adapters take the
 *   shared-memory path (#28520), so WebGPU on an NVIDIA GPU is expected to be right; the runtime
 *   checks rather than trusts (below). Upstream: no matching report; the draft is
 *   docs/upstream/webgpu-flash-attention-subgroup-size-4.md (related: #28520, #26715, #27791).
 * - With decomposed attention the four tiny graphs match sgm's fixtures on WebGPU at the CPU
 *   tier's float32 tolerances (tests/gpu/webgpu_graphs_test.ts), and a whole generation
 *   (`i2v --width 128 --height 64 --seed 23`) differs from the CPU's by 1.9e-4 in the final latent
 *   (scale 4.06; issue 15 measured 0.276 with fused attention).
 * - The runtime refuses a wrong form instead of computing garbage: before serving a fused model on
 *   a GPU provider, `InferenceClient` runs one small MultiHeadAttention node (64 queries, 40 keys)
 *   against a float64 reference (`pipeline/runtime/attention_check.ts`) and fails the start with an
 *   `AttentionFormError` that names `--attention decomposed`.
 *
 * Normalisation inputs are centred first (`x − ReduceMean(x)`, see `centered`): ORT's WebGPU
 * InstanceNormalization and LayerNormalization take the variance as E[x²] − E[x]², which is wrong
 * when |mean| ≫ std (docs/upstream/webgpu-norm-one-pass-variance.md). The result is the same on
 * every provider; the CPU cost is within measurement noise (README).
 *
 * @module
 */

import type { GraphBuilder } from "../onnx/graph.ts";
import type { WeightBinder } from "../onnx/weight_binder.ts";

/** What every layer function needs: the graph, the weights, the compute type and attention form. */
export interface Net {
  readonly g: GraphBuilder;
  readonly w: WeightBinder;
  readonly type: "float32" | "float16";
  /** How {@linkcode attention} is emitted (see {@linkcode ATTENTION_FORMS}). */
  readonly attention: AttentionForm;
}

const FLOAT = 1;
const FLOAT16 = 10;

/** Casts `x` to float32 when the net computes in float16 (no-op otherwise). */
export function toFloat32(net: Net, x: string): string {
  return net.type === "float16" ? net.g.op("Cast", [x], { to: FLOAT }) : x;
}

/** Casts a float32 value to the net's compute type (no-op for float32 nets). */
export function toCompute(net: Net, x: string): string {
  return net.type === "float16" ? net.g.op("Cast", [x], { to: FLOAT16 }) : x;
}

/** A float constant in the compute type. */
export function constant(net: Net, values: readonly number[], dims?: readonly number[]): string {
  return net.type === "float16" ? net.g.constHalf(values, dims) : net.g.constFloat(values, dims);
}

/**
 * `y = x Wᵀ + b` over the last axis (torch `nn.Linear`). Keys `${key}.weight` [out, in] (stored
 * transposed as [in, out]) and `${key}.bias` [out].
 *
 * @param x [..., inFeatures]
 * @returns [..., outFeatures]
 */
export function linear(
  net: Net,
  x: string,
  key: string,
  inFeatures: number,
  outFeatures: number,
  options: { bias?: boolean; type?: "float32" | "float16" } = {},
): string {
  const type = options.type ?? net.type;
  const weight = net.w.take(`${key}.weight`, [outFeatures, inFeatures], { transpose: true, type });
  const y = net.g.op("MatMul", [x, weight]);
  if (options.bias === false) return y;
  return net.g.op("Add", [y, net.w.take(`${key}.bias`, [outFeatures], { type })]);
}

/**
 * 2-D convolution (torch `nn.Conv2d`). Keys `${key}.weight` [out, in, kh, kw], `${key}.bias`.
 *
 * @param x [N, in, H, W]
 * @param pads [top, left, bottom, right]
 */
export function conv2d(
  net: Net,
  x: string,
  key: string,
  inChannels: number,
  outChannels: number,
  kernel: number,
  options: { stride?: number; pads?: readonly number[]; bias?: boolean } = {},
): string {
  const pad = (kernel - 1) / 2;
  const weight = net.w.take(`${key}.weight`, [outChannels, inChannels, kernel, kernel]);
  const inputs = [x, weight];
  if (options.bias !== false) inputs.push(net.w.take(`${key}.bias`, [outChannels]));
  return net.g.op("Conv", inputs, {
    kernel_shape: [kernel, kernel],
    strides: [options.stride ?? 1, options.stride ?? 1],
    pads: [...(options.pads ?? [pad, pad, pad, pad])],
  });
}

/**
 * Temporal convolution of a (kt, 1, 1) Conv3d with zero padding in time, run as a (kt, 1) Conv2d
 * over frames × pixels: the checkpoint's `[out, in, kt, 1, 1]` bytes declared as `[out, in, kt, 1]`.
 *
 * @param x [B, in, T, H·W]
 * @returns [B, out, T, H·W]
 */
export function temporalConv(
  net: Net,
  x: string,
  key: string,
  inChannels: number,
  outChannels: number,
  kernelT: number,
): string {
  const weight = net.w.take(`${key}.weight`, [outChannels, inChannels, kernelT, 1, 1], {
    as: [outChannels, inChannels, kernelT, 1],
  });
  const bias = net.w.take(`${key}.bias`, [outChannels]);
  const pad = (kernelT - 1) / 2;
  return net.g.op("Conv", [x, weight, bias], {
    kernel_shape: [kernelT, 1],
    pads: [pad, 0, pad, 0],
  });
}

/**
 * torch `nn.GroupNorm(groups, channels, eps)` over a tensor of any rank ≥ 3 whose axis 1 is the
 * channel axis; statistics span every other axis of the group (for a 5-D video tensor they span
 * all frames). Computed in float32. Keys `${key}.weight`, `${key}.bias` [channels].
 *
 * @param x [N, C, ...] of the given `rank`
 */
export function groupNorm(
  net: Net,
  x: string,
  key: string,
  channels: number,
  eps: number,
  rank: number,
  groups = 32,
): string {
  const g = net.g;
  const xf = toFloat32(net, x);
  const shape = g.op("Shape", [xf]);
  // [N, C, ...] -> [N, G, C/G · ...]
  const grouped = centered(net, g.op("Reshape", [xf, g.constInt([0, groups, -1])]));
  const normed = g.op("InstanceNormalization", [
    grouped,
    g.constFloat(new Array(groups).fill(1)),
    g.constFloat(new Array(groups).fill(0)),
  ], { epsilon: { float: eps } });
  const back = g.op("Reshape", [normed, shape]);
  const affineDims = [channels, ...new Array(rank - 2).fill(1)];
  const gamma = net.w.take(`${key}.weight`, [channels], { type: "float32", as: affineDims });
  const beta = net.w.take(`${key}.bias`, [channels], { type: "float32", as: affineDims });
  return toCompute(net, g.op("Add", [g.op("Mul", [back, gamma]), beta]));
}

/** torch `nn.LayerNorm(dim, eps)` over the last axis, computed in float32. */
export function layerNorm(net: Net, x: string, key: string, dim: number, eps = 1e-5): string {
  const gamma = net.w.take(`${key}.weight`, [dim], { type: "float32" });
  const beta = net.w.take(`${key}.bias`, [dim], { type: "float32" });
  const y = net.g.op("LayerNormalization", [centered(net, toFloat32(net, x)), gamma, beta], {
    axis: -1,
    epsilon: { float: eps },
  });
  return toCompute(net, y);
}

/**
 * `x − mean(x)` over the last axis, so that a normalisation after it never subtracts two large,
 * nearly equal numbers: ORT's WebGPU InstanceNormalization and LayerNormalization compute the
 * variance as E[x²] − E[x]², which loses every digit when |mean| ≫ std (measured: mean 10, std
 * 0.1 → 6e-3 off; mean 100 → 1.5). The normalisation's own result is unchanged.
 */
function centered(net: Net, x: string): string {
  const g = net.g;
  return g.op("Sub", [x, g.op("ReduceMean", [x, g.constInt([-1])], { keepdims: 1 })]);
}

/** SiLU: `x · sigmoid(x)` (fused by ORT at load). */
export function silu(net: Net, x: string): string {
  return net.g.op("Mul", [x, net.g.op("Sigmoid", [x])]);
}

/** Exact (erf) GELU. */
export function gelu(net: Net, x: string): string {
  return net.g.op("Gelu", [x], { approximate: "none" });
}

/**
 * sgm `FeedForward(dim, glu=True)`: GEGLU `net.0.proj` Linear(dim, 2·inner), first half value,
 * second half gate, `a · gelu(g)`, then `net.2` Linear(inner, dimOut). inner = 4·dim.
 */
export function feedForward(net: Net, x: string, key: string, dim: number, dimOut = dim): string {
  const inner = 4 * dim;
  const projected = linear(net, x, `${key}.net.0.proj`, dim, 2 * inner);
  const [value, gate] = net.g.node("Split", [projected, net.g.constInt([inner, inner])], {
    axis: -1,
  }, { outputs: 2 });
  const h = net.g.op("Mul", [value, gelu(net, gate)]);
  return linear(net, h, `${key}.net.2`, inner, dimOut);
}

/**
 * How {@linkcode attention} is emitted. See the module doc for which provider computes which form
 * right, and the evidence.
 *
 * - `fused`: one `com.microsoft.MultiHeadAttention` node (the default).
 * - `decomposed`: per-head MatMul → Softmax → MatMul, which holds all S·L scores of a head.
 */
export const ATTENTION_FORMS = ["fused", "decomposed"] as const;

/** One of {@linkcode ATTENTION_FORMS}. */
export type AttentionForm = typeof ATTENTION_FORMS[number];

/**
 * Softmax attention `softmax(q kᵀ / √d) v` per head, d = width / heads, in the net's attention
 * form. Both forms take and return the same tensors.
 *
 * @param q [B, S, heads·d]
 * @param k [B, L, heads·d]
 * @param v [B, L, heads·d]
 * @param width heads·d
 * @returns [B, S, heads·d]
 */
export function attention(
  net: Net,
  q: string,
  k: string,
  v: string,
  heads: number,
  width: number,
): string {
  if (width % heads !== 0) {
    throw new RangeError(`Attention width ${width} is not a multiple of ${heads} heads`);
  }
  if (net.attention === "fused") {
    // Q, K, V as three [B, S, N·H] inputs (ORT's Q_K_V_BSNH), no bias, mask or past: the form
    // every provider's fused kernel takes. Default scale 1/√d.
    return net.g.op("MultiHeadAttention", [q, k, v], { num_heads: heads }, "com.microsoft");
  }
  return decomposedAttention(net, q, k, v, heads, width / heads);
}

/** `softmax((q / √d) kᵀ) v` as MatMul → Softmax → MatMul; scores and softmax in float32. */
function decomposedAttention(
  net: Net,
  q: string,
  k: string,
  v: string,
  heads: number,
  d: number,
): string {
  const g = net.g;
  const perHead = g.constInt([0, 0, heads, d]);
  // [B, S, heads·d] -> [B, S, heads, d] -> [B, heads, S, d]
  const qh = g.op("Transpose", [g.op("Reshape", [q, perHead])], { perm: [0, 2, 1, 3] });
  // [B, L, heads·d] -> [B, L, heads, d] -> [B, heads, d, L]
  const kt = g.op("Transpose", [g.op("Reshape", [k, perHead])], { perm: [0, 2, 3, 1] });
  // [B, L, heads·d] -> [B, L, heads, d] -> [B, heads, L, d]
  const vh = g.op("Transpose", [g.op("Reshape", [v, perHead])], { perm: [0, 2, 1, 3] });
  // Scaling q before the product keeps float16 scores in range (torch's SDPA scales q·kᵀ).
  const scaled = g.op("Mul", [qh, constant(net, [1 / Math.sqrt(d)], [])]);
  const scores = toFloat32(net, g.op("MatMul", [scaled, kt])); // [B, heads, S, L]
  const weights = toCompute(net, g.op("Softmax", [scores], { axis: -1 }));
  const attended = g.op("MatMul", [weights, vh]); // [B, heads, S, d]
  // [B, heads, S, d] -> [B, S, heads, d] -> [B, S, heads·d]
  return g.op("Reshape", [
    g.op("Transpose", [attended], { perm: [0, 2, 1, 3] }),
    g.constInt([0, 0, heads * d]),
  ]);
}

/**
 * sgm `timestep_embedding(t, dim, max_period)`: `[cos(t·f), sin(t·f)]`, cosine first,
 * `f_k = exp(-ln(max_period)·k/half)`; diffusers `Timesteps(dim, flip_sin_to_cos=True,
 * downscale_freq_shift=0)`. Always float32.
 *
 * @param t [N] float32
 * @returns [N, dim] float32
 */
export function timestepEmbedding(net: Net, t: string, dim: number, maxPeriod = 10000): string {
  const g = net.g;
  const args = g.op("Mul", [
    g.op("Unsqueeze", [t, g.constInt([1])]),
    g.constFloat(sinusoidFrequencies(dim, maxPeriod), [1, dim / 2]),
  ]);
  return g.op("Concat", [g.op("Cos", [args]), g.op("Sin", [args])], { axis: 1 });
}

/** The float32 frequencies of sgm's `timestep_embedding`, rounded as torch computes them. */
export function sinusoidFrequencies(dim: number, maxPeriod = 10000): number[] {
  const half = Math.floor(dim / 2);
  const scale = Math.fround(-Math.log(maxPeriod));
  return Array.from(
    { length: half },
    (_, k) => Math.fround(Math.exp(Math.fround(Math.fround(scale * k) / half))),
  );
}
