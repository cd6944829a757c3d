import assert from "node:assert/strict";
import { FULL, TINY } from "../../pipeline/config/network_configs.ts";
import { DIFFUSERS_FILES, openDiffusersFolder } from "../../pipeline/convert/diffusers_folder.ts";
import {
  type DiffusersComponent,
  diffusersToSgm,
  SGM_PREFIXES,
  sgmToDiffusers,
  type Transform,
} from "../../pipeline/convert/diffusers_keys.ts";
import { buildImageEncoder } from "../../pipeline/networks/image_encoder.ts";
import { buildVaeDecoder } from "../../pipeline/networks/vae_decoder.ts";
import { buildVaeEncoder } from "../../pipeline/networks/vae_encoder.ts";
import { buildVideoUnet } from "../../pipeline/networks/video_unet.ts";
import { float32ToFloat16Bytes } from "../../pipeline/onnx/graph.ts";
import { SafetensorsFile, toFloat32 } from "../../pipeline/safetensors/reader.ts";
import {
  float32Entry,
  type TensorEntry,
  writeSafetensors,
} from "../../pipeline/safetensors/writer.ts";
import { formatDims, type Tensor } from "../../pipeline/tensor.ts";
import { RecordingSource } from "../../pipeline/convert/random_checkpoint.ts";
import { WeightsMismatchError } from "../../pipeline/weights/weight_source.ts";

/**
 * The tiny sgm checkpoint. (Not via ../_fixtures.ts, which reads SVD_FIXTURES from the
 * environment: these tests run with read and write permissions only.)
 */
const TINY_WEIGHTS = new URL("../fixtures/tiny/weights.safetensors", import.meta.url).pathname;

const FILE_ACCESS = { read: true, write: true } as const;

/**
 * (component, diffusers name, sgm name, transform, part) written by hand from the model classes:
 * - UNet: diffusers `src/diffusers/models/unets/unet_spatio_temporal_condition.py` (conv_in,
 *   time_embedding/add_embedding = TimestepEmbedding linear_1/linear_2, conv_norm_out, conv_out),
 *   `models/unets/unet_3d_blocks.py` (CrossAttnDownBlockSpatioTemporal: resnets, attentions,
 *   `downsamplers` = Downsample2D(name="op") whose conv stays `.conv`; UNetMidBlockSpatioTemporal:
 *   resnets[0], attentions[0], resnets[1]; up blocks with `upsamplers` = Upsample2D `.conv`),
 *   `models/resnet.py` (SpatioTemporalResBlock: spatial_res_block / temporal_res_block /
 *   time_mixer = AlphaBlender `mix_factor`; ResnetBlock2D norm1, conv1, time_emb_proj, norm2,
 *   conv2, conv_shortcut), `models/transformers/transformer_temporal.py`
 *   (TransformerSpatioTemporalModel: norm, proj_in, transformer_blocks, temporal_transformer_blocks,
 *   time_pos_embed, time_mixer, proj_out), `models/attention.py` (TemporalBasicTransformerBlock:
 *   norm_in, ff_in, norm1, attn1, norm2, attn2, norm3, ff), and the UNet part of
 *   `scripts/convert_svd_to_diffusers.py` (input_blocks.{1+3b+j} ↔ down_blocks.b.*.j,
 *   output_blocks.{3b+j} ↔ up_blocks.b.*.j, time_stack ↔ temporal_transformer_blocks,
 *   in_layers.0 ↔ norm1, emb_layers.1 ↔ time_emb_proj, skip_connection ↔ conv_shortcut).
 * - VAE: `models/autoencoders/autoencoder_kl_temporal_decoder.py` (encoder, quant_conv,
 *   TemporalDecoder: conv_in, mid_block, up_blocks built from reversed(block_out_channels),
 *   conv_norm_out, conv_out Conv2d, time_conv_out Conv3d), `models/autoencoders/vae.py` (Encoder:
 *   conv_in, down_blocks, mid_block, conv_norm_out, conv_out), `models/unets/unet_2d_blocks.py`
 *   (DownEncoderBlock2D resnets + downsamplers name="op"), `models/unets/unet_3d_blocks.py`
 *   (MidBlockTemporalDecoder, UpBlockTemporalDecoder), `models/attention_processor.py` (Attention:
 *   group_norm, to_q, to_k, to_v, to_out.0).
 * - Image encoder: transformers `src/transformers/models/clip/modeling_clip.py`
 *   (CLIPVisionModelWithProjection: vision_model.{embeddings.{class_embedding, patch_embedding,
 *   position_embedding}, pre_layrnorm, encoder.layers.i.{self_attn.{q,k,v,out}_proj, layer_norm1,
 *   mlp.fc1, mlp.fc2, layer_norm2}, post_layernorm}, visual_projection = Linear(width, embed)).
 */
// deno-fmt-ignore
const HAND_TABLE: readonly [DiffusersComponent, string, string, Transform, number?][] = [
  // UNet embeddings and ends
  ["unet", "time_embedding.linear_1.weight", "time_embed.0.weight", "copy"],
  ["unet", "time_embedding.linear_2.bias", "time_embed.2.bias", "copy"],
  ["unet", "add_embedding.linear_1.weight", "label_emb.0.0.weight", "copy"],
  ["unet", "add_embedding.linear_2.weight", "label_emb.0.2.weight", "copy"],
  ["unet", "conv_in.weight", "input_blocks.0.0.weight", "copy"],
  ["unet", "conv_norm_out.weight", "out.0.weight", "copy"],
  ["unet", "conv_out.bias", "out.2.bias", "copy"],
  // UNet down resnets (spatial, temporal, mixer)
  ["unet", "down_blocks.0.resnets.0.spatial_res_block.norm1.weight", "input_blocks.1.0.in_layers.0.weight", "copy"],
  ["unet", "down_blocks.0.resnets.1.spatial_res_block.conv1.weight", "input_blocks.2.0.in_layers.2.weight", "copy"],
  ["unet", "down_blocks.1.resnets.0.spatial_res_block.time_emb_proj.weight", "input_blocks.4.0.emb_layers.1.weight", "copy"],
  ["unet", "down_blocks.1.resnets.0.spatial_res_block.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight", "copy"],
  ["unet", "down_blocks.3.resnets.0.spatial_res_block.conv_shortcut.bias", "input_blocks.10.0.skip_connection.bias", "copy"],
  ["unet", "down_blocks.3.resnets.1.spatial_res_block.norm2.bias", "input_blocks.11.0.out_layers.0.bias", "copy"],
  ["unet", "down_blocks.2.resnets.1.temporal_res_block.conv2.weight", "input_blocks.8.0.time_stack.out_layers.3.weight", "copy"],
  ["unet", "down_blocks.0.resnets.0.temporal_res_block.time_emb_proj.bias", "input_blocks.1.0.time_stack.emb_layers.1.bias", "copy"],
  ["unet", "down_blocks.1.resnets.1.time_mixer.mix_factor", "input_blocks.5.0.time_mixer.mix_factor", "copy"],
  // UNet down attentions (spatial block, temporal block, frame embedding, mixer) and samplers
  ["unet", "down_blocks.0.attentions.1.proj_in.weight", "input_blocks.2.1.proj_in.weight", "copy"],
  ["unet", "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight", "input_blocks.7.1.transformer_blocks.0.attn2.to_k.weight", "copy"],
  ["unet", "down_blocks.0.attentions.0.temporal_transformer_blocks.0.ff_in.net.0.proj.weight", "input_blocks.1.1.time_stack.0.ff_in.net.0.proj.weight", "copy"],
  ["unet", "down_blocks.1.attentions.0.time_pos_embed.linear_2.weight", "input_blocks.4.1.time_pos_embed.2.weight", "copy"],
  ["unet", "down_blocks.0.attentions.0.time_mixer.mix_factor", "input_blocks.1.1.time_mixer.mix_factor", "copy"],
  ["unet", "down_blocks.0.downsamplers.0.conv.weight", "input_blocks.3.0.op.weight", "copy"],
  ["unet", "down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias", "copy"],
  // UNet mid block
  ["unet", "mid_block.resnets.0.spatial_res_block.norm2.weight", "middle_block.0.out_layers.0.weight", "copy"],
  ["unet", "mid_block.resnets.1.temporal_res_block.norm1.bias", "middle_block.2.time_stack.in_layers.0.bias", "copy"],
  ["unet", "mid_block.attentions.0.temporal_transformer_blocks.0.attn1.to_q.weight", "middle_block.1.time_stack.0.attn1.to_q.weight", "copy"],
  ["unet", "mid_block.attentions.0.transformer_blocks.0.norm3.weight", "middle_block.1.transformer_blocks.0.norm3.weight", "copy"],
  // UNet up blocks (resnets, attentions, upsamplers after a resnet or after an attention)
  ["unet", "up_blocks.0.resnets.2.spatial_res_block.conv_shortcut.weight", "output_blocks.2.0.skip_connection.weight", "copy"],
  ["unet", "up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight", "copy"],
  ["unet", "up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight", "copy"],
  ["unet", "up_blocks.2.upsamplers.0.conv.bias", "output_blocks.8.2.conv.bias", "copy"],
  ["unet", "up_blocks.1.attentions.0.norm.weight", "output_blocks.3.1.norm.weight", "copy"],
  ["unet", "up_blocks.2.attentions.1.temporal_transformer_blocks.0.norm_in.weight", "output_blocks.7.1.time_stack.0.norm_in.weight", "copy"],
  ["unet", "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight", "output_blocks.11.1.transformer_blocks.0.ff.net.2.weight", "copy"],
  ["unet", "up_blocks.3.attentions.2.proj_out.bias", "output_blocks.11.1.proj_out.bias", "copy"],
  ["unet", "up_blocks.3.resnets.0.time_mixer.mix_factor", "output_blocks.9.0.time_mixer.mix_factor", "copy"],
  // VAE encoder and quant_conv
  ["vae", "encoder.conv_in.weight", "conditioner.embedders.3.encoder.encoder.conv_in.weight", "copy"],
  ["vae", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "conditioner.embedders.3.encoder.encoder.down.1.block.0.nin_shortcut.weight", "copy"],
  ["vae", "encoder.down_blocks.0.downsamplers.0.conv.weight", "conditioner.embedders.3.encoder.encoder.down.0.downsample.conv.weight", "copy"],
  ["vae", "encoder.mid_block.resnets.1.norm2.bias", "conditioner.embedders.3.encoder.encoder.mid.block_2.norm2.bias", "copy"],
  ["vae", "encoder.mid_block.attentions.0.to_q.weight", "conditioner.embedders.3.encoder.encoder.mid.attn_1.q.weight", "linearToConv1x1"],
  ["vae", "encoder.mid_block.attentions.0.to_v.bias", "conditioner.embedders.3.encoder.encoder.mid.attn_1.v.bias", "copy"],
  ["vae", "encoder.mid_block.attentions.0.group_norm.weight", "conditioner.embedders.3.encoder.encoder.mid.attn_1.norm.weight", "copy"],
  ["vae", "encoder.conv_norm_out.bias", "conditioner.embedders.3.encoder.encoder.norm_out.bias", "copy"],
  ["vae", "encoder.conv_out.weight", "conditioner.embedders.3.encoder.encoder.conv_out.weight", "copy"],
  ["vae", "quant_conv.weight", "conditioner.embedders.3.encoder.quant_conv.weight", "copy"],
  // VAE temporal decoder: reversed up blocks, mid attention, temporal parts, output convs
  ["vae", "decoder.up_blocks.0.resnets.2.spatial_res_block.conv1.weight", "first_stage_model.decoder.up.3.block.2.conv1.weight", "copy"],
  ["vae", "decoder.up_blocks.3.resnets.0.temporal_res_block.conv2.weight", "first_stage_model.decoder.up.0.block.0.time_stack.out_layers.3.weight", "copy"],
  ["vae", "decoder.up_blocks.2.resnets.0.spatial_res_block.conv_shortcut.weight", "first_stage_model.decoder.up.1.block.0.nin_shortcut.weight", "copy"],
  ["vae", "decoder.up_blocks.1.resnets.1.time_mixer.mix_factor", "first_stage_model.decoder.up.2.block.1.mix_factor", "copy"],
  ["vae", "decoder.up_blocks.0.upsamplers.0.conv.weight", "first_stage_model.decoder.up.3.upsample.conv.weight", "copy"],
  ["vae", "decoder.up_blocks.2.upsamplers.0.conv.bias", "first_stage_model.decoder.up.1.upsample.conv.bias", "copy"],
  ["vae", "decoder.mid_block.resnets.0.time_mixer.mix_factor", "first_stage_model.decoder.mid.block_1.mix_factor", "copy"],
  ["vae", "decoder.mid_block.resnets.1.temporal_res_block.norm1.weight", "first_stage_model.decoder.mid.block_2.time_stack.in_layers.0.weight", "copy"],
  ["vae", "decoder.mid_block.attentions.0.to_out.0.weight", "first_stage_model.decoder.mid.attn_1.proj_out.weight", "linearToConv1x1"],
  ["vae", "decoder.mid_block.attentions.0.to_k.weight", "first_stage_model.decoder.mid.attn_1.k.weight", "linearToConv1x1"],
  ["vae", "decoder.time_conv_out.weight", "first_stage_model.decoder.conv_out.time_mix_conv.weight", "copy"],
  ["vae", "decoder.conv_out.weight", "first_stage_model.decoder.conv_out.weight", "copy"],
  ["vae", "decoder.conv_norm_out.weight", "first_stage_model.decoder.norm_out.weight", "copy"],
  // CLIP vision tower
  ["image_encoder", "vision_model.embeddings.patch_embedding.weight", "conv1.weight", "copy"],
  ["image_encoder", "vision_model.embeddings.class_embedding", "class_embedding", "copy"],
  ["image_encoder", "vision_model.embeddings.position_embedding.weight", "positional_embedding", "copy"],
  ["image_encoder", "vision_model.pre_layrnorm.weight", "ln_pre.weight", "copy"],
  ["image_encoder", "vision_model.post_layernorm.bias", "ln_post.bias", "copy"],
  ["image_encoder", "visual_projection.weight", "proj", "transpose"],
  ["image_encoder", "vision_model.encoder.layers.0.self_attn.q_proj.weight", "transformer.resblocks.0.attn.in_proj_weight", "concatRows", 0],
  ["image_encoder", "vision_model.encoder.layers.0.self_attn.k_proj.weight", "transformer.resblocks.0.attn.in_proj_weight", "concatRows", 1],
  ["image_encoder", "vision_model.encoder.layers.1.self_attn.v_proj.bias", "transformer.resblocks.1.attn.in_proj_bias", "concatRows", 2],
  ["image_encoder", "vision_model.encoder.layers.0.self_attn.out_proj.weight", "transformer.resblocks.0.attn.out_proj.weight", "copy"],
  ["image_encoder", "vision_model.encoder.layers.1.layer_norm1.bias", "transformer.resblocks.1.ln_1.bias", "copy"],
  ["image_encoder", "vision_model.encoder.layers.1.layer_norm2.weight", "transformer.resblocks.1.ln_2.weight", "copy"],
  ["image_encoder", "vision_model.encoder.layers.0.mlp.fc1.bias", "transformer.resblocks.0.mlp.c_fc.bias", "copy"],
  ["image_encoder", "vision_model.encoder.layers.31.mlp.fc2.weight", "transformer.resblocks.31.mlp.c_proj.weight", "copy"],
];

/** The sgm name of a hand-table row (UNet and CLIP rows omit their prefix). */
function fullSgmKey(component: DiffusersComponent, key: string): string {
  if (component === "unet") return SGM_PREFIXES.unet + key;
  if (component === "image_encoder") return SGM_PREFIXES.imageEncoder + key;
  return key;
}

const INFERENCE_PREFIXES = [
  SGM_PREFIXES.unet,
  SGM_PREFIXES.vaeDecoder,
  SGM_PREFIXES.vaeEncoder,
  SGM_PREFIXES.quantConv,
  SGM_PREFIXES.imageEncoder,
];

function isInferenceKey(key: string): boolean {
  return INFERENCE_PREFIXES.some((p) => key.startsWith(p));
}

/** The fixture's inference tensors, by sgm key. */
async function fixtureTensors(): Promise<Map<string, Tensor>> {
  using st = await SafetensorsFile.open(TINY_WEIGHTS);
  const out = new Map<string, Tensor>();
  for (const key of st.keys()) if (isInferenceKey(key)) out.set(key, await st.readFloat32(key));
  return out;
}

/**
 * Splits sgm tensors into the diffusers tensors of each component: the inverse of every transform
 * (q/k/v rows split, `proj` transposed back, 1×1 convs squeezed to Linear).
 */
function toDiffusers(sgm: Map<string, Tensor>): Record<DiffusersComponent, Map<string, Tensor>> {
  const out: Record<DiffusersComponent, Map<string, Tensor>> = {
    unet: new Map(),
    vae: new Map(),
    image_encoder: new Map(),
  };
  for (const [key, t] of sgm) {
    const source = sgmToDiffusers(key);
    assert.ok(source, `sgm key "${key}" has no diffusers name`);
    const files = out[source.component];
    switch (source.transform) {
      case "copy":
        files.set(source.keys[0], t);
        break;
      case "linearToConv1x1":
        assert.deepEqual(t.dims.slice(2), [1, 1], key);
        files.set(source.keys[0], { dims: t.dims.slice(0, 2), data: t.data }); // [o, i, 1, 1] -> [o, i]
        break;
      case "transpose": {
        const [rows, cols] = t.dims; // [width, embed] -> [embed, width]
        const data = new Float32Array(t.data.length);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) data[c * rows + r] = t.data[r * cols + c];
        }
        files.set(source.keys[0], { dims: [cols, rows], data });
        break;
      }
      case "concatRows": {
        const rows = t.dims[0] / 3; // [3w, ...] -> 3 × [w, ...]
        const size = t.data.length / 3;
        source.keys.forEach((k, i) =>
          files.set(k, {
            dims: [rows, ...t.dims.slice(1)],
            data: t.data.slice(i * size, (i + 1) * size),
          })
        );
        break;
      }
    }
  }
  return out;
}

/** Writes one component file; `F16` stores the values rounded to float16. */
async function writeComponent(
  dir: string,
  name: string,
  tensors: Map<string, Tensor>,
  dtype: "F32" | "F16" = "F32",
  extra: readonly TensorEntry[] = [],
): Promise<void> {
  const path = `${dir}/${name}`;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const entries: TensorEntry[] = [...tensors].map(([key, t]) =>
    dtype === "F32"
      ? float32Entry(key, t)
      : { name: key, dtype: "F16", dims: t.dims, bytes: () => float32ToFloat16Bytes(t.data).bytes }
  );
  await writeSafetensors(path, [...entries, ...extra]);
}

/** Writes a float32 diffusers folder of `tensors`, leaving out the components in `omit`. */
async function writeFolder(
  dir: string,
  tensors: Record<DiffusersComponent, Map<string, Tensor>>,
  omit: readonly DiffusersComponent[] = [],
): Promise<void> {
  for (const component of ["unet", "vae", "image_encoder"] as const) {
    if (!omit.includes(component)) {
      await writeComponent(dir, DIFFUSERS_FILES[component][0], tensors[component]);
    }
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "diffusers_folder_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "diffusersToSgm() maps names taken from the diffusers and transformers sources",
  permissions: "none",
  fn() {
    assert.ok(HAND_TABLE.length >= 25);
    for (const [component, diffusers, sgm, transform, part] of HAND_TABLE) {
      const expected = part === undefined
        ? { key: fullSgmKey(component, sgm), transform }
        : { key: fullSgmKey(component, sgm), transform, part };
      assert.deepEqual(
        diffusersToSgm(component, diffusers),
        expected,
        `${component}: ${diffusers}`,
      );
      const back = sgmToDiffusers(expected.key);
      assert.ok(back, expected.key);
      assert.equal(back.component, component, expected.key);
      assert.equal(back.keys[part ?? 0], diffusers, expected.key);
    }
  },
});

Deno.test({
  name: "diffusersToSgm() knows no name outside the model classes",
  permissions: "none",
  fn() {
    const unknown: [DiffusersComponent, string][] = [
      ["unet", "down_blocks.0.attentions.0.extra.weight"],
      ["unet", "down_blocks.0.resnets.2.spatial_res_block.norm1.weight"], // down blocks have 2 layers
      ["unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias"], // q has no bias
      ["unet", "time_proj.weight"], // Timesteps has no weights
      ["vae", "decoder.up_blocks.3.upsamplers.0.conv.weight"], // the last up block does not upsample
      ["vae", "post_quant_conv.weight"], // AutoencoderKLTemporalDecoder has none
      ["vae", "encoder.mid_block.attentions.0.query.weight"], // pre-0.14 attention names
      ["image_encoder", "text_model.embeddings.token_embedding.weight"],
      ["image_encoder", "vision_model.embeddings.position_ids"], // ignored by the folder, not mapped
    ];
    for (const [component, key] of unknown) {
      assert.equal(diffusersToSgm(component, key), undefined, key);
    }
    assert.equal(sgmToDiffusers("first_stage_model.encoder.conv_in.weight"), undefined);
    assert.equal(
      sgmToDiffusers("conditioner.embedders.3.encoder.decoder.conv_in.weight"),
      undefined,
    );
    assert.equal(
      sgmToDiffusers("conditioner.embedders.0.open_clip.model.text_projection"),
      undefined,
    );
  },
});

Deno.test({
  name:
    "sgmToDiffusers() and diffusersToSgm() are inverse on every inference key of the tiny checkpoint",
  permissions: { read: true },
  async fn() {
    using st = await SafetensorsFile.open(TINY_WEIGHTS);
    const seen = new Set<string>();
    for (const key of st.keys()) {
      const source = sgmToDiffusers(key);
      if (!isInferenceKey(key)) {
        assert.equal(source, undefined, key);
        continue;
      }
      assert.ok(source, key);
      source.keys.forEach((name, i) => {
        const part = source.transform === "concatRows" ? { part: i } : {};
        assert.deepEqual(diffusersToSgm(source.component, name), {
          key,
          transform: source.transform,
          ...part,
        });
        assert.ok(!seen.has(`${source.component}:${name}`), `${name} is used twice`);
        seen.add(`${source.component}:${name}`);
      });
    }
  },
});

Deno.test({
  name:
    "openDiffusersFolder() reads a diffusers folder of the tiny checkpoint as the same sgm tensors",
  permissions: FILE_ACCESS,
  async fn() {
    const sgm = await fixtureTensors();
    await withTempDir(async (dir) => {
      await writeFolder(dir, toDiffusers(sgm));
      const source = await openDiffusersFolder(dir);
      try {
        assert.deepEqual([...source.keys()!].sort(), [...sgm.keys()].sort());
        for (const [key, expected] of sgm) {
          const dims = source.dims(key, expected.dims);
          assert.deepEqual(dims, expected.dims, `${key}: ${formatDims(dims ?? [])}`);
          const values = await source.read(key, expected.dims);
          assert.ok(bitwiseEqual(values, expected.data), `${key} differs`);
        }
        assert.match(source.description, /unet\/diffusion_pytorch_model\.safetensors/);
      } finally {
        source.close();
      }
    });
  },
});

Deno.test({
  name: "openDiffusersFolder() widens float16 files and prefers float32 files when both exist",
  permissions: FILE_ACCESS,
  async fn() {
    const sgm = await fixtureTensors();
    const tensors = toDiffusers(sgm);
    await withTempDir(async (dir) => {
      // unet: fp16 only; vae: fp32 only; image_encoder: both (fp32 must win).
      await writeComponent(dir, DIFFUSERS_FILES.unet[1], tensors.unet, "F16");
      await writeComponent(dir, DIFFUSERS_FILES.vae[0], tensors.vae);
      await writeComponent(dir, DIFFUSERS_FILES.image_encoder[0], tensors.image_encoder);
      await writeComponent(dir, DIFFUSERS_FILES.image_encoder[1], tensors.image_encoder, "F16");
      const source = await openDiffusersFolder(dir);
      try {
        assert.match(source.description, /unet\/diffusion_pytorch_model\.fp16\.safetensors/);
        assert.match(source.description, /image_encoder\/model\.safetensors/);
        let rounded = 0;
        for (const [key, expected] of sgm) {
          const values = await source.read(key, expected.dims);
          if (key.startsWith(SGM_PREFIXES.unet)) {
            const widened = toFloat32("F16", float32ToFloat16Bytes(expected.data).bytes);
            assert.ok(bitwiseEqual(values, widened), `${key} is not the widened float16 value`);
            if (!bitwiseEqual(values, expected.data)) rounded++;
          } else {
            assert.ok(bitwiseEqual(values, expected.data), `${key} is not the float32 value`);
          }
        }
        assert.ok(rounded > 0, "float16 rounding should change some UNet values");
      } finally {
        source.close();
      }
    });
  },
});

Deno.test({
  name: "openDiffusersFolder() rejects a tensor the mapping does not know, naming it",
  permissions: FILE_ACCESS,
  async fn() {
    const tensors = toDiffusers(await fixtureTensors());
    tensors.unet.set("down_blocks.0.attentions.0.extra_proj.weight", {
      dims: [2],
      data: new Float32Array(2),
    });
    await withTempDir(async (dir) => {
      await writeFolder(dir, tensors);
      await assert.rejects(openDiffusersFolder(dir), (error: unknown) => {
        assert.ok(error instanceof WeightsMismatchError);
        assert.equal(error.key, "down_blocks.0.attentions.0.extra_proj.weight");
        assert.match(
          error.message,
          /"down_blocks\.0\.attentions\.0\.extra_proj\.weight" \(unet\/diffusion_pytorch_model\.safetensors\)/,
        );
        return true;
      });
    });
  },
});

Deno.test({
  name: "openDiffusersFolder() names the expected path when vae/ is missing",
  permissions: FILE_ACCESS,
  async fn() {
    const tensors = toDiffusers(await fixtureTensors());
    await withTempDir(async (dir) => {
      await writeFolder(dir, tensors, ["vae"]);
      await assert.rejects(openDiffusersFolder(dir), (error: unknown) => {
        assert.ok(error instanceof Deno.errors.NotFound);
        assert.match(error.message, /vae\/diffusion_pytorch_model\.safetensors/);
        assert.ok(error.message.includes(dir));
        return true;
      });
    });
  },
});

Deno.test({
  name: "openDiffusersFolder() names a missing q/k/v projection of a CLIP layer",
  permissions: FILE_ACCESS,
  async fn() {
    const tensors = toDiffusers(await fixtureTensors());
    tensors.image_encoder.delete("vision_model.encoder.layers.1.self_attn.k_proj.weight");
    await withTempDir(async (dir) => {
      await writeFolder(dir, tensors);
      await assert.rejects(openDiffusersFolder(dir), (error: unknown) => {
        assert.ok(error instanceof WeightsMismatchError);
        assert.equal(error.key, "vision_model.encoder.layers.1.self_attn.k_proj.weight");
        assert.match(error.message, /transformer\.resblocks\.1\.attn\.in_proj_weight/);
        return true;
      });
    });
  },
});

Deno.test({
  name: "openDiffusersFolder() ignores the CLIP position_ids buffer that older transformers saved",
  permissions: FILE_ACCESS,
  async fn() {
    const sgm = await fixtureTensors();
    const tensors = toDiffusers(sgm);
    const positionIds: TensorEntry = {
      name: "vision_model.embeddings.position_ids",
      dtype: "I64",
      dims: [1, 257],
      bytes: () => new Uint8Array(BigInt64Array.from({ length: 257 }, (_, i) => BigInt(i)).buffer),
    };
    await withTempDir(async (dir) => {
      await writeFolder(dir, tensors, ["image_encoder"]);
      await writeComponent(dir, DIFFUSERS_FILES.image_encoder[0], tensors.image_encoder, "F32", [
        positionIds,
      ]);
      const source = await openDiffusersFolder(dir);
      try {
        assert.equal(source.keys()!.length, sgm.size);
      } finally {
        source.close();
      }
    });
  },
});

Deno.test({
  name: "the tiny graph builders accept a diffusers folder of the tiny checkpoint, using every key",
  permissions: FILE_ACCESS,
  async fn() {
    await withTempDir(async (dir) => {
      await writeFolder(dir, toDiffusers(await fixtureTensors()));
      const source = await openDiffusersFolder(dir);
      try {
        // Each builder checks every shape and that no key under its prefixes is left unused.
        buildVideoUnet(TINY.unet, source);
        buildVaeDecoder(TINY.vae, source);
        buildVaeEncoder(TINY.vae, source);
        buildImageEncoder(TINY.imageEncoder, source);
      } finally {
        source.close();
      }
    });
  },
});

Deno.test({
  name:
    "every key of the full-size networks has a diffusers name: 1428 UNet, 374 VAE, 520 CLIP tensors",
  permissions: "none",
  fn() {
    const rec = new RecordingSource();
    buildVideoUnet(FULL.unet, rec);
    buildVaeDecoder(FULL.vae, rec);
    buildVaeEncoder(FULL.vae, rec);
    buildImageEncoder(FULL.imageEncoder, rec);
    const names: Record<DiffusersComponent, Set<string>> = {
      unet: new Set(),
      vae: new Set(),
      image_encoder: new Set(),
    };
    for (const key of rec.shapes.keys()) {
      const source = sgmToDiffusers(key);
      assert.ok(source, `"${key}" has no diffusers name`);
      for (const name of source.keys) names[source.component].add(name);
    }
    // UNet: 1428 sgm keys, one each. VAE: encoder 106 + quant_conv 2 + decoder 266. CLIP: 392 sgm
    // keys, of which 64 in_proj tensors each come from 3 (q, k, v): 392 - 64 + 192 = 520.
    assert.equal(rec.shapes.size, 1428 + 374 + 392);
    assert.deepEqual(
      { unet: names.unet.size, vae: names.vae.size, image_encoder: names.image_encoder.size },
      { unet: 1428, vae: 374, image_encoder: 520 },
    );
  },
});

function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
