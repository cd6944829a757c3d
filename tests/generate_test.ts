/**
 * The whole pipeline against sgm's run: the tiny model converted from the fixture checkpoint, the
 * fixture's input.png and noise, and the conditioning, CLIP and sampling fixtures as the judge
 * (tolerances from tests/fixtures/README.md).
 */

import assert from "node:assert/strict";
import { loadConfig } from "../pipeline/config/mod.ts";
import type { GraphName } from "../pipeline/model_json/mod.ts";
import { GenerationCancelledError } from "../pipeline/errors.ts";
import {
  generateVideo,
  type GenerationEvent,
  modelConstants,
  type NetworkRunner,
} from "../pipeline/generate.ts";
import { prepareImage } from "../pipeline/image/prepare_image.ts";
import { InferenceClient } from "../pipeline/runtime/mod.ts";
import type { Tensor } from "../pipeline/tensor.ts";
import { readIntegers } from "./_fixture_integers.ts";
import { assertClose, fixturePath, readFixture } from "./_fixtures.ts";
import { tinyModelDir } from "./runtime/_tiny_model.ts";

/** Records every graph call's feeds and outputs. */
function recording(client: InferenceClient) {
  const calls: { graph: GraphName; feeds: Record<string, Tensor>; out: Record<string, Tensor> }[] =
    [];
  const runner: NetworkRunner = {
    async run(graph, feeds) {
      const out = await client.run(graph, feeds);
      calls.push({ graph, feeds, out });
      return out;
    },
  };
  return { runner, calls };
}

async function setup() {
  const config = await loadConfig(fixturePath("config.yaml"));
  const image = await prepareImage(await Deno.readFile(fixturePath("input.png")), {
    width: 128,
    height: 64,
    policy: "native",
    maxPixels: 1e6,
  });
  const params = {
    numFrames: 4,
    numSteps: 3,
    minGuidance: 1,
    maxGuidance: 2.5,
    guider: "linear" as const,
    fps: 7, // fps_id 6
    motionBucketId: 127,
    condAug: 0.02,
    decodingT: 3,
    width: 128,
    height: 64,
    seed: 23,
  };
  const model = modelConstants(config);
  return { config, image, params, model };
}

Deno.test("generateVideo reproduces sgm's conditioning, sampling and frames from the fixture noise", async (t) => {
  const { image, params, model } = await setup();
  const s = await readFixture("sampling.safetensors", ["noise", "final_latent", "decoded"]);
  const c = await readFixture("conditioning.safetensors", [
    "input.cond_aug_noise",
    "input.cond_frames_without_noise",
    "input.cond_frames",
    "c.crossattn",
    "c.concat",
    "c.vector",
  ]);
  await using client = await InferenceClient.start({ modelDir: await tinyModelDir() });
  const { runner, calls } = recording(client);
  const events: GenerationEvent[] = [];
  const video = await generateVideo({
    image: image.tensor,
    params,
    model,
    networks: runner,
    noise: { noise: s.noise, condAugNoise: c["input.cond_aug_noise"] },
    onEvent: (e) => events.push(e),
  });

  await t.step("the image tensor is sgm's cond_frames_without_noise", () => {
    assertClose(image.tensor, c["input.cond_frames_without_noise"], 0, "image");
  });
  await t.step("conditioning: crossattn, concat (from cond_frames), vector within 1e-4", () => {
    const clip = calls.find((call) => call.graph === "image_encoder")!;
    assertClose(
      { dims: [1, 1, 64], data: clip.out.image_embeds.data },
      c["c.crossattn"],
      1e-4,
      "c.crossattn",
    );
    const vae = calls.find((call) => call.graph === "vae_encoder")!;
    assertClose(vae.feeds.image, c["input.cond_frames"], 1e-6, "cond_frames");
    assertClose(vae.out.mean, c["c.concat"], 1e-4, "c.concat");
    const unet = calls.find((call) => call.graph === "unet")!;
    const cond = { dims: [4, 768], data: unet.feeds.y.data.slice(4 * 768) };
    assertClose(cond, c["c.vector"], 1e-4, "c.vector");
  });
  await t.step("sampling: final latent and decoded video within 2e-3", () => {
    assertClose(video.latent, s.final_latent, 2e-3, "final_latent");
    const decoderCalls = calls.filter((call) => call.graph === "vae_decoder");
    assert.deepEqual(decoderCalls.map((call) => call.feeds.z.dims[0]), [3, 1]); // decoding_t = 3
    const decoded = new Float32Array(decoderCalls.flatMap((call) => [...call.out.image.data]));
    assertClose({ dims: s.decoded.dims, data: decoded }, s.decoded, 2e-3, "decoded");
  });
  await t.step("frames: every value within ±1 of frames_uint8, at most 1 % different", async () => {
    const expected = await readIntegers("sampling.safetensors", "frames_uint8");
    const actual = video.frames.flatMap((f) => [...f]);
    assert.equal(actual.length, expected.length);
    let different = 0;
    for (let i = 0; i < actual.length; i++) {
      const d = Math.abs(actual[i] - expected[i]);
      assert.ok(d <= 1, `value ${i}: ${actual[i]} vs ${expected[i]}`);
      if (d) different++;
    }
    assert.ok(different <= actual.length / 100, `${different} values differ`);
  });
  await t.step(
    "events: started, one step per sampler step with a preview per frame, decoding",
    () => {
      assert.deepEqual(events.map((e) => e.type), [
        "started",
        "step",
        "step",
        "step",
        "decoding",
        "decoding",
      ]);
      for (const e of events.filter((e) => e.type === "step")) {
        assert.equal(e.frames?.length, 4);
        assert.match(e.frames![0], /^data:image\/png;base64,/);
      }
      assert.deepEqual(events.filter((e) => e.type === "step").map((e) => e.step), [1, 2, 3]);
    },
  );
});

Deno.test("generateVideo stops between steps when its signal aborts", async () => {
  const { image, params, model } = await setup();
  await using client = await InferenceClient.start({ modelDir: await tinyModelDir() });
  const controller = new AbortController();
  const steps: number[] = [];
  await assert.rejects(
    generateVideo({
      image: image.tensor,
      params: { ...params, numSteps: 5 },
      model,
      networks: client,
      previews: false,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== "step") return;
        steps.push(e.step);
        if (e.step === 2) controller.abort(new Error("user cancelled"));
      },
    }),
    GenerationCancelledError,
  );
  assert.deepEqual(steps, [1, 2]);
});

Deno.test("generateVideo with the same seed gives the same video, and another seed another", async () => {
  const { image, params, model } = await setup();
  await using client = await InferenceClient.start({ modelDir: await tinyModelDir() });
  const run = (seed: number) =>
    generateVideo({
      image: image.tensor,
      params: { ...params, seed },
      model,
      networks: client,
      previews: false,
    });
  const [a, b, other] = [await run(7), await run(7), await run(8)];
  assert.deepEqual(a.latent.data, b.latent.data);
  assert.notDeepEqual(a.latent.data, other.latent.data);
  assert.equal(a.seed, 7);
});

Deno.test("generateVideo with unetBatch split (two UNet calls per step) matches the batched run within float32 noise, and sgm's fixture", async () => {
  const { image, params, model } = await setup();
  const s = await readFixture("sampling.safetensors", ["noise", "final_latent"]);
  const c = await readFixture("conditioning.safetensors", ["input.cond_aug_noise"]);
  await using client = await InferenceClient.start({ modelDir: await tinyModelDir() });
  const run = async (unetBatch: "cfg" | "split") => {
    const { runner, calls } = recording(client);
    const video = await generateVideo({
      image: image.tensor,
      params,
      model,
      networks: runner,
      previews: false,
      noise: { noise: s.noise, condAugNoise: c["input.cond_aug_noise"] },
      unetBatch,
    });
    return { video, unetCalls: calls.filter((call) => call.graph === "unet") };
  };
  const batched = await run("cfg");
  const split = await run("split");
  assert.deepEqual(batched.unetCalls.map((call) => call.feeds.x.dims[0]), [8, 8, 8]);
  assert.deepEqual(split.unetCalls.map((call) => call.feeds.x.dims[0]), [4, 4, 4, 4, 4, 4]);
  assert.deepEqual(split.unetCalls[0].feeds.image_only_indicator.dims, [1, 4]);
  // Per step: the two halves are the batched call's output, row for row.
  for (const [step, call] of batched.unetCalls.entries()) {
    const out = call.out.out;
    const half = out.data.length / 2;
    const [uncond, cond] = [
      split.unetCalls[2 * step].out.out,
      split.unetCalls[2 * step + 1].out.out,
    ];
    assertClose({ dims: uncond.dims, data: out.data.slice(0, half) }, uncond, 1e-5, "uncond");
    assertClose({ dims: cond.dims, data: out.data.slice(half) }, cond, 1e-5, "cond");
  }
  assertClose(split.video.latent, batched.video.latent, 1e-5, "final latent, split vs batched");
  assertClose(split.video.latent, s.final_latent, 2e-3, "final_latent (split)");
});
