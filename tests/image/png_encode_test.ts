import assert from "node:assert/strict";
import { decodeImage } from "../../pipeline/image/decode_image.ts";
import { sniffImage } from "../../pipeline/image/image_header.ts";
import { crc32, encodePng } from "../../pipeline/image/png_encode.ts";
import { FFMPEG_PERMISSIONS, ffmpegDecode } from "./_ffmpeg.ts";

/** An image mixing a gradient, a flat band and noise (rows that favour different filters). */
function testImage(width = 37, height = 23): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const i = (y * width + x) * 3 + c;
        rgb[i] = y < 8 ? x * 7 + c * 40 : y < 16 ? 100 : seed >>> 24;
      }
    }
  }
  return rgb;
}

Deno.test({
  name: 'crc32() matches the standard check value of "123456789"',
  permissions: "none",
  fn() {
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  },
});

Deno.test({
  name: "encodePng() round-trips through decodeImage() to identical pixels",
  permissions: "none",
  async fn() {
    for (const [w, h] of [[1, 1], [37, 23], [128, 72]]) {
      const rgb = testImage(w, h);
      const png = encodePng(rgb, w, h);
      assert.deepEqual(sniffImage(png), { format: "png", width: w, height: h });
      const decoded = await decodeImage(png, { maxPixels: 1e6 });
      assert.deepEqual(decoded, { width: w, height: h, rgb });
    }
  },
});

Deno.test({
  name: "encodePng() output is read back identically by ffmpeg (an independent decoder)",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const rgb = testImage();
    const raw = await ffmpegDecode(encodePng(rgb, 37, 23, { level: 1 }), "rgb24");
    assert.deepEqual(raw, rgb);
  },
});

Deno.test({
  name: "encodePng() filters rows: a smooth gradient compresses far below its raw size",
  permissions: "none",
  fn() {
    const w = 256, h = 128;
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      const x = i % w, y = Math.floor(i / w);
      rgb.set([x, y * 2, (x + y) & 255], i * 3);
    }
    const png = encodePng(rgb, w, h);
    assert.ok(png.length < rgb.length / 20, `${png.length} bytes for ${rgb.length} raw`);
    assert.ok(encodePng(new Uint8Array(3), 1, 1).length < 80);
  },
});

Deno.test({
  name: "encodePng() rejects bad sizes, buffers and levels, quoting them",
  permissions: "none",
  fn() {
    assert.throws(() => encodePng(new Uint8Array(0), 0, 1), RangeError, "got 0×1");
    assert.throws(
      () => encodePng(new Uint8Array(5), 1, 2),
      RangeError,
      "RGB buffer has 5 bytes, a 1×2 image needs 6",
    );
    assert.throws(() => encodePng(new Uint8Array(3), 1, 1, { level: 10 }), RangeError, "got 10");
  },
});
