/**
 * sgm's `outdim` end to end: the fixture's sgm config with 64-wide micro-conditioning embeddings
 * (`adm_in_channels` 192, not SVD's 768) loads, converts with random weights of the matching
 * shapes, and generates on the CPU, the UNet fed the 192-wide vector sgm would build.
 */

import assert from "node:assert/strict";
import { microConditioningVector } from "../pipeline/conditioning/micro_conditioning.ts";
import { parseConfig, type SvdConfig } from "../pipeline/config/mod.ts";
import { convertCheckpoint } from "../pipeline/convert/convert.ts";
import {
  generateVideo,
  type GenerationEvent,
  modelConstants,
  type NetworkRunner,
} from "../pipeline/generate.ts";
import { InferenceClient, readModelDirectory } from "../pipeline/runtime/mod.ts";
import type { Tensor } from "../pipeline/tensor.ts";
import { RandomWeights } from "../pipeline/weights/random_weights.ts";
import { fixturePath } from "./_fixtures.ts";

const OUTDIM = 64;

/** The fixture's sgm config.yaml with every ConcatTimestepEmbedderND `outdim` at 64. */
function outdimConfig(): SvdConfig {
  const original = Deno.readTextFileSync(fixturePath("config.yaml"));
  const text = original
    .replaceAll("outdim: 256", `outdim: ${OUTDIM}`)
    .replace("adm_in_channels: 768", `adm_in_channels: ${3 * OUTDIM}`);
  assert.equal(text.split(`outdim: ${OUTDIM}`).length, 4, "three embedders edited");
  return parseConfig(text, "outdim64/config.yaml");
}

/** A 2-frame 64×64 run of 2 steps. */
const PARAMS = {
  numFrames: 2,
  numSteps: 2,
  minGuidance: 1,
  maxGuidance: 2.5,
  guider: "linear" as const,
  fps: 7,
  motionBucketId: 127,
  condAug: 0.02,
  decodingT: 2,
  width: 64,
  height: 64,
  seed: 5,
};

/** `[1, 3, 64, 64]` a smooth test image in [-1, 1]. */
function image(): Tensor {
  const data = new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i / 97));
  return { dims: [1, 3, 64, 64], data };
}

Deno.test("an sgm config with outdim 64 converts and generates, feeding the UNet a 192-wide y", async (t) => {
  const config = outdimConfig();
  assert.equal(config.unet.admInChannels, 192);
  const root = await Deno.makeTempDir({ prefix: "outdim_model_" });
  try {
    const out = `${root}/outdim64`;
    await convertCheckpoint({ config, source: new RandomWeights(3), out });

    await t.step("the converted UNet takes y [N, 192] and model.json says so", async () => {
      const model = await readModelDirectory(out);
      const y = model.graphs.unet?.manifest.inputs.find((input) => input.name === "y");
      assert.deepEqual(y?.dims, ["N", 192]);
      assert.equal(model.manifest.config.unet.admInChannels, 192);
      assert.equal(modelConstants(model.manifest.config).microConditioningOutdim, 64);
    });

    await using client = await InferenceClient.start({ modelDir: out });
    const feeds: Record<string, Tensor>[] = [];
    const runner: NetworkRunner = {
      run(graph, inputs) {
        if (graph === "unet") feeds.push(inputs);
        return client.run(graph, inputs);
      },
    };

    await t.step("generateVideo runs with the config's constants", async () => {
      const events: GenerationEvent[] = [];
      const video = await generateVideo({
        image: image(),
        params: PARAMS,
        model: modelConstants(config),
        networks: runner,
        previews: false,
        onEvent: (event) => events.push(event),
      });
      assert.equal(video.frames.length, 2);
      assert.equal(video.frames[0].length, 64 * 64 * 3);
      assert.ok(video.latent.data.every(Number.isFinite), "a finite latent");
      assert.deepEqual(events.filter((e) => e.type === "step").length, 2);
      // Both CFG halves carry sgm's vector: [emb(fps − 1) | emb(motion) | emb(cond_aug)], 64 each.
      assert.equal(feeds.length, 2);
      const vector = microConditioningVector(
        { fpsId: 6, motionBucketId: 127, condAug: 0.02 },
        2,
        64,
      );
      for (const { y } of feeds) {
        assert.deepEqual(y.dims, [4, 192]);
        assert.deepEqual(y.data.slice(0, 2 * 192), vector.data);
        assert.deepEqual(y.data.slice(2 * 192), vector.data);
      }
    });

    await t.step(
      "SVD's 256-wide embeddings do not fit this UNet: the feed is refused",
      async () => {
        await assert.rejects(
          generateVideo({
            image: image(),
            params: PARAMS,
            model: { ...modelConstants(config), microConditioningOutdim: 256 },
            networks: client,
            previews: false,
          }),
          /\by\b.*768/,
        );
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
