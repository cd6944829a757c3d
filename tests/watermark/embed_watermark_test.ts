import assert from "node:assert/strict";
import { decodePng } from "../../pipeline/image/png_decode.ts";
import { encodeVideo } from "../../pipeline/video/encode_video.ts";
import {
  embedWatermark,
  readWatermark,
  SGM_WATERMARK_BITS,
  WatermarkDetector,
  yuvOfPixel,
} from "../../pipeline/watermark/mod.ts";
import { fixtureClip, panningClip, saturatedNoise } from "./_content.ts";

/** An 8×8 grey (100, 100, 100) frame: one 4×4 block of the band, every U 128, every band value 256. */
const grey = () => new Uint8Array(8 * 8 * 3).fill(100);

/** The pixels of `frame` that differ from grey, as "row,col": [r, g, b]. */
function changed(frame: Uint8Array): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (let p = 0; p < 64; p++) {
    const rgb = [...frame.subarray(3 * p, 3 * p + 3)];
    if (rgb.some((v) => v !== 100)) out[`${p >> 3},${p & 7}`] = rgb;
  }
  return out;
}

Deno.test("embedWatermark writes bit 1 into a grey block exactly as computed by hand", () => {
  // All 16 band values are 256 (2 × U 128); the carrier is position 1, whose pixels are rows 0–1,
  // columns 2–3. Bit 1: the reference's level ⌊256/36⌋·36 + 27 = 279 costs 23², nothing to clip.
  // The patch's U sum must rise by 2·23 = 46; each pixel takes an equal share of what is left,
  // blue by ΔU/0.492 (rounded), green by −0.194 × the blue it got (rounded):
  //   (0,2) wants 11.5: B 100 + 23.37 → 123, G 100 − 0.194·23 → 96; U = 139 (+11), 35 left
  //   (0,3) wants 35/3: B → 124, G 100 − 0.194·24 → 95; U = 140 (+12), 23 left
  //   (1,2) wants 11.5: as (0,2), 12 left;  (1,3) wants 12: as (0,3), 0 left.
  // U sum 139 + 140 + 139 + 140 = 558, band value 279, 279 mod 36 = 27 > 18: reads 1.
  const frame = grey();
  assert.equal(embedWatermark(frame, 8, 8, [1]), 1);
  assert.deepEqual(changed(frame), {
    "0,2": [100, 96, 123],
    "0,3": [100, 95, 124],
    "1,2": [100, 96, 123],
    "1,3": [100, 95, 124],
  });
  assert.deepEqual(
    [[100, 96, 123], [100, 95, 124]].map(([r, g, b]) => yuvOfPixel(r, g, b)),
    [[100, 139, 128], [100, 140, 128]],
    "luma and V held, U moved",
  );
  assert.deepEqual(readWatermark(frame, 8, 8, 1).bits, [1]);
});

Deno.test("embedWatermark writes bit 0 into a grey block exactly as computed by hand", () => {
  // Bit 0: level 7·36 + 9 = 261 costs 5²: the U sum rises by 10.
  //   (0,2) wants 2.5: B → 105, G → 99; U 130 (+2), 8 left.  (0,3) wants 8/3: same, 6 left.
  //   (1,2) wants 3: B → 106, G → 99; U 131 (+3), 3 left.    (1,3) wants 3: same, 0 left.
  // U sum 522, band value 261, 261 mod 36 = 9: reads 0.
  const frame = grey();
  embedWatermark(frame, 8, 8, [0]);
  assert.deepEqual(changed(frame), {
    "0,2": [100, 99, 105],
    "0,3": [100, 99, 105],
    "1,2": [100, 99, 106],
    "1,3": [100, 99, 106],
  });
  assert.deepEqual(readWatermark(frame, 8, 8, 1).bits, [0]);
});

Deno.test("embedWatermark leaves frames with fewer blocks than bits alone, and checks the size", () => {
  const small = new Uint8Array(48 * 56 * 3).fill(77); // 6 × 7 = 42 blocks < 48
  assert.equal(embedWatermark(small, 56, 48), 0);
  assert.ok(small.every((v) => v === 77));
  const enough = new Uint8Array(56 * 56 * 3).fill(77); // 7 × 7 = 49 blocks
  assert.equal(embedWatermark(enough, 56, 56), 49);
  assert.deepEqual(readWatermark(enough, 56, 56).bits, SGM_WATERMARK_BITS);
  assert.throws(
    () => embedWatermark(new Uint8Array(10), 8, 8),
    /8×8 RGB frame has 192 bytes, got 10/,
  );
});

Deno.test("embedWatermark never touches red and moves cv2's Y and V by at most one level", () => {
  for (const [frame] of [panningClip(1024, 576, 1), saturatedNoise(1024, 576, 1)]) {
    const marked = frame.slice();
    embedWatermark(marked, 1024, 576);
    let moved = 0;
    for (let i = 0; i < frame.length; i += 3) {
      assert.equal(marked[i], frame[i]);
      const before = yuvOfPixel(frame[i], frame[i + 1], frame[i + 2]);
      const after = yuvOfPixel(marked[i], marked[i + 1], marked[i + 2]);
      assert.ok(Math.abs(after[0] - before[0]) <= 1, `luma of pixel ${i / 3}`);
      assert.ok(Math.abs(after[2] - before[2]) <= 1, `V of pixel ${i / 3}`);
      if (marked[i + 2] !== frame[i + 2]) moved++;
    }
    // At most 16 pixels (a 2×2 patch per coefficient moved) of each 8×8 block change.
    assert.ok(moved > 0 && moved <= (frame.length / 3) / 4, `${moved} pixels moved`);
  }
});

Deno.test("marked frames read back all 48 bits from our PNG frames: textured, smooth, saturated, demo size", async () => {
  const clips: [string, number, number, Uint8Array[]][] = [
    ["landscape", 1024, 576, panningClip(1024, 576, 3)],
    ["smooth fixture", 1024, 576, await fixtureClip(1024, 576, 3)],
    ["saturated noise", 1024, 576, saturatedNoise(1024, 576, 3)],
    ["landscape at the demo size", 128, 64, panningClip(128, 64, 3)],
    ["saturated noise at the demo size", 128, 64, saturatedNoise(128, 64, 3)],
  ];
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, width, height, frames] of clips) {
      for (const frame of frames) embedWatermark(frame, width, height);
      const out = `${dir}/${name.replaceAll(" ", "_")}`;
      await encodeVideo(frames, { width, height, fps: 7, format: "frames", out });
      const detector = new WatermarkDetector();
      for (const file of [...Deno.readDirSync(out)].map((e) => e.name).sort()) {
        const png = decodePng(await Deno.readFile(`${out}/${file}`));
        detector.add(png.rgb, png.width, png.height);
      }
      const result = detector.result();
      assert.deepEqual(result.frames.map((f) => f.matched), [48, 48, 48], name);
      assert.equal(result.found, true, name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unmarked frames are not taken for marked ones", async () => {
  for (
    const [name, frames] of [
      ["landscape", panningClip(1024, 576, 2)],
      ["smooth fixture", await fixtureClip(1024, 576, 2)],
      ["saturated noise", saturatedNoise(1024, 576, 2)],
    ] as const
  ) {
    const detector = new WatermarkDetector();
    for (const frame of frames) detector.add(frame, 1024, 576);
    const result = detector.result();
    assert.equal(result.found, false, name);
    assert.ok(result.frames.every((f) => f.verdict !== "very likely"), name);
  }
});
