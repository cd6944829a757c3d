import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { type DecodedImage, decodeImage } from "../../pipeline/image/decode_image.ts";
import {
  CorruptImageError,
  ImageTooLargeError,
  UnsupportedImageError,
} from "../../pipeline/image/image_errors.ts";
import { fixturePath } from "../_fixtures.ts";
import { FFMPEG_PERMISSIONS, ffmpegDecode, makeImage } from "./_ffmpeg.ts";
import { pngFile, pngHeader } from "./_png_bytes.ts";

const LIMIT = { maxPixels: 4_000_000 };

/** `samples` interleaved values per pixel → RGB, taking sample `pick(c)` (and `>> shift`). */
function toRgb(raw: ArrayLike<number>, samples: number, pick: (c: number) => number, shift = 0) {
  const pixels = raw.length / samples;
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = raw[p * samples + pick(c)] >> shift;
  }
  return rgb;
}

/** Big-endian 16-bit raw bytes → values. */
function u16be(raw: Uint8Array): Uint16Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Uint16Array.from({ length: raw.length / 2 }, (_, i) => view.getUint16(2 * i));
}

function assertImage(image: DecodedImage, width: number, height: number, rgb: Uint8Array) {
  assert.equal(image.width, width);
  assert.equal(image.height, height);
  assert.equal(image.rgb.length, rgb.length);
  const first = image.rgb.findIndex((v, i) => v !== rgb[i]);
  assert.equal(
    first,
    -1,
    `first difference at byte ${first}: ${image.rgb[first]} vs ${rgb[first]}`,
  );
}

function diffStats(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

Deno.test({
  name: "decodeImage() decodes the fixture PNG to 128×64 RGB",
  permissions: { read: true },
  async fn() {
    const image = await decodeImage(Deno.readFileSync(fixturePath("input.png")), LIMIT);
    assert.equal(image.width, 128);
    assert.equal(image.height, 64);
    assert.equal(image.rgb.length, 128 * 64 * 3);
  },
});

Deno.test({
  name: "decodeImage() decodes grey, grey+alpha, RGBA, 16-bit, palette, 1-bit and Adam7 PNGs",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    // each PNG against ffmpeg's decode of it in its own pixel format (no conversion), mapped as
    // PIL's convert("RGB") does: grey replicated, alpha dropped, 16 bits -> high byte
    const source = "testsrc=size=97x61,format=rgba,colorchannelmixer=aa=0.6";
    const grey = () => 0;
    const rgb = (c: number) => c;
    const cases: [string, string, (raw: Uint8Array) => Uint8Array][] = [
      ["rgb24", "rgb24", (raw) => raw],
      ["gray", "gray", (raw) => toRgb(raw, 1, grey)],
      ["ya8", "ya8", (raw) => toRgb(raw, 2, grey)],
      ["rgba", "rgba", (raw) => toRgb(raw, 4, rgb)],
      ["rgb48be", "rgb48be", (raw) => toRgb(u16be(raw), 3, rgb, 8)],
      ["rgba64be", "rgba64be", (raw) => toRgb(u16be(raw), 4, rgb, 8)],
      ["gray16be", "gray16be", (raw) => toRgb(u16be(raw), 1, grey, 8)],
      ["pal8", "rgb24", (raw) => raw],
      ["monob", "gray", (raw) => toRgb(raw, 1, grey)],
    ];
    for (const [pixelFormat, rawFormat, expected] of cases) {
      for (const interlace of [false, true]) {
        const options = ["-pix_fmt", pixelFormat, ...(interlace ? ["-flags", "+ildct"] : [])];
        const png = await makeImage("x.png", options, source);
        assert.equal(png[28], interlace ? 1 : 0, `${pixelFormat}: interlace flag`);
        const image = await decodeImage(png, LIMIT);
        const raw = await ffmpegDecode(png, rawFormat);
        assertImage(image, 97, 61, expected(raw));
      }
    }
  },
});

Deno.test({
  name: "decodeImage() keeps the colour of transparent pixels: alpha is dropped, as PIL does",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    // fully transparent red: PIL's convert("RGB") keeps (255, 0, 0); compositing would give white
    const png = await makeImage(
      "x.png",
      ["-pix_fmt", "rgba"],
      "color=c=red:size=8x8,format=rgba,colorchannelmixer=aa=0",
    );
    const image = await decodeImage(png, LIMIT);
    assert.deepEqual(Array.from(image.rgb.subarray(0, 3)), [255, 0, 0]);
  },
});

Deno.test({
  name: "decodeImage() decodes baseline JPEGs within a few levels of ffmpeg's decode",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    // both replicate subsampled chroma (libjpeg and PIL interpolate it); the IDCTs differ by
    // a few levels
    for (const pixelFormat of ["gray", "yuvj444p", "yuvj422p", "yuvj420p"]) {
      const jpeg = await makeImage("x.jpg", ["-pix_fmt", pixelFormat, "-q:v", "2"]);
      const image = await decodeImage(jpeg, LIMIT);
      assert.equal(image.width, 96);
      assert.equal(image.height, 64);
      const { max, mean } = diffStats(image.rgb, await ffmpegDecode(jpeg, "rgb24"));
      assert.ok(max <= 3 && mean <= 0.5, `${pixelFormat}: max ${max}, mean ${mean}`);
    }
  },
});

Deno.test({
  name: "decodeImage() decodes lossless WebP through ffmpeg exactly, lossy and alpha WebP too",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const lossless = await makeImage("x.webp", ["-lossless", "1"], "testsrc=size=97x61");
    const truth = await makeImage(
      "x.rgb",
      ["-f", "rawvideo", "-pix_fmt", "rgb24"],
      "testsrc=size=97x61",
    );
    assertImage(await decodeImage(lossless, LIMIT), 97, 61, truth);
    const lossy = await decodeImage(await makeImage("x.webp", ["-quality", "95"]), LIMIT);
    assert.equal(lossy.rgb.length, 96 * 64 * 3);
    const alpha = await makeImage(
      "x.webp",
      ["-pix_fmt", "yuva420p"],
      "testsrc=size=96x64,format=rgba,colorchannelmixer=aa=0.5",
    );
    assert.equal(new TextDecoder().decode(alpha.subarray(12, 16)), "VP8X");
    const { rgb } = await decodeImage(alpha, LIMIT);
    assert.ok(diffStats(rgb, lossy.rgb).mean < 8, "alpha WebP keeps the colours");
  },
});

Deno.test({
  name: "decodeImage() refuses a WebP whose VP8X canvas understates the bitstream's size",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const webp = await makeImage(
      "x.webp",
      ["-pix_fmt", "yuva420p"],
      "testsrc=size=96x64,format=rgba,colorchannelmixer=aa=0.5",
    );
    const lying = webp.slice();
    lying.set([9, 0, 0, 9, 0, 0], 24); // canvas 10×10 (stored minus one), the frame is 96×64
    await assert.rejects(decodeImage(lying, LIMIT), (error: unknown) => {
      assert.ok(error instanceof CorruptImageError, String(error));
      assert.match(error.message, /10×10/);
      return true;
    });
  },
});

Deno.test({
  name: "decodeImage() says WebP needs ffmpeg when the ffmpeg command is missing",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const webp = await makeImage("x.webp");
    await assert.rejects(
      decodeImage(webp, { ...LIMIT, ffmpegPath: "svd-stream-no-such-ffmpeg" }),
      (error: unknown) => {
        assert.ok(error instanceof UnsupportedImageError);
        assert.match(error.message, /WebP input needs ffmpeg.*"svd-stream-no-such-ffmpeg"/);
        return true;
      },
    );
  },
});

Deno.test({
  name: "decodeImage() fails on WebP with no ffmpeg on PATH (a child Deno with PATH emptied)",
  permissions: { ...FFMPEG_PERMISSIONS, run: true, env: true },
  async fn() {
    const webp = await makeImage("x.webp");
    const module = new URL("../../pipeline/image/decode_image.ts", import.meta.url).href;
    const script = `
      import { decodeImage } from ${JSON.stringify(module)};
      const bytes = Uint8Array.from(${JSON.stringify(Array.from(webp))});
      try { await decodeImage(bytes, { maxPixels: 1e6 }); console.log("decoded"); }
      catch (error) { console.log(error.name + ": " + error.message); }`;
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      env: { PATH: "" },
      stderr: "inherit",
    }).output();
    assert.ok(success);
    assert.match(
      new TextDecoder().decode(stdout),
      /^UnsupportedImageError: WebP input needs ffmpeg, and "ffmpeg" was not found/,
    );
  },
});

Deno.test({
  name: "decodeImage() decodes WebP with the ffmpeg FFMPEG_PATH names when PATH has none",
  permissions: { ...FFMPEG_PERMISSIONS, run: true, env: true },
  async fn() {
    const webp = await makeImage("x.webp", ["-lossless", "1"]);
    const ffmpegPath = await whichFfmpeg();
    const module = new URL("../../pipeline/image/decode_image.ts", import.meta.url).href;
    const script = `
      import { decodeImage } from ${JSON.stringify(module)};
      const bytes = Uint8Array.from(${JSON.stringify(Array.from(webp))});
      try {
        const image = await decodeImage(bytes, { maxPixels: 1e6 });
        console.log("decoded " + image.width + "x" + image.height);
      } catch (error) { console.log(error.name + ": " + error.message); }`;
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      env: { PATH: "", FFMPEG_PATH: ffmpegPath },
      stderr: "inherit",
    }).output();
    assert.ok(success);
    assert.equal(new TextDecoder().decode(stdout).trim(), "decoded 96x64");
  },
});

/** The absolute path of the ffmpeg on PATH. */
async function whichFfmpeg(): Promise<string> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/ffmpeg`;
    if (dir !== "" && (await Deno.stat(path).catch(() => undefined))?.isFile) return path;
  }
  throw new Error("ffmpeg is not on PATH");
}

Deno.test({
  name: "decodeImage() rejects a 100000×100000 PNG by its header, before reading any pixel data",
  permissions: "none",
  async fn() {
    // no IDAT at all: decoding would fail, the size check must come first
    const bomb = pngFile(100000, 100000, [["IEND", new Uint8Array(0)]]);
    await assert.rejects(decodeImage(bomb, LIMIT), (error: unknown) => {
      assert.ok(error instanceof ImageTooLargeError);
      assert.ok(error instanceof RangeError);
      assert.equal(error.code, "image_too_large");
      assert.match(error.message, /100000×100000 = 10000000000 pixels.*limit of 4000000/);
      return true;
    });
  },
});

Deno.test({
  name: "decodeImage() rejects a PNG whose IDAT inflates past what its IHDR size needs",
  permissions: "none",
  async fn() {
    // a 16×16 RGB image needs 16 × (1 + 48) = 784 bytes; this stream inflates to 64 MB
    const idat = deflateSync(new Uint8Array(64 << 20));
    const zipBomb = pngFile(16, 16, [["IDAT", idat], ["IEND", new Uint8Array(0)]]);
    await assert.rejects(decodeImage(zipBomb, LIMIT), CorruptImageError, "inflates past");
  },
});

Deno.test({
  name: "decodeImage() rejects truncated PNG, JPEG and WebP files with CorruptImageError",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const png = Deno.readFileSync(fixturePath("input.png"));
    const jpeg = await makeImage("x.jpg");
    const webp = await makeImage("x.webp");
    for (const [name, bytes] of [["png", png], ["jpeg", jpeg], ["webp", webp]] as const) {
      for (const keep of [0.3, 0.6, 0.9]) {
        const cut = bytes.subarray(0, Math.floor(bytes.length * keep));
        await assert.rejects(decodeImage(cut, LIMIT), CorruptImageError, `${name} ${keep}`);
      }
    }
  },
});

Deno.test({
  name: "decodeImage() rejects GIF as unsupported and a header-only PNG as corrupt",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    await assert.rejects(
      decodeImage(await makeImage("x.gif"), LIMIT),
      UnsupportedImageError,
      "GIF",
    );
    await assert.rejects(decodeImage(pngHeader(4, 4), LIMIT), CorruptImageError, "Truncated");
  },
});
