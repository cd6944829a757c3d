import assert from "node:assert/strict";
import { decodeImage } from "../../pipeline/image/decode_image.ts";
import { imageToTensor } from "../../pipeline/image/image_tensor.ts";
import { planResize, type ResizePlan } from "../../pipeline/image/size_policy.ts";
import { assertClose, fixturePath, readFixture } from "../_fixtures.ts";

/** An RGB image from a function of (x, y, channel). */
function image(width: number, height: number, value: (x: number, y: number, c: number) => number) {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = value(x, y, c);
    }
  }
  return rgb;
}

function whole(width: number, height: number, outWidth: number, outHeight: number): ResizePlan {
  return { crop: { x: 0, y: 0, width, height }, width: outWidth, height: outHeight };
}

Deno.test({
  name: "imageToTensor() of the fixture PNG equals sgm's cond_frames_without_noise exactly",
  permissions: { read: true, env: ["SVD_FIXTURES"] },
  async fn() {
    const name = "input.cond_frames_without_noise";
    const { [name]: expected } = await readFixture("conditioning.safetensors", [name]);
    const { width, height, rgb } = await decodeImage(
      await Deno.readFile(fixturePath("input.png")),
      { maxPixels: 1 << 20 },
    );
    for (
      const plan of [
        planResize({ width, height }, { policy: "native" }),
        planResize({ width, height }, { policy: "cover", targetWidth: 128, targetHeight: 64 }),
      ]
    ) {
      const x = imageToTensor(rgb, width, height, plan);
      assert.equal(assertClose(x, expected, 1e-6, "cond_frames_without_noise"), 0);
    }
  },
});

Deno.test({
  name: "imageToTensor() maps bytes by v / 255 × 2 − 1 into [1, 3, H, W] planes",
  permissions: "none",
  fn() {
    // pixel (0, 0) = (0, 255, 51), the rest 128
    const rgb = image(64, 64, (x, y, c) => (x === 0 && y === 0 ? [0, 255, 51][c] : 128));
    const x = imageToTensor(rgb, 64, 64, whole(64, 64, 64, 64));
    assert.deepEqual(x.dims, [1, 3, 64, 64]);
    const plane = 64 * 64;
    assert.deepEqual([x.data[0], x.data[plane], x.data[2 * plane]], [-1, 1, Math.fround(-0.6)]);
    assert.equal(x.data[1], Math.fround(Math.fround(128 / 255) * 2 - 1));
  },
});

Deno.test({
  name: "imageToTensor() takes the crop rectangle without resizing when sizes match",
  permissions: "none",
  fn() {
    const rgb = image(100, 80, (x, y, c) => (x + 2 * y + 50 * c) % 256);
    const plan: ResizePlan = { crop: { x: 7, y: 5, width: 64, height: 64 }, width: 64, height: 64 };
    const x = imageToTensor(rgb, 100, 80, plan);
    const at = (c: number, i: number, j: number) => x.data[(c * 64 + i) * 64 + j];
    for (const [c, i, j] of [[0, 0, 0], [1, 10, 20], [2, 63, 63]]) {
      const v = (j + 7 + 2 * (i + 5) + 50 * c) % 256;
      assert.equal(at(c, i, j), Math.fround(Math.fround(Math.fround(v / 255) * 2) - 1));
    }
  },
});

Deno.test({
  name: "imageToTensor() resizing keeps a flat image flat and a linear ramp linear",
  permissions: "none",
  fn() {
    const flat = imageToTensor(image(300, 200, () => 200), 300, 200, whole(300, 200, 128, 64));
    const expected = 200 / 255 * 2 - 1;
    assert.ok(flat.data.every((v) => Math.abs(v - expected) < 1e-6));
    // a horizontal ramp v = x over 256 columns, halved: output j is centred on x = 2j + 0.5
    const ramp = imageToTensor(image(256, 64, (x) => x), 256, 64, whole(256, 64, 128, 64));
    for (let j = 4; j < 124; j++) {
      const byte = (ramp.data[10 * 128 + j] + 1) / 2 * 255;
      assert.ok(Math.abs(byte - (2 * j + 0.5)) < 1e-3, `column ${j}: ${byte}`);
    }
    // and upscaled ×2: output j is centred on x = (j + 0.5) / 2 - 0.5
    const up = imageToTensor(image(64, 64, (x) => 3 * x), 64, 64, whole(64, 64, 128, 128));
    for (let j = 8; j < 120; j++) {
      const byte = (up.data[10 * 128 + j] + 1) / 2 * 255;
      assert.ok(Math.abs(byte - 3 * ((j + 0.5) / 2 - 0.5)) < 1e-3, `column ${j}: ${byte}`);
    }
  },
});

Deno.test({
  name: "imageToTensor() upscales with PIL's bicubic kernel (a = −0.5, pixel centres aligned)",
  permissions: "none",
  fn() {
    // one column of 200 at x = 8 in a 16-wide image, doubled: output j sits at source position
    // (j + 0.5) / 2, so j = 16 is 0.25 from the column's centre, j = 15 0.75, j = 14 1.25:
    // cubic(0.25) = 0.8672, cubic(0.75) = 0.2266, cubic(1.25) = −0.0703 (clamped to 0)
    const column = image(16, 64, (x) => (x === 8 ? 200 : 0));
    const x = imageToTensor(column, 16, 64, whole(16, 64, 32, 64));
    const bytes = Array.from(x.data.subarray(0, 32), (v) => (v + 1) / 2 * 255);
    const expected = [0.8671875, 0.2265625].map((w) => 200 * w);
    assert.ok(Math.abs(bytes[16] - expected[0]) < 1e-3 && Math.abs(bytes[17] - expected[0]) < 1e-3);
    assert.ok(Math.abs(bytes[15] - expected[1]) < 1e-3 && Math.abs(bytes[18] - expected[1]) < 1e-3);
    assert.deepEqual([bytes[14], bytes[19]], [0, 0]);
  },
});

Deno.test({
  name: "imageToTensor() antialiases when shrinking: a 1-pixel checkerboard becomes mid-grey",
  permissions: "none",
  fn() {
    const checker = image(256, 256, (x, y) => ((x + y) % 2 === 0 ? 0 : 255));
    for (const [w, h] of [[64, 64], [128, 64], [192, 128]]) {
      const x = imageToTensor(checker, 256, 256, whole(256, 256, w, h));
      // away from the borders (where the kernel is cut and renormalised)
      let worst = 0;
      for (let i = 4; i < h - 4; i++) {
        for (let j = 4; j < w - 4; j++) worst = Math.max(worst, Math.abs(x.data[i * w + j]));
      }
      assert.ok(worst < 0.1, `${w}×${h}: |v| up to ${worst}`);
    }
  },
});

Deno.test({
  name: "imageToTensor() clamps bicubic overshoot to [−1, 1]",
  permissions: "none",
  fn() {
    const step = image(128, 64, (x) => (x < 64 ? 0 : 255));
    const x = imageToTensor(step, 128, 64, whole(128, 64, 192, 64));
    assert.ok(x.data.every((v) => v >= -1 && v <= 1));
    assert.ok(x.data.some((v) => v === 1) && x.data.some((v) => v === -1));
  },
});

Deno.test({
  name: "imageToTensor() rejects a wrong buffer length and a crop outside the image",
  permissions: "none",
  fn() {
    assert.throws(
      () => imageToTensor(new Uint8Array(10), 64, 64, whole(64, 64, 64, 64)),
      RangeError,
      "RGB buffer has 10 bytes, a 64×64 image needs 12288",
    );
    const plan: ResizePlan = { crop: { x: 1, y: 0, width: 64, height: 64 }, width: 64, height: 64 };
    assert.throws(
      () => imageToTensor(new Uint8Array(64 * 64 * 3), 64, 64, plan),
      RangeError,
      "Crop 64×64 at (1, 0) is not inside the 64×64 image",
    );
  },
});
