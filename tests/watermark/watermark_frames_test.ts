import assert from "node:assert/strict";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { embedWatermark, watermarkFrames } from "../../pipeline/watermark/mod.ts";
import { panningClip } from "./_content.ts";

Deno.test("watermarkFrames marks each frame strip by strip exactly as embedWatermark marks it whole", async () => {
  const clean = panningClip(512, 200, 3); // 25 block rows: strips of 8, 8, 8 and 1
  const whole = clean.map((frame) => frame.slice());
  for (const frame of whole) embedWatermark(frame, 512, 200);
  const strips = clean.map((frame) => frame.slice());
  assert.equal(await watermarkFrames(strips, 512, 200), true);
  strips.forEach((frame, t) => assert.deepEqual(frame, whole[t], `frame ${t}`));
});

Deno.test("watermarkFrames lets timers run while it marks", async () => {
  const frames = panningClip(1024, 576, 2); // 9 strips a frame
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    await watermarkFrames(frames, 1024, 576);
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks >= 2, `${ticks} timer callbacks ran while marking`);
});

Deno.test("watermarkFrames leaves frames too small for 48 bits alone and says so", async () => {
  const frames = [new Uint8Array(40 * 48 * 3).fill(9)]; // 5 × 6 = 30 blocks
  assert.equal(await watermarkFrames(frames, 48, 40), false);
  assert.ok(frames[0].every((v) => v === 9));
});

Deno.test("watermarkFrames stops with GenerationCancelledError when its signal fires", async () => {
  const controller = new AbortController();
  controller.abort(new Error("client left"));
  const error = await watermarkFrames(panningClip(64, 64, 1), 64, 64, {
    signal: controller.signal,
  }).catch((e) => e);
  assert.ok(error instanceof GenerationCancelledError);
  assert.equal((error.cause as Error).message, "client left");
});
