import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { UnsupportedImageError } from "../../pipeline/image/image_errors.ts";
import { decodePng } from "../../pipeline/image/png_decode.ts";
import { pngFile } from "./_png_bytes.ts";

const IEND: [string, Uint8Array] = ["IEND", new Uint8Array(0)];

/** An IDAT chunk of filtered scanlines. */
function idat(...rows: number[][]): [string, Uint8Array] {
  return ["IDAT", deflateSync(Uint8Array.from(rows.flat()))];
}

Deno.test({
  name: "decodePng() scales 2- and 4-bit grey to 0…255 as PIL does",
  permissions: "none",
  fn() {
    // 2-bit: 0, 1, 2, 3 packed in one byte -> 0, 85, 170, 255
    const two = decodePng(pngFile(4, 1, [idat([0, 0b00011011]), IEND], [2, 0, 0, 0, 0]));
    assert.deepEqual(Array.from(two.rgb), [0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
    // 4-bit: 3 samples (the last byte half used) -> 15 * 17, 1 * 17, 8 * 17
    const four = decodePng(pngFile(3, 1, [idat([0, 0xf1, 0x80]), IEND], [4, 0, 0, 0, 0]));
    assert.deepEqual(Array.from(four.rgb), [255, 255, 255, 17, 17, 17, 136, 136, 136]);
  },
});

Deno.test({
  name: "decodePng() looks palette indices up, reads an index past the palette as black",
  permissions: "none",
  fn() {
    const palette: [string, Uint8Array] = ["PLTE", Uint8Array.from([10, 20, 30, 40, 50, 60])];
    const trns: [string, Uint8Array] = ["tRNS", Uint8Array.from([0, 0])]; // ignored
    const png = pngFile(3, 1, [palette, trns, idat([0, 1, 0, 7]), IEND], [8, 3, 0, 0, 0]);
    assert.deepEqual(Array.from(decodePng(png).rgb), [40, 50, 60, 10, 20, 30, 0, 0, 0]);
    const noPalette = pngFile(1, 1, [idat([0, 0]), IEND], [8, 3, 0, 0, 0]);
    assert.throws(() => decodePng(noPalette), UnsupportedImageError, "without a PLTE");
  },
});

Deno.test({
  name: "decodePng() undoes Sub, Up, Average and Paeth filters",
  permissions: "none",
  fn() {
    // 2×4 grey: row 0 None [10, 20]; row 1 Sub [5, +5]; row 2 Up [+1, +1]; row 3 Average; Paeth
    const png = pngFile(2, 5, [
      idat([0, 10, 20], [1, 5, 5], [2, 1, 1], [3, 3, 4], [4, 1, 1]),
      IEND,
    ], [8, 0, 0, 0, 0]);
    const grey = Array.from(decodePng(png).rgb).filter((_, i) => i % 3 === 0);
    // row 2 = row 1 + 1 = [6, 11]; row 3: 3 + (0 + 6) >> 1 = 6, 4 + (6 + 11) >> 1 = 12;
    // row 4: Paeth(a=0, b=6, c=0) = 6 -> 7; Paeth(a=7, b=12, c=6) -> p = 13, nearest b = 12 -> 13
    assert.deepEqual(grey, [10, 20, 5, 10, 6, 11, 6, 12, 7, 13]);
  },
});

Deno.test({
  name: "decodePng() rejects bad IHDR fields, filter types and zlib data, naming them",
  permissions: "none",
  fn() {
    const ok = idat([0, 1, 2, 3]);
    assert.throws(
      () => decodePng(pngFile(1, 1, [ok, IEND], [16, 3, 0, 0, 0])),
      UnsupportedImageError,
      "colour type 3, bit depth 16",
    );
    assert.throws(
      () => decodePng(pngFile(1, 1, [ok, IEND], [8, 2, 0, 0, 2])),
      UnsupportedImageError,
      "interlace 2",
    );
    assert.throws(
      () => decodePng(pngFile(1, 1, [idat([7, 1, 2, 3]), IEND])),
      UnsupportedImageError,
      "filter type 7 in row 0",
    );
    assert.throws(
      () => decodePng(pngFile(1, 1, [["IDAT", Uint8Array.from([1, 2, 3, 4])], IEND])),
      UnsupportedImageError,
      "Corrupt PNG",
    );
    assert.throws(
      () => decodePng(pngFile(2, 2, [idat([0, 1, 2, 3, 4, 5, 6]), IEND])),
      UnsupportedImageError,
      "inflates to 7 of the 14 bytes",
    );
  },
});
