import assert from "node:assert/strict";
import fc from "fast-check";
import { CorruptImageError, UnsupportedImageError } from "../../pipeline/image/image_errors.ts";
import { type ImageHeader, sniffImage } from "../../pipeline/image/image_header.ts";
import { fixturePath } from "../_fixtures.ts";
import { FFMPEG_PERMISSIONS, makeImage } from "./_ffmpeg.ts";
import { pngHeader } from "./_png_bytes.ts";

function assertUnsupported(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => sniffImage(bytes), (error: unknown) => {
    assert.ok(error instanceof UnsupportedImageError, `got ${error}`);
    assert.ok(!(error instanceof CorruptImageError), `got ${error}`);
    assert.ok(error instanceof SyntaxError);
    assert.equal(error.code, "unsupported_media_type");
    assert.match(error.message, pattern);
    return true;
  });
}

function assertCorrupt(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => sniffImage(bytes), (error: unknown) => {
    assert.ok(error instanceof CorruptImageError, `got ${error}`);
    assert.equal(error.code, "corrupt_image");
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test({
  name: "sniffImage() reads the fixture PNG's IHDR: 128×64",
  permissions: { read: true },
  fn() {
    const header = sniffImage(Deno.readFileSync(fixturePath("input.png")));
    assert.deepEqual(header, { format: "png", width: 128, height: 64 });
  },
});

Deno.test({
  name: "sniffImage() reads JPEG, lossy/lossless/extended WebP and PNG made by ffmpeg",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const cases: [string, string[], ImageHeader["format"]][] = [
      ["x.png", [], "png"],
      ["x.jpg", [], "jpeg"],
      ["gray.jpg", ["-pix_fmt", "gray"], "jpeg"],
      ["lossy.webp", [], "webp"],
      ["lossless.webp", ["-lossless", "1"], "webp"],
    ];
    for (const [file, options, format] of cases) {
      const header = sniffImage(await makeImage(file, options, "testsrc=size=97x61"));
      assert.deepEqual(header, { format, width: 97, height: 61 }, file);
    }
    // transparency makes libwebp write a VP8X chunk (with ALPH) in front of VP8
    const alpha = await makeImage(
      "alpha.webp",
      ["-pix_fmt", "yuva420p"],
      "testsrc=size=97x61,format=rgba,colorchannelmixer=aa=0.5",
    );
    assert.equal(new TextDecoder().decode(alpha.subarray(12, 16)), "VP8X");
    assert.deepEqual(sniffImage(alpha), { format: "webp", width: 97, height: 61 });
  },
});

Deno.test({
  name: "sniffImage() walks JPEG fill bytes and APPn segments to the SOF, skipping DHT",
  permissions: "none",
  fn() {
    const jpeg = Uint8Array.from([
      ...[0xff, 0xd8], // SOI
      ...[0xff, 0xff, 0xe1, 0x00, 0x06, 1, 2, 3, 4], // fill byte, APP1 of length 6
      ...[0xff, 0xc4, 0x00, 0x04, 0xc0, 0xc2], // DHT whose body looks like SOF markers
      ...[0xff, 0xc2, 0x00, 0x11, 0x08, 0x01, 0x2c, 0x02, 0x58, 0x03], // SOF2 (progressive) 600×300
    ]);
    assert.deepEqual(sniffImage(jpeg), { format: "jpeg", width: 600, height: 300 });
  },
});

Deno.test({
  name: "sniffImage() reports huge sizes from headers alone (crafted 100000×100000 PNG, WebP)",
  permissions: "none",
  fn() {
    assert.deepEqual(sniffImage(pngHeader(100000, 100000)), {
      format: "png",
      width: 100000,
      height: 100000,
    });
    // RIFF, WEBP, VP8X of length 10: flags, reserved, canvas 16384×16384 (stored minus one)
    const webp = Uint8Array.from([
      ...new TextEncoder().encode("RIFF\x16\x00\x00\x00WEBPVP8X"),
      ...[10, 0, 0, 0, 0x10, 0, 0, 0, 0xff, 0x3f, 0x00, 0xff, 0x3f, 0x00],
    ]);
    assert.deepEqual(sniffImage(webp), { format: "webp", width: 16384, height: 16384 });
  },
});

Deno.test({
  name: "sniffImage() rejects GIF, BMP, text and empty input by content, naming what it saw",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    assertUnsupported(await makeImage("x.gif"), /GIF/);
    assertUnsupported(await makeImage("x.bmp"), /BMP/);
    assertUnsupported(new TextEncoder().encode("hello, world"), /"hello, w"/);
    assertUnsupported(new TextEncoder().encode("<svg xmlns="), /SVG/);
    assertCorrupt(new Uint8Array(0), /Empty image file: 0 bytes/);
    // a PNG's bytes inside a RIFF container that is not WebP
    assertUnsupported(new TextEncoder().encode("RIFF\x00\x00\x00\x00AVI LIST"), /AVI/);
  },
});

Deno.test({
  name: "sniffImage() throws CorruptImageError for every truncation of real headers",
  permissions: FFMPEG_PERMISSIONS,
  async fn() {
    const files = [
      Deno.readFileSync(fixturePath("input.png")),
      await makeImage("x.jpg"),
      await makeImage("x.webp"),
      await makeImage("x.webp", ["-lossless", "1"]),
    ];
    for (const bytes of files) {
      const full = sniffImage(bytes);
      let firstWhole = -1;
      for (let length = 0; length <= Math.min(bytes.length, 700); length++) {
        try {
          assert.deepEqual(sniffImage(bytes.subarray(0, length)), full);
          if (firstWhole < 0) firstWhole = length;
        } catch (error) {
          // one byte says nothing about the format; two or more of a magic are a cut file
          assert.ok(
            length < 2
              ? error instanceof UnsupportedImageError
              : error instanceof CorruptImageError,
            `${full.format}[0:${length}]: ${error}`,
          );
          assert.equal(
            firstWhole,
            -1,
            `${full.format}: ${length} bytes fail after a shorter prefix read`,
          );
          if (length > 4) assert.match((error as Error).message, /Truncated/);
        }
      }
      assert.ok(firstWhole > 0, `${full.format}: no prefix read`);
    }
  },
});

Deno.test({
  name: "sniffImage() only ever throws UnsupportedImageError on arbitrary bytes after a magic",
  permissions: "none",
  fn() {
    const magics = [
      [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52],
      [0xff, 0xd8, 0xff],
      [...new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 ")],
      [...new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8L")],
      [...new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8X")],
      [],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...magics),
        fc.uint8Array({ maxLength: 64 }),
        (magic, tail) => {
          const bytes = Uint8Array.from([...magic, ...tail]);
          try {
            const { width, height } = sniffImage(bytes);
            return Number.isInteger(width) && Number.isInteger(height) && width >= 1 &&
              height >= 1;
          } catch (error) {
            return error instanceof UnsupportedImageError;
          }
        },
      ),
      { numRuns: 3000 },
    );
  },
});

Deno.test({
  name: "sniffImage() rejects zero sizes and a JPEG whose height comes from a DNL marker",
  permissions: "none",
  fn() {
    assertCorrupt(pngHeader(0, 10), /size 0×10/);
    const dnl = Uint8Array.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 8, 0, 0, 0x01, 0x00, 1]);
    assertUnsupported(dnl, /DNL/);
    assertCorrupt(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x02]), /before any frame/);
    const app0 = [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0x12, 0x34];
    assertCorrupt(Uint8Array.from(app0), /expected a marker at byte 8, found 0x12/);
  },
});
