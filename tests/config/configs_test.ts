/**
 * Every shipped config in configs/ loads and holds the real SVD values (SVD_REFERENCE §1, §3).
 *
 * Run: deno test --allow-read tests/config/
 */

import assert from "node:assert/strict";
import { FULL, loadConfig, type SvdConfig, TINY } from "../../pipeline/config/mod.ts";

const CONFIGS = new URL("../../configs/", import.meta.url);
const configPath = (name: string) => new URL(name, CONFIGS).pathname;

const SVD_NAMES = ["svd", "svd_image_decoder", "svd_xt", "svd_xt_1_1", "svd_xt_image_decoder"];

Deno.test({
  name: "every configs/*.yaml loads, named after its file and its weights.lock entry",
  permissions: { read: true },
  async fn() {
    const files = [...Deno.readDirSync(CONFIGS)].map((e) => e.name).filter((n) =>
      n.endsWith(".yaml")
    );
    for (const name of [...SVD_NAMES, "tiny"]) assert.ok(files.includes(`${name}.yaml`), name);
    for (const file of files) {
      const config = await loadConfig(configPath(file));
      const stem = file.replace(/\.yaml$/, "");
      assert.equal(config.name, stem, file);
      assert.equal(config.checkpoint, stem, file);
      assert.equal(config.source.format, "svd-stream", file);
      assert.equal(config.source.path, configPath(file), file);
      assert.ok(Object.isFrozen(config.unet.channelMult), `${file}: resolved config is frozen`);
    }
  },
});

Deno.test({
  name: "the real configs share SVD's networks: FULL.unet, FULL.vae, ViT-H-14, scale 0.18215",
  permissions: { read: true },
  async fn() {
    for (const name of SVD_NAMES) {
      const config = await loadConfig(configPath(`${name}.yaml`));
      assert.deepEqual(config.unet, FULL.unet, name);
      const { decoder, ...vae } = config.vae;
      assert.deepEqual(vae, FULL.vae, name);
      assert.equal(decoder, name.endsWith("image_decoder") ? "image" : "temporal", name);
      assert.deepEqual(config.imageEncoder, FULL.imageEncoder, name);
      assert.equal(config.scaleFactor, 0.18215, name);
    }
  },
});

/** sgm `simple_video_sample.py` defaults: SVD 14 frames / 25 steps / CFG 1.0→2.5, XT 25 / 30 / 1.5→3.0. */
function expectedSampling(name: string): SvdConfig["sampling"] {
  const xt = name.startsWith("svd_xt");
  return {
    numFrames: xt ? 25 : 14,
    numSteps: xt ? 30 : 25,
    minGuidance: xt ? 1.5 : 1.0,
    maxGuidance: xt ? 3.0 : 2.5,
    guider: "linear",
    fps: 7,
    motionBucketId: 127,
    condAug: 0.02,
    decodingT: 14,
    width: 1024,
    height: 576,
    sigmaMin: 0.002,
    sigmaMax: 700,
    rho: 7,
    seed: null,
  };
}

Deno.test({
  name: "the real configs hold sgm's sampling defaults (svd: 14 frames, 25 steps; xt: 25, 30)",
  permissions: { read: true },
  async fn() {
    for (const name of SVD_NAMES) {
      const config = await loadConfig(configPath(`${name}.yaml`));
      assert.deepEqual(config.sampling, expectedSampling(name), name);
    }
  },
});

Deno.test({
  name: "configs/tiny.yaml is the tiny fixture model with the fixture's run settings",
  permissions: { read: true },
  async fn() {
    const config = await loadConfig(configPath("tiny.yaml"));
    assert.deepEqual(config.unet, TINY.unet);
    assert.deepEqual(config.vae, { ...TINY.vae, decoder: "temporal" });
    assert.deepEqual(config.imageEncoder, TINY.imageEncoder);
    // manifest.json run_settings: 64×128, 4 frames, 3 steps, decoding_t 3, fps_id 6, seed 23.
    assert.deepEqual(
      { ...config.sampling },
      {
        numFrames: 4,
        numSteps: 3,
        minGuidance: 1.0,
        maxGuidance: 2.5,
        guider: "linear",
        fps: 7,
        motionBucketId: 127,
        condAug: 0.02,
        decodingT: 3,
        width: 128,
        height: 64,
        sigmaMin: 0.002,
        sigmaMax: 700,
        rho: 7,
        seed: 23,
      },
    );
  },
});
