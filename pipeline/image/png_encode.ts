/**
 * A small PNG encoder for 8-bit RGB (previews, debug dumps): signature, IHDR, one IDAT
 * compressed with zlib (`node:zlib`), IEND. Each row takes the filter with the smallest sum of
 * absolute (signed) bytes, libpng's heuristic, which is what makes deflate work on photos.
 *
 * @module
 */

import { deflateSync } from "node:zlib";
import { paeth } from "./png_decode.ts";

/** Options of {@linkcode encodePng}. */
export interface EncodePngOptions {
  /** zlib level 0–9; default 9 (the images are small; a 72×128 preview takes well under 1 ms). */
  readonly level?: number;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Encodes an RGB image as a PNG file (colour type 2, 8 bits, no interlace).
 *
 * @param rgb `[height, width, 3]` bytes, row-major
 * @throws {RangeError} when the size is not positive integers or `rgb` has the wrong length
 *
 * @example
 * ```ts
 * import { encodePng } from "./png_encode.ts";
 * const png = encodePng(new Uint8Array([255, 0, 0]), 1, 1); // one red pixel
 * new TextDecoder().decode(png.subarray(1, 4)); // "PNG"
 * ```
 */
export function encodePng(
  rgb: Uint8Array,
  width: number,
  height: number,
  options: EncodePngOptions = {},
): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`PNG size must be positive integers, got ${width}×${height}`);
  }
  if (width > 0x7fffffff || height > 0x7fffffff) {
    throw new RangeError(`PNG sides are at most 2^31 − 1, got ${width}×${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `RGB buffer has ${rgb.length} bytes, a ${width}×${height} image needs ${width * height * 3}`,
    );
  }
  const level = options.level ?? 9;
  if (!(Number.isInteger(level) && level >= 0 && level <= 9)) {
    throw new RangeError(`zlib level must be an integer 0–9, got ${level}`);
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, adaptive filtering, no interlace
  const idat = deflateSync(filterRows(rgb, width, height), { level });
  const chunks = [chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", new Uint8Array(0))];
  const file = new Uint8Array(8 + chunks.reduce((n, c) => n + c.length, 0));
  file.set(SIGNATURE);
  chunks.reduce((at, c) => (file.set(c, at), at + c.length), 8);
  return file;
}

/** Scanlines with their filter byte: `[height, 1 + width·3]`. */
function filterRows(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width * 3;
  const out = new Uint8Array(height * (stride + 1));
  const candidates = Array.from({ length: 5 }, () => new Uint8Array(stride));
  const zero = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : zero;
    let best = 0;
    let bestCost = Infinity;
    for (let type = 0; type < 5; type++) {
      const filtered = candidates[type];
      let cost = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= 3 ? row[i - 3] : 0; // left
        const b = up[i]; // above
        const c = i >= 3 ? up[i - 3] : 0; // above left
        const predicted = type === 0
          ? 0
          : type === 1
          ? a
          : type === 2
          ? b
          : type === 3
          ? (a + b) >> 1
          : paeth(a, b, c);
        const v = (row[i] - predicted) & 0xff;
        filtered[i] = v;
        cost += v < 128 ? v : 256 - v;
      }
      if (cost < bestCost) {
        bestCost = cost;
        best = type;
      }
    }
    out[y * (stride + 1)] = best;
    out.set(candidates[best], y * (stride + 1) + 1);
  }
  return out;
}

/** length, type, data, CRC-32 of type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** CRC-32 table for the reflected polynomial 0xEDB88320 (PNG, zlib, gzip). */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as PNG defines it (ISO 3309 / ITU-T V.42). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
