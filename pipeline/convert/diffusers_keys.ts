/**
 * Tensor names of a diffusers-format SVD folder ↔ sgm checkpoint keys.
 *
 * A diffusers folder (`stabilityai/stable-video-diffusion-img2vid(-xt)`) holds three files:
 * `unet/` (`UNetSpatioTemporalConditionModel`), `vae/` (`AutoencoderKLTemporalDecoder` = `Encoder` +
 * `quant_conv` + `TemporalDecoder`, no `post_quant_conv`) and `image_encoder/` (transformers
 * `CLIPVisionModelWithProjection`). The graph builders ask for sgm keys, so every diffusers tensor is
 * renamed to the sgm key it holds, and a few are transformed on the way:
 *
 * | transform | where | diffusers → sgm |
 * | --- | --- | --- |
 * | `linearToConv1x1` | VAE mid attention `to_q/to_k/to_v/to_out.0` weights | Linear `[o, i]` → 1×1 conv `q/k/v/proj_out` `[o, i, 1, 1]` |
 * | `transpose` | CLIP `visual_projection.weight` | `[embed, width]` → `proj` `[width, embed]` |
 * | `concatRows` | CLIP `self_attn.{q,k,v}_proj` | three `[w, w]` / `[w]` → `attn.in_proj_weight` `[3w, w]` / `in_proj_bias` `[3w]`, rows q, k, v |
 *
 * Names were derived from the model classes, not from diffusers' `convert_svd_to_diffusers.py`
 * (a draft that reads the VAE from the wrong prefix): diffusers `unet_spatio_temporal_condition.py`,
 * `unet_3d_blocks.py` (`CrossAttnDownBlockSpatioTemporal`, `UNetMidBlockSpatioTemporal`,
 * `MidBlockTemporalDecoder`, `UpBlockTemporalDecoder`), `resnet.py` (`SpatioTemporalResBlock` =
 * `spatial_res_block` + `temporal_res_block` + `time_mixer`), `transformer_temporal.py`
 * (`TransformerSpatioTemporalModel`), `attention.py` (`TemporalBasicTransformerBlock`),
 * `autoencoder_kl_temporal_decoder.py` (`TemporalDecoder`: `conv_out` Conv2d + `time_conv_out`
 * Conv3d), `vae.py` (`Encoder`), `unet_2d_blocks.py` (`DownEncoderBlock2D`, `UNetMidBlock2D`), and
 * transformers `modeling_clip.py`. The UNet block arithmetic agrees with the UNet part of the
 * conversion script.
 *
 * The mapping is a tree of small rules ({@linkcode Mapper}) read in both directions, so
 * {@linkcode diffusersToSgm} (used to open folders) and {@linkcode sgmToDiffusers} (used to write
 * them, e.g. in tests) come from one description.
 *
 * @module
 */

/** The three weight files of a diffusers SVD folder. */
export type DiffusersComponent = "unet" | "vae" | "image_encoder";

/** How diffusers tensor(s) become one sgm tensor. */
export type Transform =
  /** Same shape, same values. */
  | "copy"
  /** Linear `[o, i]` → 1×1 conv `[o, i, 1, 1]` (same values). */
  | "linearToConv1x1"
  /** `[a, b]` → `[b, a]`. */
  | "transpose"
  /** Three tensors (q, k, v) stacked along the first axis. */
  | "concatRows";

/** Where a diffusers tensor goes. */
export interface SgmTarget {
  /** Full sgm key, e.g. `model.diffusion_model.input_blocks.1.0.in_layers.0.weight`. */
  readonly key: string;
  readonly transform: Transform;
  /** For `concatRows`: the row block this tensor fills (0 = q, 1 = k, 2 = v). */
  readonly part?: number;
}

/** Where an sgm tensor comes from. */
export interface DiffusersSource {
  readonly component: DiffusersComponent;
  /** Keys in the component's file: one, or three (q, k, v) for `concatRows`. */
  readonly keys: readonly string[];
  readonly transform: Transform;
}

/** Structure of the folder that the names alone do not tell. */
export interface DiffusersLayout {
  /**
   * UNet up blocks that carry attentions. Their upsampler is sgm `output_blocks.n.2.conv`; in a
   * block without attention it is `output_blocks.n.1.conv`. SVD: `UpBlockSpatioTemporal` then three
   * `CrossAttnUpBlockSpatioTemporal`, i.e. blocks 1, 2, 3.
   */
  readonly unetUpBlocksWithAttention: readonly number[];
  /** Resolution levels of the VAE (`len(block_out_channels)`, 4 for SVD). The decoder's
   * `up_blocks` run in reverse: diffusers `up_blocks.0` is sgm `up.{levels - 1}`. */
  readonly vaeLevels: number;
}

/** The layout of the released SVD / SVD-XT folders (and of the tiny fixture). */
export const SVD_LAYOUT: DiffusersLayout = { unetUpBlocksWithAttention: [1, 2, 3], vaeLevels: 4 };

/** sgm prefixes of the four networks the converter builds. */
export const SGM_PREFIXES = {
  unet: "model.diffusion_model.",
  vaeDecoder: "first_stage_model.decoder.",
  vaeEncoder: "conditioner.embedders.3.encoder.encoder.",
  quantConv: "conditioner.embedders.3.encoder.quant_conv.",
  imageEncoder: "conditioner.embedders.0.open_clip.model.visual.",
} as const;

/**
 * Tensors a diffusers folder may hold that have no sgm counterpart and are skipped on purpose.
 * `position_ids` is the constant `arange(257)` buffer of `CLIPVisionEmbeddings`; transformers stores
 * it non-persistently since 4.31, but files saved by older versions contain it.
 */
export const IGNORED_DIFFUSERS_KEYS: Readonly<Record<DiffusersComponent, readonly string[]>> = {
  unet: [],
  vae: [],
  image_encoder: ["vision_model.embeddings.position_ids"],
};

/**
 * The sgm tensor that diffusers tensor `key` of `component` holds, or undefined when the mapping
 * does not know the name.
 *
 * @example
 * ```ts
 * diffusersToSgm("unet", "down_blocks.0.resnets.1.spatial_res_block.conv1.weight");
 * // { key: "model.diffusion_model.input_blocks.2.0.in_layers.2.weight", transform: "copy" }
 * ```
 */
export function diffusersToSgm(
  component: DiffusersComponent,
  key: string,
  layout: DiffusersLayout = SVD_LAYOUT,
): SgmTarget | undefined {
  const leaf = mappers(layout)[component].forward(key);
  if (!leaf) return undefined;
  return leaf.part === undefined
    ? { key: leaf.key, transform: leaf.transform }
    : { key: leaf.key, transform: leaf.transform, part: leaf.part };
}

/**
 * The diffusers tensor(s) that sgm key `key` comes from, or undefined for keys outside the four
 * inference networks (`first_stage_model.encoder.*`, the CLIP text leftovers, ...).
 *
 * @example
 * ```ts
 * sgmToDiffusers("conditioner.embedders.0.open_clip.model.visual.transformer.resblocks.0.attn.in_proj_bias");
 * // { component: "image_encoder", transform: "concatRows", keys: [
 * //   "vision_model.encoder.layers.0.self_attn.q_proj.bias", "...k_proj.bias", "...v_proj.bias"] }
 * ```
 */
export function sgmToDiffusers(
  key: string,
  layout: DiffusersLayout = SVD_LAYOUT,
): DiffusersSource | undefined {
  const all = mappers(layout);
  for (const component of ["unet", "vae", "image_encoder"] as const) {
    const hit = all[component].inverse(key);
    if (hit) return { component, keys: hit.keys, transform: hit.transform };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Rule combinators. A Mapper renames a key suffix in both directions.

interface Leaf {
  readonly key: string;
  readonly transform: Transform;
  readonly part?: number;
}

interface InverseLeaf {
  readonly keys: readonly string[];
  readonly transform: Transform;
}

/** A renaming of key suffixes: diffusers → sgm (`forward`) and sgm → diffusers (`inverse`). */
interface Mapper {
  forward(key: string): Leaf | undefined;
  inverse(key: string): InverseLeaf | undefined;
}

/** One exact renaming: diffusers name(s) (three for `concatRows`) ↔ one sgm name. */
interface Rule {
  readonly diffusers: readonly string[];
  readonly sgm: string;
  readonly transform: Transform;
}

/** A table of exact renamings. */
function leaves(rules: readonly Rule[]): Mapper {
  const forward = new Map<string, Leaf>();
  const inverse = new Map<string, InverseLeaf>();
  for (const rule of rules) {
    rule.diffusers.forEach((name, part) => {
      if (forward.has(name)) throw new Error(`Duplicate diffusers rule "${name}"`);
      forward.set(
        name,
        rule.transform === "concatRows"
          ? { key: rule.sgm, transform: rule.transform, part }
          : { key: rule.sgm, transform: rule.transform },
      );
    });
    if (inverse.has(rule.sgm)) throw new Error(`Duplicate sgm rule "${rule.sgm}"`);
    inverse.set(rule.sgm, { keys: rule.diffusers, transform: rule.transform });
  }
  return { forward: (key) => forward.get(key), inverse: (key) => inverse.get(key) };
}

/** The first mapper that knows the key. */
function any(...options: readonly Mapper[]): Mapper {
  return {
    forward(key) {
      for (const m of options) {
        const hit = m.forward(key);
        if (hit) return hit;
      }
      return undefined;
    },
    inverse(key) {
      for (const m of options) {
        const hit = m.inverse(key);
        if (hit) return hit;
      }
      return undefined;
    },
  };
}

/** Keys under diffusers prefix `d` ↔ keys under sgm prefix `s`, the rest renamed by `inner`. */
function under(d: string, s: string, inner: Mapper): Mapper {
  return {
    forward(key) {
      if (!key.startsWith(d)) return undefined;
      const hit = inner.forward(key.slice(d.length));
      return hit && { ...hit, key: s + hit.key };
    },
    inverse(key) {
      if (!key.startsWith(s)) return undefined;
      const hit = inner.inverse(key.slice(s.length));
      return hit && { ...hit, keys: hit.keys.map((k) => d + k) };
    },
  };
}

type Renumber = (indices: readonly number[]) => readonly number[] | undefined;

/**
 * Numbered prefixes: `d` and `s` are templates with `#` for integers (e.g. `down_blocks.#.resnets.#.`
 * ↔ `input_blocks.#.0.`); `toSgm` and `toDiffusers` convert the numbers, or return undefined when
 * the numbers are out of the structure (so that a block of the wrong kind is not matched).
 */
function renumber(
  d: string,
  s: string,
  toSgm: Renumber,
  toDiffusers: Renumber,
  inner: Mapper,
): Mapper {
  const dPattern = template(d);
  const sPattern = template(s);
  return {
    forward(key) {
      const m = dPattern.exec(key);
      if (!m) return undefined;
      const numbers = toSgm(m.slice(1).map(Number));
      if (!numbers) return undefined;
      const hit = inner.forward(key.slice(m[0].length));
      return hit && { ...hit, key: fill(s, numbers) + hit.key };
    },
    inverse(key) {
      const m = sPattern.exec(key);
      if (!m) return undefined;
      const numbers = toDiffusers(m.slice(1).map(Number));
      if (!numbers) return undefined;
      const hit = inner.inverse(key.slice(m[0].length));
      return hit && { ...hit, keys: hit.keys.map((k) => fill(d, numbers) + k) };
    },
  };
}

function template(t: string): RegExp {
  const escaped = t.split("#").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp("^" + escaped.join("(0|[1-9]\\d*)"));
}

function fill(t: string, numbers: readonly number[]): string {
  let i = 0;
  return t.replace(/#/g, () => String(numbers[i++]));
}

const same: Renumber = (n) => n;

// Rule builders.

/** `.weight` and `.bias` of a module, copied. */
function wb(d: string, s: string): Rule[] {
  return [
    { diffusers: [`${d}.weight`], sgm: `${s}.weight`, transform: "copy" },
    { diffusers: [`${d}.bias`], sgm: `${s}.bias`, transform: "copy" },
  ];
}

/** One tensor under its full name. */
function tensor(d: string, s: string, transform: Transform = "copy"): Rule {
  return { diffusers: [d], sgm: s, transform };
}

// ---------------------------------------------------------------------------------------------
// UNet (UNetSpatioTemporalConditionModel ↔ sgm VideoUNet).

/** Resnets (and attentions) per down block; up blocks have one more. 2 for SVD. */
const LAYERS_PER_BLOCK = 2;
const STRIDE = LAYERS_PER_BLOCK + 1;

/** `SpatioTemporalResBlock` ↔ sgm `VideoResBlock` (resnet.py; sgm `video_model.py`). */
const UNET_RESNET = leaves([
  ...wb("spatial_res_block.norm1", "in_layers.0"),
  ...wb("spatial_res_block.conv1", "in_layers.2"),
  ...wb("spatial_res_block.time_emb_proj", "emb_layers.1"),
  ...wb("spatial_res_block.norm2", "out_layers.0"),
  ...wb("spatial_res_block.conv2", "out_layers.3"),
  ...wb("spatial_res_block.conv_shortcut", "skip_connection"),
  ...wb("temporal_res_block.norm1", "time_stack.in_layers.0"),
  ...wb("temporal_res_block.conv1", "time_stack.in_layers.2"),
  ...wb("temporal_res_block.time_emb_proj", "time_stack.emb_layers.1"),
  ...wb("temporal_res_block.norm2", "time_stack.out_layers.0"),
  ...wb("temporal_res_block.conv2", "time_stack.out_layers.3"),
  tensor("time_mixer.mix_factor", "time_mixer.mix_factor"),
]);

/** Attention (q, k, v without bias; `to_out.0` with bias), same names on both sides. */
function attentionRules(name: string): Rule[] {
  return [
    tensor(`${name}.to_q.weight`, `${name}.to_q.weight`),
    tensor(`${name}.to_k.weight`, `${name}.to_k.weight`),
    tensor(`${name}.to_v.weight`, `${name}.to_v.weight`),
    ...wb(`${name}.to_out.0`, `${name}.to_out.0`),
  ];
}

/** `BasicTransformerBlock`: norm1, attn1, norm2, attn2, norm3, ff (GEGLU `net.0.proj`, `net.2`). */
const BASIC_BLOCK_RULES: Rule[] = [
  ...wb("norm1", "norm1"),
  ...attentionRules("attn1"),
  ...wb("norm2", "norm2"),
  ...attentionRules("attn2"),
  ...wb("norm3", "norm3"),
  ...wb("ff.net.0.proj", "ff.net.0.proj"),
  ...wb("ff.net.2", "ff.net.2"),
];

/** `TemporalBasicTransformerBlock` adds norm_in and ff_in before the basic block. */
const TEMPORAL_BLOCK_RULES: Rule[] = [
  ...wb("norm_in", "norm_in"),
  ...wb("ff_in.net.0.proj", "ff_in.net.0.proj"),
  ...wb("ff_in.net.2", "ff_in.net.2"),
  ...BASIC_BLOCK_RULES,
];

/** `TransformerSpatioTemporalModel` ↔ sgm `SpatialVideoTransformer`. */
const UNET_ATTENTION = any(
  leaves([
    ...wb("norm", "norm"),
    ...wb("proj_in", "proj_in"),
    ...wb("proj_out", "proj_out"),
    ...wb("time_pos_embed.linear_1", "time_pos_embed.0"),
    ...wb("time_pos_embed.linear_2", "time_pos_embed.2"),
    tensor("time_mixer.mix_factor", "time_mixer.mix_factor"),
  ]),
  renumber("transformer_blocks.#.", "transformer_blocks.#.", same, same, leaves(BASIC_BLOCK_RULES)),
  renumber(
    "temporal_transformer_blocks.#.",
    "time_stack.#.",
    same,
    same,
    leaves(TEMPORAL_BLOCK_RULES),
  ),
);

/** diffusers (block b, layer j) of a down block ↔ sgm `input_blocks.n`, n = 1 + 3b + j, j < 2. */
const downLayer: Renumber = ([b, j]) => (j < LAYERS_PER_BLOCK ? [1 + STRIDE * b + j] : undefined);
const inputBlock: Renumber = ([n]) => {
  const j = (n - 1) % STRIDE;
  return n >= 1 && j < LAYERS_PER_BLOCK ? [(n - 1 - j) / STRIDE, j] : undefined;
};
/** diffusers up block b, layer j ↔ sgm `output_blocks.n`, n = 3b + j, j ≤ 2. */
const upLayer: Renumber = ([b, j]) => (j < STRIDE ? [STRIDE * b + j] : undefined);
const outputBlock: Renumber = ([n]) => [Math.floor(n / STRIDE), n % STRIDE];

function unetMapper(layout: DiffusersLayout): Mapper {
  const withAttention = new Set(layout.unetUpBlocksWithAttention);
  const conv = leaves(wb("conv", "conv"));
  return any(
    leaves([
      ...wb("time_embedding.linear_1", "time_embed.0"),
      ...wb("time_embedding.linear_2", "time_embed.2"),
      ...wb("add_embedding.linear_1", "label_emb.0.0"),
      ...wb("add_embedding.linear_2", "label_emb.0.2"),
      ...wb("conv_in", "input_blocks.0.0"),
      ...wb("conv_norm_out", "out.0"),
      ...wb("conv_out", "out.2"),
    ]),
    renumber("down_blocks.#.resnets.#.", "input_blocks.#.0.", downLayer, inputBlock, UNET_RESNET),
    renumber(
      "down_blocks.#.attentions.#.",
      "input_blocks.#.1.",
      downLayer,
      inputBlock,
      UNET_ATTENTION,
    ),
    // Downsample2D(name="op") keeps its conv as `.conv`; sgm's Downsample calls it `op`.
    renumber(
      "down_blocks.#.downsamplers.0.",
      "input_blocks.#.0.",
      ([b]) => [STRIDE * (b + 1)],
      ([n]) => (n > 0 && n % STRIDE === 0 ? [n / STRIDE - 1] : undefined),
      leaves(wb("conv", "op")),
    ),
    under("mid_block.resnets.0.", "middle_block.0.", UNET_RESNET),
    under("mid_block.attentions.0.", "middle_block.1.", UNET_ATTENTION),
    under("mid_block.resnets.1.", "middle_block.2.", UNET_RESNET),
    renumber("up_blocks.#.resnets.#.", "output_blocks.#.0.", upLayer, outputBlock, UNET_RESNET),
    renumber(
      "up_blocks.#.attentions.#.",
      "output_blocks.#.1.",
      upLayer,
      outputBlock,
      UNET_ATTENTION,
    ),
    // The upsampler follows the last layer's resnet (and attention, where the block has one).
    renumber(
      "up_blocks.#.upsamplers.0.",
      "output_blocks.#.#.",
      ([b]) => [STRIDE * b + LAYERS_PER_BLOCK, withAttention.has(b) ? 2 : 1],
      ([n, slot]) =>
        n % STRIDE === LAYERS_PER_BLOCK && (slot === 1 || slot === 2)
          ? [(n - LAYERS_PER_BLOCK) / STRIDE]
          : undefined,
      conv,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// VAE (AutoencoderKLTemporalDecoder ↔ sgm Encoder + quant_conv and VideoDecoder).

/** `ResnetBlock2D` (no time embedding) ↔ sgm `ResnetBlock`. */
const VAE_RESNET_RULES: Rule[] = [
  ...wb("norm1", "norm1"),
  ...wb("conv1", "conv1"),
  ...wb("norm2", "norm2"),
  ...wb("conv2", "conv2"),
  ...wb("conv_shortcut", "nin_shortcut"),
];

/** Single-head `Attention` with `group_norm` (Linear q/k/v/out) ↔ sgm `AttnBlock` (1×1 convs). */
const VAE_ATTENTION = leaves([
  ...wb("group_norm", "norm"),
  ...[["to_q", "q"], ["to_k", "k"], ["to_v", "v"], ["to_out.0", "proj_out"]].flatMap(([d, s]) => [
    tensor(`${d}.weight`, `${s}.weight`, "linearToConv1x1"),
    tensor(`${d}.bias`, `${s}.bias`),
  ]),
]);

/** `SpatioTemporalResBlock` without time embedding ↔ sgm VAE `VideoResBlock`. */
const VAE_VIDEO_RESNET = any(
  under("spatial_res_block.", "", leaves(VAE_RESNET_RULES)),
  leaves([
    ...wb("temporal_res_block.norm1", "time_stack.in_layers.0"),
    ...wb("temporal_res_block.conv1", "time_stack.in_layers.2"),
    ...wb("temporal_res_block.norm2", "time_stack.out_layers.0"),
    ...wb("temporal_res_block.conv2", "time_stack.out_layers.3"),
    tensor("time_mixer.mix_factor", "mix_factor"),
  ]),
);

/** Resnets per encoder level (decoder levels have one more). 2 for SVD. */
const VAE_LAYERS_PER_BLOCK = 2;

function vaeMapper(layout: DiffusersLayout): Mapper {
  const levels = layout.vaeLevels;
  const conv = leaves(wb("conv", "conv"));
  const resnet2d = leaves(VAE_RESNET_RULES);
  const encoder = any(
    leaves([
      ...wb("conv_in", "conv_in"),
      ...wb("conv_norm_out", "norm_out"),
      ...wb("conv_out", "conv_out"),
    ]),
    renumber(
      "down_blocks.#.resnets.#.",
      "down.#.block.#.",
      ([i, j]) => (i < levels && j < VAE_LAYERS_PER_BLOCK ? [i, j] : undefined),
      ([i, j]) => (i < levels && j < VAE_LAYERS_PER_BLOCK ? [i, j] : undefined),
      resnet2d,
    ),
    renumber(
      "down_blocks.#.downsamplers.0.",
      "down.#.downsample.",
      ([i]) => (i < levels - 1 ? [i] : undefined),
      ([i]) => (i < levels - 1 ? [i] : undefined),
      conv,
    ),
    under("mid_block.resnets.0.", "mid.block_1.", resnet2d),
    under("mid_block.attentions.0.", "mid.attn_1.", VAE_ATTENTION),
    under("mid_block.resnets.1.", "mid.block_2.", resnet2d),
  );
  // diffusers builds up_blocks from the deepest level; sgm numbers `up` by level.
  const reversed: Renumber = ([i, ...rest]) => (i < levels ? [levels - 1 - i, ...rest] : undefined);
  const decoder = any(
    leaves([
      ...wb("conv_in", "conv_in"),
      ...wb("conv_norm_out", "norm_out"),
      ...wb("conv_out", "conv_out"),
      // TemporalDecoder.time_conv_out (Conv3d (3,1,1)) is the `time_mix_conv` inside sgm's
      // AE3DConv `conv_out`, whose own weight is the Conv2d above.
      ...wb("time_conv_out", "conv_out.time_mix_conv"),
    ]),
    under("mid_block.resnets.0.", "mid.block_1.", VAE_VIDEO_RESNET),
    under("mid_block.attentions.0.", "mid.attn_1.", VAE_ATTENTION),
    under("mid_block.resnets.1.", "mid.block_2.", VAE_VIDEO_RESNET),
    renumber(
      "up_blocks.#.resnets.#.",
      "up.#.block.#.",
      ([i, j]) => (j <= VAE_LAYERS_PER_BLOCK ? reversed([i, j]) : undefined),
      ([i, j]) => (j <= VAE_LAYERS_PER_BLOCK ? reversed([i, j]) : undefined),
      VAE_VIDEO_RESNET,
    ),
    // Every level but the last diffusers block (sgm level 0) upsamples.
    renumber(
      "up_blocks.#.upsamplers.0.",
      "up.#.upsample.",
      ([i]) => (i < levels - 1 ? reversed([i]) : undefined),
      ([i]) => (i >= 1 ? reversed([i]) : undefined),
      conv,
    ),
  );
  return any(
    under("encoder.", SGM_PREFIXES.vaeEncoder, encoder),
    under(
      "quant_conv.",
      SGM_PREFIXES.quantConv,
      leaves([tensor("weight", "weight"), tensor("bias", "bias")]),
    ),
    under("decoder.", SGM_PREFIXES.vaeDecoder, decoder),
  );
}

// ---------------------------------------------------------------------------------------------
// Image encoder (transformers CLIPVisionModelWithProjection ↔ open_clip VisionTransformer).

const CLIP_LAYER = leaves([
  {
    diffusers: ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"],
    sgm: "attn.in_proj_weight",
    transform: "concatRows",
  },
  {
    diffusers: ["self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"],
    sgm: "attn.in_proj_bias",
    transform: "concatRows",
  },
  ...wb("self_attn.out_proj", "attn.out_proj"),
  ...wb("layer_norm1", "ln_1"),
  ...wb("layer_norm2", "ln_2"),
  ...wb("mlp.fc1", "mlp.c_fc"),
  ...wb("mlp.fc2", "mlp.c_proj"),
]);

const CLIP = under(
  "",
  SGM_PREFIXES.imageEncoder,
  any(
    leaves([
      tensor("vision_model.embeddings.class_embedding", "class_embedding"),
      tensor("vision_model.embeddings.patch_embedding.weight", "conv1.weight"),
      tensor("vision_model.embeddings.position_embedding.weight", "positional_embedding"),
      ...wb("vision_model.pre_layrnorm", "ln_pre"),
      ...wb("vision_model.post_layernorm", "ln_post"),
      // nn.Linear(width, embed) stores [embed, width]; open_clip computes x @ proj with [width, embed].
      tensor("visual_projection.weight", "proj", "transpose"),
    ]),
    renumber("vision_model.encoder.layers.#.", "transformer.resblocks.#.", same, same, CLIP_LAYER),
  ),
);

// ---------------------------------------------------------------------------------------------

const cache = new Map<string, Record<DiffusersComponent, Mapper>>();

function mappers(layout: DiffusersLayout): Record<DiffusersComponent, Mapper> {
  const id = JSON.stringify([[...layout.unetUpBlocksWithAttention].sort(), layout.vaeLevels]);
  let hit = cache.get(id);
  if (!hit) {
    hit = {
      unet: under("", SGM_PREFIXES.unet, unetMapper(layout)),
      vae: vaeMapper(layout),
      image_encoder: CLIP,
    };
    cache.set(id, hit);
  }
  return hit;
}
