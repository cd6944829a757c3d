/**
 * sgm's watermark on the service path: a generation through the HTTP app on the demo model comes
 * back marked, and a job spec with `watermark: false` does not.
 *
 * The demo model's frames are saturated coloured noise, which no codec keeps in detail, so the
 * clips are encoded with `crf 0` (lossless x264 of the yuv420p frames; the 4:2:0 chroma is still
 * lossy): pooled over its frames such a clip reads 48 of 48 bits (measured; the frames alone
 * 31 to 47) and the unmarked one 22, against the 36 that count as found. What survives our
 * *default* encode on natural frames is tests/watermark/codec_test.ts's business.
 */

import assert from "node:assert/strict";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { modelConstants } from "../../pipeline/generate.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import { parseRequest } from "../../pipeline/request/mod.ts";
import { InferenceClient, readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { runVideoJob } from "../../pipeline/service/video_job.ts";
import { readVideoFrames } from "../../pipeline/video/mod.ts";
import { type ClipDetection, WatermarkDetector } from "../../pipeline/watermark/mod.ts";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, testService, upload } from "./_service.ts";

const SQUARE = { ...SMALL, width: "256", height: "256", steps: "2", num_frames: "4" } as const;

async function detect(bytes: Uint8Array): Promise<ClipDetection> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/clip.mp4`, bytes);
    const clip = await readVideoFrames(`${dir}/clip.mp4`);
    const detector = new WatermarkDetector();
    for await (const frame of clip.frames) detector.add(frame, clip.width, clip.height);
    return detector.result();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a generation through the HTTP service comes back with sgm's watermark", async () => {
  await using service = await testService();
  const response = await service.app.request("/v1/generations", {
    method: "POST",
    body: upload(await inputPng(), { ...SQUARE, crf: "0", preview: "none" }),
    headers: { Accept: "text/event-stream" },
  });
  assert.equal(response.status, 200);
  const events = await new SseReader(response).rest();
  const done = events.at(-1)!;
  assert.equal(done.event, "done", JSON.stringify(done.data));
  const video = await service.app.request(done.data.video_url);
  const result = await detect(new Uint8Array(await video.arrayBuffer()));
  assert.equal(result.frames.length, 4);
  assert.equal(result.found, true, `pooled ${result.matched}/48`);
});

Deno.test("runVideoJob marks the frames by default and leaves them alone with watermark: false", async () => {
  const dir = await ensureDemoModel();
  const { manifest } = await readModelDirectory(dir);
  await using client = await InferenceClient.start({ modelDir: dir });
  const images = new ImagePool({ workers: 1 });
  const context = { surface: "http", model: manifest.name, sampling: manifest.config.sampling };
  const run = (fields: Record<string, string>) =>
    runVideoJob(
      Deno.readFileSync(new URL("../fixtures/tiny/input.png", import.meta.url)),
      parseRequest(
        { num_frames: 4, steps: 2, width: 256, height: 256, preview: "none", crf: 0, ...fields },
        { ...context, surface: "http" },
      ),
      { images, networks: client, model: modelConstants(manifest.config), maxPixels: 16e6 },
    );
  const marked = await detect((await run({})).bytes);
  assert.equal(marked.found, true, `pooled ${marked.matched}/48`);
  const unmarked = await detect((await run({ watermark: "false" })).bytes);
  assert.equal(unmarked.found, false, `pooled ${unmarked.matched}/48`);
  assert.ok(unmarked.frames.every((f) => f.verdict !== "very likely"));
  await images.close();
});
