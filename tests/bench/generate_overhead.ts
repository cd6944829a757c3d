/**
 * Pipeline overhead benchmark: runs `generateVideo` on the tiny demo model (previews on) and
 * splits the wall time into time inside network calls (the inference Worker) and everything else
 * (conditioning maths, CFG batching, guidance, Euler steps, preview encoding, decode glue).
 *
 * Usage: deno task bench generate [--width 512 --height 256 --frames 14 --steps 10]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { type GraphName, MANIFEST_FILE, readModelJson } from "../../pipeline/model_json/mod.ts";
import { generateVideo, modelConstants, type NetworkRunner } from "../../pipeline/generate.ts";
import { prepareImage } from "../../pipeline/image/prepare_image.ts";
import { InferenceClient } from "../../pipeline/runtime/mod.ts";

const FIXTURE_IMAGE = new URL("../fixtures/tiny/input.png", import.meta.url).pathname;

/** Runs the benchmark. */
export async function generateOverhead(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      width: { type: "string", default: "512" },
      height: { type: "string", default: "256" },
      frames: { type: "string", default: "14" },
      steps: { type: "string", default: "10" },
    },
  });
  const [width, height] = [Number(values.width), Number(values.height)];
  const modelDir = await ensureDemoModel();
  await using client = await InferenceClient.start({ modelDir });
  const inside: Partial<Record<GraphName, number>> = {};
  const runner: NetworkRunner = {
    async run(graph, feeds) {
      const started = performance.now();
      try {
        return await client.run(graph, feeds);
      } finally {
        inside[graph] = (inside[graph] ?? 0) + performance.now() - started;
      }
    },
  };
  const image = await prepareImage(await Deno.readFile(FIXTURE_IMAGE), {
    width,
    height,
    policy: "cover",
    maxPixels: 64e6,
  });
  const params = {
    numFrames: Number(values.frames),
    numSteps: Number(values.steps),
    minGuidance: 1,
    maxGuidance: 2.5,
    guider: "linear" as const,
    fps: 7,
    motionBucketId: 127,
    condAug: 0.02,
    decodingT: 14,
    width,
    height,
    seed: 1,
  };
  let previewFrames = 0;
  const started = performance.now();
  const video = await generateVideo({
    image: image.tensor,
    params,
    model: modelConstants((await readModelJson(`${modelDir}/${MANIFEST_FILE}`)).config),
    networks: runner,
    onEvent: (e) => {
      if (e.type === "step") previewFrames += e.frames?.length ?? 0;
    },
  });
  const wall = performance.now() - started;
  const network = Object.values(inside).reduce((a, b) => a + b, 0);
  console.log(
    `generate ${params.numFrames} frames ${width}×${height}, ${params.numSteps} steps, tiny model, ` +
      `previews on (${previewFrames} preview frames):`,
  );
  console.log(
    `  wall ${wall.toFixed(0)} ms; inside network calls ${network.toFixed(0)} ms ` +
      `(${Object.entries(inside).map(([g, ms]) => `${g} ${ms!.toFixed(0)}`).join(", ")})`,
  );
  console.log(
    `  everything else ${(wall - network).toFixed(0)} ms = ${
      ((wall - network) / wall * 100).toFixed(1)
    } % ` +
      `of wall, ${((wall - network) / params.numSteps).toFixed(1)} ms per step; seed ${video.seed}`,
  );
}
