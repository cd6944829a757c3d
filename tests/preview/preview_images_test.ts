import assert from "node:assert/strict";
import { decodeImage } from "../../pipeline/image/decode_image.ts";
import { sniffImage } from "../../pipeline/image/image_header.ts";
import { encodePreviewFrames } from "../../pipeline/preview/preview_images.ts";
import { latentToRgb } from "../../pipeline/preview/latent_preview.ts";
import { tensor } from "../../pipeline/tensor.ts";

const PREFIX = "data:image/png;base64,";

function pngOf(url: string): Uint8Array {
  assert.ok(url.startsWith(PREFIX), url.slice(0, 40));
  return Uint8Array.from(atob(url.slice(PREFIX.length)), (c) => c.charCodeAt(0));
}

/** Seeded standard normal values (Box–Muller over a 32-bit LCG). */
function gaussian(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const uniform = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 1) / 4294967297;
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const a = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

Deno.test({
  name: "encodePreviewFrames() keeps every frame of a full-size noise latent under 16 KB",
  permissions: "none",
  fn() {
    // [25, 4, 72, 128]: svd_xt at 576×1024; white noise is the worst case for PNG (~27.7 KB
    // at 128×72), so these frames are halved once
    const x0 = tensor([25, 4, 72, 128], gaussian(25 * 4 * 72 * 128));
    const urls = encodePreviewFrames(x0);
    assert.equal(urls.length, 25);
    for (const url of urls) {
      const png = pngOf(url);
      assert.ok(png.length <= 16384, `${png.length} bytes`);
      assert.deepEqual(sniffImage(png), { format: "png", width: 64, height: 36 });
    }
  },
});

Deno.test({
  name: "encodePreviewFrames() keeps a smooth latent at the latent's size, pixels as latentToRgb",
  permissions: "none",
  async fn() {
    const [t, h, w] = [2, 72, 128];
    const data = new Float32Array(t * 4 * h * w);
    for (let i = 0; i < data.length; i++) {
      const x = i % w, y = Math.floor(i / w) % h, c = Math.floor(i / (h * w)) % 4;
      data[i] = Math.sin(x / 9 + c) * Math.cos(y / 7 - c);
    }
    const x0 = tensor([t, 4, h, w], data);
    const urls = encodePreviewFrames(x0);
    const expected = latentToRgb(x0);
    for (let f = 0; f < t; f++) {
      const png = pngOf(urls[f]);
      assert.ok(png.length <= 16384, `${png.length} bytes`);
      const decoded = await decodeImage(png, { maxPixels: 1e6 });
      assert.deepEqual(decoded, { width: w, height: h, rgb: expected[f] });
    }
  },
});

Deno.test({
  name: "encodePreviewFrames() halves to maxSide and to a small maxBytes, box-averaging 2×2",
  permissions: "none",
  async fn() {
    const x0 = tensor([1, 4, 72, 128], gaussian(4 * 72 * 128, 7));
    const [side] = encodePreviewFrames(x0, { maxSide: 40 });
    assert.deepEqual(sniffImage(pngOf(side)), { format: "png", width: 32, height: 18 });
    const [tiny] = encodePreviewFrames(x0, { maxBytes: 600 });
    const png = pngOf(tiny);
    assert.ok(png.length <= 600, `${png.length} bytes`);
    // a 2×1 latent frame halves to the rounded mean of its two pixels
    const pair = tensor([1, 4, 1, 2], new Float32Array([1, 0, 0, 0, 0, 0, 0, 0]));
    const [full] = latentToRgb(pair);
    const [one] = encodePreviewFrames(pair, { maxSide: 1 });
    const { rgb } = await decodeImage(pngOf(one), { maxPixels: 1 });
    const mean = [0, 1, 2].map((c) => (2 * full[c] + 2 * full[3 + c] + 2) >> 2);
    assert.deepEqual(Array.from(rgb), mean);
  },
});

Deno.test({
  name: "encodePreviewFrames() rejects a non-latent shape and budgets it cannot meet",
  permissions: "none",
  fn() {
    assert.throws(() => encodePreviewFrames(tensor([1, 3, 8, 8])), RangeError, "[1, 3, 8, 8]");
    assert.throws(() => encodePreviewFrames(tensor([1, 4, 8, 8]), { maxBytes: 100 }), RangeError);
    assert.throws(() => encodePreviewFrames(tensor([1, 4, 8, 8]), { maxSide: 0 }), RangeError);
  },
});
