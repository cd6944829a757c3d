/**
 * The OpenCLIP ViT image encoder of SVD's conditioner (embedder 0, `FrozenOpenCLIPImageEmbedder`):
 * open_clip `VisionTransformer` with `pool_type="tok"` and its output projection, as one ONNX
 * graph. diffusers: `CLIPVisionModelWithProjection(...).image_embeds`.
 *
 * Initializers are named by the sgm checkpoint keys under {@linkcode IMAGE_ENCODER_PREFIX}.
 * Stored differently from the checkpoint (everything else is byte-identical):
 * - `*.attn.in_proj_weight` [3·width, width], `*.attn.out_proj.weight`, `*.mlp.c_fc.weight`,
 *   `*.mlp.c_proj.weight`: transposed to [in, out] for MatMul (torch Linear computes `x Wᵀ`).
 * - `class_embedding` [width] declared as [1, 1, width]; `proj` is used as stored (`x @ proj`).
 *
 * @module
 */

import type { ImageEncoderConfig } from "../config/network_configs.ts";
import type { WeightSource } from "../weights/weight_source.ts";
import { type BuildOptions, type BuiltNetwork, startNetwork } from "./built_network.ts";
import { attention, gelu, layerNorm, linear, type Net, toCompute, toFloat32 } from "./layers.ts";

/** Checkpoint prefix of the vision tower in sgm SVD checkpoints. */
export const IMAGE_ENCODER_PREFIX = "conditioner.embedders.0.open_clip.model.visual.";

/** open_clip's LayerNorm eps (torch default). */
const LAYER_NORM_EPS = 1e-5;

/**
 * Builds the image encoder graph: input `pixel_values` float32 [N, 3, imageSize, imageSize],
 * already CLIP-preprocessed (see `clipPreprocess`); output `image_embeds` float32 [N, embedDim],
 * the projected CLS token, not L2-normalised (SVD uses it as is, as cross-attention context).
 *
 * Every key under `options.prefix` (default {@linkcode IMAGE_ENCODER_PREFIX}) is used exactly once
 * and shape-checked; a missing, misshaped or unused key throws `WeightsMismatchError` naming it.
 *
 * @example
 * ```ts
 * using weights = await CheckpointWeights.open(["svd.safetensors"]);
 * const { graph } = buildImageEncoder(FULL.imageEncoder, weights, { precision: "fp16" });
 * await writeOnnxModel(graph, "models/image_encoder.onnx");
 * ```
 */
export function buildImageEncoder(
  config: ImageEncoderConfig,
  source: WeightSource,
  options: BuildOptions & { prefix?: string } = {},
): BuiltNetwork {
  const { width, headWidth, imageSize, embedDim } = config;
  if (width % headWidth !== 0) {
    throw new RangeError(
      `Image encoder width ${width} is not a multiple of head_width ${headWidth}`,
    );
  }
  const prefix = options.prefix ?? IMAGE_ENCODER_PREFIX;
  const net = startNetwork("image_encoder", source, options);
  const g = net.g;

  const pixels = g.input("pixel_values", "float32", ["N", 3, imageSize, imageSize]);
  let x = patchEmbedding(net, toCompute(net, pixels), prefix, config);
  x = layerNorm(net, x, `${prefix}ln_pre`, width, LAYER_NORM_EPS);
  for (let i = 0; i < config.layers; i++) {
    x = residualAttentionBlock(net, x, `${prefix}transformer.resblocks.${i}`, config);
  }
  // pool_type "tok": open_clip applies ln_post to every token, then keeps token 0; LayerNorm is
  // per token, so normalising only the CLS token gives the same values.
  // [N, 1 + grid², width] -> [N, width]
  const cls = g.op("Gather", [x, g.constInt([0], [])], { axis: 1 });
  const pooled = layerNorm(net, cls, `${prefix}ln_post`, width, LAYER_NORM_EPS);
  // `proj` [width, embedDim] is applied as `x @ proj` (a Parameter, not a Linear): no transpose.
  const proj = net.w.take(`${prefix}proj`, [width, embedDim]);
  const embeds = toFloat32(net, g.op("MatMul", [pooled, proj])); // [N, embedDim]
  g.output("image_embeds", embeds, "float32", ["N", embedDim]);

  net.w.assertAllUsed([prefix]);
  return { graph: g, weights: net.w };
}

/**
 * `conv1` (patch × patch, stride patch, no bias) → tokens → prepend `class_embedding` →
 * `+ positional_embedding`.
 *
 * @param pixels [N, 3, imageSize, imageSize] in the compute type
 * @returns [N, 1 + grid², width], grid = imageSize / patchSize
 */
function patchEmbedding(
  net: Net,
  pixels: string,
  prefix: string,
  config: ImageEncoderConfig,
): string {
  const g = net.g;
  const { width, patchSize, imageSize } = config;
  const grid = Math.floor(imageSize / patchSize);
  const tokens = grid * grid;
  const kernel = net.w.take(`${prefix}conv1.weight`, [width, 3, patchSize, patchSize]);
  const patches = g.op("Conv", [pixels, kernel], {
    kernel_shape: [patchSize, patchSize],
    strides: [patchSize, patchSize],
  }); // [N, width, grid, grid]
  // [N, width, grid, grid] -> [N, width, grid²] -> [N, grid², width]
  const flat = g.op("Reshape", [patches, g.constInt([0, width, tokens])]);
  const sequence = g.op("Transpose", [flat], { perm: [0, 2, 1] });
  // class_embedding [width] viewed as [1, 1, width], broadcast to [N, 1, width]
  const classEmbedding = net.w.take(`${prefix}class_embedding`, [width], { as: [1, 1, width] });
  const batch = g.op("Slice", [g.op("Shape", [pixels]), g.constInt([0]), g.constInt([1])]);
  const classShape = g.op("Concat", [batch, g.constInt([1, width])], { axis: 0 });
  const classToken = g.op("Expand", [classEmbedding, classShape]);
  // [N, 1, width] ++ [N, grid², width] -> [N, 1 + grid², width]
  const withClass = g.op("Concat", [classToken, sequence], { axis: 1 });
  const positions = net.w.take(`${prefix}positional_embedding`, [tokens + 1, width]);
  return g.op("Add", [withClass, positions]);
}

/**
 * open_clip `ResidualAttentionBlock`: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))` with
 * `mlp = c_proj(gelu(c_fc(·)))`, exact GELU.
 *
 * @param x [N, S, width]
 * @returns [N, S, width]
 */
function residualAttentionBlock(
  net: Net,
  x: string,
  key: string,
  config: ImageEncoderConfig,
): string {
  const g = net.g;
  const { width } = config;
  const mlpWidth = Math.trunc(width * config.mlpRatio); // open_clip: int(width * mlp_ratio)
  const attended = selfAttention(
    net,
    layerNorm(net, x, `${key}.ln_1`, width, LAYER_NORM_EPS),
    key,
    config,
  );
  x = g.op("Add", [x, attended]);
  const h = layerNorm(net, x, `${key}.ln_2`, width, LAYER_NORM_EPS);
  const hidden = gelu(net, linear(net, h, `${key}.mlp.c_fc`, width, mlpWidth));
  return g.op("Add", [x, linear(net, hidden, `${key}.mlp.c_proj`, mlpWidth, width)]);
}

/**
 * torch `nn.MultiheadAttention` self-attention: the stacked `in_proj_weight` [3·width, width]
 * (rows q, then k, then v) as one MatMul to 3·width, split into q, k, v; scale 1/√head_width;
 * then `out_proj`.
 *
 * @param x [N, S, width]
 * @returns [N, S, width]
 */
function selfAttention(net: Net, x: string, key: string, config: ImageEncoderConfig): string {
  const g = net.g;
  const { width, headWidth } = config;
  const inProj = net.w.take(`${key}.attn.in_proj_weight`, [3 * width, width], { transpose: true });
  const inBias = net.w.take(`${key}.attn.in_proj_bias`, [3 * width]);
  const qkv = g.op("Add", [g.op("MatMul", [x, inProj]), inBias]); // [N, S, 3·width]
  // [N, S, 3·width] -> 3 × [N, S, width] (= [N, S, heads·headWidth])
  const [q, k, v] = g.node("Split", [qkv, g.constInt([width, width, width])], { axis: -1 }, {
    outputs: 3,
  });
  const attended = attention(net, q, k, v, width / headWidth, width);
  return linear(net, attended, `${key}.attn.out_proj`, width, width);
}
