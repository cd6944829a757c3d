/**
 * sgm's own config structure: the fixture's config.yaml (sgm's `configs/inference/svd.yaml` with
 * tiny widths) and variants of it load into the same `SvdConfig` as our format.
 *
 * Run: deno test --allow-read tests/config/
 */

import assert from "node:assert/strict";
import { fixturePath } from "../_fixtures.ts";
import { ConfigError, FULL, loadConfig, parseConfig, TINY } from "../../pipeline/config/mod.ts";
import { YamlSource } from "../../pipeline/config/yaml_source.ts";

const FIXTURE = fixturePath("config.yaml");
const fixtureText = () => Deno.readTextFileSync(FIXTURE);

/** The fixture config as data, changed by `edit`, as YAML text (JSON is YAML). */
// deno-lint-ignore no-explicit-any
function editedFixture(edit: (root: any) => void): string {
  const root = structuredClone(YamlSource.parse(fixtureText(), FIXTURE).root);
  edit(root);
  return JSON.stringify(root, null, 2);
}

/** 1-based line of the first line of `text` that contains `needle`. */
function lineContaining(text: string, needle: string): number {
  const index = text.split("\n").findIndex((line) => line.includes(needle));
  if (index < 0) throw new Error(`no line contains ${needle}`);
  return index + 1;
}

Deno.test({
  name: "the fixture's sgm config.yaml loads as the TINY networks with its sampler settings",
  permissions: { read: true },
  async fn() {
    const config = await loadConfig(FIXTURE);
    assert.equal(config.source.format, "sgm");
    assert.equal(config.name, "tiny"); // no ckpt_path: named after its folder
    assert.equal(config.checkpoint, "tiny");
    assert.equal(config.scaleFactor, 0.18215);
    assert.deepEqual(config.unet, TINY.unet);
    assert.deepEqual(config.vae, { ...TINY.vae, decoder: "temporal" });
    assert.deepEqual(config.imageEncoder, TINY.imageEncoder);
    assert.equal(config.sampling.numSteps, 3);
    assert.equal(config.sampling.numFrames, 4);
    assert.equal(config.sampling.minGuidance, 1.0);
    assert.equal(config.sampling.maxGuidance, 2.5);
    assert.equal(config.sampling.guider, "linear");
    assert.equal(config.sampling.sigmaMax, 700);
    assert.equal(config.sampling.sigmaMin, 0.002); // EDMDiscretization default
  },
});

Deno.test({
  name: "configs/tiny.yaml resolves to the same networks and sampler as the fixture's sgm config",
  permissions: { read: true },
  async fn() {
    const ours = await loadConfig(new URL("../../configs/tiny.yaml", import.meta.url).pathname);
    const sgm = await loadConfig(FIXTURE);
    assert.equal(ours.checkpoint, sgm.checkpoint);
    assert.equal(ours.scaleFactor, sgm.scaleFactor);
    assert.deepEqual(ours.unet, sgm.unet);
    assert.deepEqual(ours.vae, sgm.vae);
    assert.deepEqual(ours.imageEncoder, sgm.imageEncoder);
    for (
      const key of [
        "numFrames",
        "numSteps",
        "minGuidance",
        "maxGuidance",
        "guider",
        "sigmaMin",
        "sigmaMax",
        "rho",
      ] as const
    ) {
      assert.equal(ours.sampling[key], sgm.sampling[key], key);
    }
  },
});

Deno.test({
  name: "an sgm config without arch uses open_clip's built-in ViT-H-14",
  permissions: { read: true },
  fn() {
    const text = editedFixture((root) => {
      const p = root.model.params;
      delete p.conditioner_config.params.emb_models[0].params.open_clip_embedding_config.params
        .arch;
      p.network_config.params.context_dim = 1024;
    });
    const config = parseConfig(text, "svd.yaml");
    assert.deepEqual(config.imageEncoder, FULL.imageEncoder);
    assert.equal(config.unet.contextDim, 1024);
  },
});

Deno.test({
  name: "an sgm AutoencoderKL first stage is the 2-D image decoder",
  permissions: { read: true },
  fn() {
    const text = editedFixture((root) => {
      const p = root.model.params;
      const ddconfig = p.first_stage_config.params.encoder_config.params;
      p.first_stage_config = {
        target: "sgm.models.autoencoder.AutoencoderKL",
        params: { embed_dim: 4, ddconfig, lossconfig: { target: "torch.nn.Identity" } },
      };
    });
    const config = parseConfig(text, "svd_image_decoder.yaml");
    assert.equal(config.vae.decoder, "image");
    assert.deepEqual({ ...config.vae, decoder: undefined }, { ...TINY.vae, decoder: undefined });
  },
});

Deno.test({
  name:
    "an sgm config is named by ckpt_path and, without sampler settings, gets its family's defaults",
  permissions: { read: true },
  fn() {
    const text = editedFixture((root) => {
      root.model.params.ckpt_path = "checkpoints/svd_xt.safetensors";
      delete root.model.params.sampler_config;
    });
    const config = parseConfig(text, "scripts/sampling/configs/whatever.yaml");
    assert.equal(config.name, "svd_xt");
    assert.equal(config.checkpoint, "svd_xt");
    // sgm's simple_video_sample.py for svd_xt: 25 frames, 30 steps; the demo's CFG 1.5→3.0.
    assert.equal(config.sampling.numFrames, 25);
    assert.equal(config.sampling.numSteps, 30);
    assert.equal(config.sampling.minGuidance, 1.5);
    assert.equal(config.sampling.maxGuidance, 3.0);
    assert.equal(config.sampling.sigmaMax, 700);
  },
});

Deno.test({
  name: "an sgm EDMDiscretization without sigma_max means sgm's default 80, not 700",
  permissions: { read: true },
  fn() {
    const text = editedFixture((root) => {
      delete root.model.params.sampler_config.params.discretization_config.params;
    });
    assert.equal(parseConfig(text, "config.yaml").sampling.sigmaMax, 80);
  },
});

Deno.test({
  name: "sgm configs report bad values at their line, by sgm's path",
  permissions: { read: true },
  fn() {
    const cases: [from: string, to: string, field: string, allowed: RegExp][] = [
      [
        "num_steps: 3",
        "num_steps: 0",
        "model.params.sampler_config.params.num_steps",
        /allowed 1\.\.200/,
      ],
      [
        "arch: svd-oracle-tiny-vit",
        "arch: ViT-L-14",
        "model.params.conditioner_config.params.emb_models[0].params.open_clip_embedding_config.params.arch",
        /allowed ViT-H-14 \| svd-oracle-tiny-vit/,
      ],
      [
        "use_linear_in_transformer: true",
        "use_linear_in_transformer: false",
        "model.params.network_config.params.use_linear_in_transformer",
        /allowed true/,
      ],
      [
        "target: sgm.modules.autoencoding.temporal_ae.VideoDecoder",
        "target: sgm.modules.diffusionmodules.model.Decoder",
        "model.params.first_stage_config.params.decoder_config.target",
        /allowed sgm\.modules\.autoencoding\.temporal_ae\.VideoDecoder/,
      ],
      [
        "input_key: fps_id",
        "input_key: motion_bucket_id",
        "model.params.conditioner_config.params.emb_models[1].input_key",
        /allowed fps_id/,
      ],
      [
        "min_scale: 1.0",
        "min_scale: 5.0",
        "model.params.sampler_config.params.guider_config.params.min_scale",
        /allowed 0\.\.2\.5/,
      ],
    ];
    for (const [from, to, field, allowed] of cases) {
      const text = fixtureText().replace(from, to);
      assert.notEqual(text, fixtureText(), from);
      assert.throws(() => parseConfig(text, "fixture/config.yaml"), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.file, "fixture/config.yaml");
        assert.equal(e.line, lineContaining(text, to), e.message);
        assert.equal(e.field, field);
        assert.match(e.message, allowed);
        assert.ok(e.message.startsWith(`fixture/config.yaml:${e.line}: ${field}`), e.message);
        return true;
      });
    }
  },
});

Deno.test({
  name: "an sgm config without scale_factor is an error, not sgm's default 1.0",
  permissions: { read: true },
  fn() {
    const text = fixtureText().replace("    scale_factor: 0.18215\n", "");
    assert.throws(
      () => parseConfig(text, "config.yaml"),
      (e: unknown) =>
        e instanceof ConfigError && e.field === "model.params.scale_factor" && e.line === 3 &&
        /is missing/.test(e.message),
    );
  },
});

/** The fixture with every ConcatTimestepEmbedderND's outdim (1, 2, 4) and adm_in_channels set. */
function withOutdims(outdims: [number, number, number], admInChannels: number | undefined): string {
  return editedFixture((root) => {
    const p = root.model.params;
    [1, 2, 4].forEach((i, k) =>
      p.conditioner_config.params.emb_models[i].params.outdim = outdims[k]
    );
    if (admInChannels === undefined) delete p.network_config.params.adm_in_channels;
    else p.network_config.params.adm_in_channels = admInChannels;
  });
}

/** Asserts that `text` is refused at `field` with `message`. */
function assertRefusedAt(text: string, field: string, message: RegExp): void {
  assert.throws(() => parseConfig(text, "config.yaml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.field, field, e.message);
    assert.match(e.message, message);
    return true;
  });
}

const EMBEDDERS = "model.params.conditioner_config.params.emb_models";
const ADM = "model.params.network_config.params.adm_in_channels";

Deno.test({
  name: "an sgm config whose embedders have outdim 64 gives a 192-wide UNet vector",
  permissions: { read: true },
  fn() {
    const config = parseConfig(withOutdims([64, 64, 64], 192), "config.yaml");
    assert.equal(config.unet.admInChannels, 192);
    assert.deepEqual({ ...config.unet, admInChannels: 768 }, TINY.unet);
  },
});

Deno.test({
  name: "an sgm config whose adm_in_channels is not 3 × outdim is refused at adm_in_channels",
  permissions: { read: true },
  fn() {
    assertRefusedAt(
      withOutdims([64, 64, 64], 768),
      ADM,
      /adm_in_channels = 768 does not fit the conditioner: allowed 192 \(3 × the embedders' outdim 64\)$/,
    );
    assertRefusedAt(withOutdims([64, 64, 64], undefined), ADM, /is missing: allowed 192 \(3 ×/);
  },
});

Deno.test({
  name: "an sgm config whose three embedders differ in outdim, or lack one, is refused at it",
  permissions: { read: true },
  fn() {
    assertRefusedAt(
      withOutdims([256, 128, 256], 768),
      `${EMBEDDERS}[2].params.outdim`,
      /= 128 differs from .*emb_models\[1\]\.params\.outdim \(one width for the three embeddings\): allowed 256$/,
    );
    const missing = editedFixture((root) => {
      delete root.model.params.conditioner_config.params.emb_models[4].params.outdim;
    });
    assertRefusedAt(missing, `${EMBEDDERS}[4].params.outdim`, /is missing: allowed 1\.\.4096/);
    assertRefusedAt(
      withOutdims([0, 0, 0], 768),
      `${EMBEDDERS}[1].params.outdim`,
      /= 0 is out of range: allowed 1\.\.4096/,
    );
  },
});
