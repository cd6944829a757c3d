/**
 * The measured part of `deno task bench gpu`, run by it in a subprocess (so that ONNX Runtime's
 * own stdout, such as the attention-kernel lines of `ORT_ENABLE_ATTENTION_KERNEL_DEBUG_INFO=1`,
 * can be read apart from ours): load the model, then run `--runs` whole generations as the
 * service runs them (previews streamed, mp4 encoded) and print one `RESULT {json}` line.
 *
 * Usage (by gpu.ts): deno run -A tests/bench/gpu_generation.ts --model-dir DIR --provider cuda
 *   --frames 25 --steps 25 --width 1024 --height 576 --decoding-t N [--runs 2]
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { GraphName } from "../../pipeline/model_json/mod.ts";
import { modelConstants, type NetworkRunner } from "../../pipeline/generate.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { InferenceClient, type Provider } from "../../pipeline/runtime/mod.ts";
import { runVideoJob } from "../../pipeline/service/video_job.ts";

const FIXTURE_IMAGE = new URL("../fixtures/tiny/input.png", import.meta.url).pathname;

/** What one generation measured, in milliseconds. */
export interface GenerationTimes {
  readonly e2e_ms: number;
  readonly first_preview_ms: number;
  readonly unet_ms_per_step_median: number;
  readonly unet_ms_per_step_min: number;
  readonly decode_ms: number;
  readonly encode_ms: number;
  readonly conditioning_ms: number;
  readonly mp4_bytes: number;
  /** Wall-clock span of the run, from `performance.timeOrigin` (to match memory samples). */
  readonly span: readonly [start: number, end: number];
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "model-dir": { type: "string" },
      provider: { type: "string", default: "cuda" },
      frames: { type: "string" },
      steps: { type: "string" },
      width: { type: "string" },
      height: { type: "string" },
      "decoding-t": { type: "string" },
      runs: { type: "string", default: "2" },
    },
    strict: true,
  });
  const modelDir = values["model-dir"]!;
  const provider = values.provider as Provider;
  const manifest = JSON.parse(await Deno.readTextFile(`${modelDir}/model.json`));
  const s = manifest.config.sampling;
  const params = {
    numFrames: Number(values.frames ?? s.numFrames),
    numSteps: Number(values.steps ?? s.numSteps),
    minGuidance: s.minGuidance,
    maxGuidance: s.maxGuidance,
    guider: s.guider,
    fps: s.fps,
    motionBucketId: s.motionBucketId,
    condAug: s.condAug,
    decodingT: Number(values["decoding-t"] ?? s.decodingT),
    width: Number(values.width ?? s.width),
    height: Number(values.height ?? s.height),
    seed: 23,
  };

  const loadStarted = performance.now();
  await using client = await InferenceClient.start({ modelDir, provider });
  const loadMs = performance.now() - loadStarted;

  const calls: { graph: GraphName; ms: number }[] = [];
  const timed: NetworkRunner = {
    async run(graph, feeds) {
      const started = performance.now();
      try {
        return await client.run(graph, feeds);
      } finally {
        calls.push({ graph, ms: performance.now() - started });
      }
    },
  };
  const image = await Deno.readFile(FIXTURE_IMAGE);
  const images = new ImagePool({ workers: 1 });
  const runs: GenerationTimes[] = [];
  for (let i = 0; i < Number(values.runs); i++) {
    calls.length = 0;
    const started = performance.now();
    let firstPreview = NaN;
    const job = await runVideoJob(
      image,
      {
        model: manifest.name,
        params,
        format: "mp4",
        size: "cover",
        preview: "latent",
        keepRunning: false,
        watermark: true, // sgm's default, and part of the cost
      },
      {
        images,
        networks: timed,
        model: modelConstants(manifest.config),
        maxPixels: 64e6,
        onEvent: (event) => {
          if (event.type === "step" && event.frames && Number.isNaN(firstPreview)) {
            firstPreview = performance.now() - started;
          }
        },
      },
    );
    const ended = performance.now();
    const unet = calls.filter((c) => c.graph === "unet").map((c) => c.ms).sort((a, b) => a - b);
    const decode = calls.filter((c) => c.graph === "vae_decoder").reduce((a, c) => a + c.ms, 0);
    runs.push({
      e2e_ms: Math.round(ended - started),
      first_preview_ms: Math.round(firstPreview),
      unet_ms_per_step_median: Math.round(unet[Math.floor(unet.length / 2)]),
      unet_ms_per_step_min: Math.round(unet[0]),
      decode_ms: Math.round(decode),
      encode_ms: job.timings.encodingMs,
      conditioning_ms: job.timings.conditioningMs,
      mp4_bytes: job.bytes.byteLength,
      span: [performance.timeOrigin + started, performance.timeOrigin + ended],
    });
  }
  await images.close();
  console.log(`RESULT ${
    JSON.stringify({
      provider: client.provider,
      load_ms: Math.round(loadMs),
      params: {
        frames: params.numFrames,
        steps: params.numSteps,
        width: params.width,
        height: params.height,
        decoding_t: params.decodingT,
      },
      runs,
    })
  }`);
}

if (import.meta.main) await main(Deno.args);
