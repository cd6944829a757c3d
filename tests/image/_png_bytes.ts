/**
 * Hand-made PNG bytes for header and decoder tests.
 *
 * @module
 */

import { crc32 } from "../../pipeline/image/png_encode.ts";

/** A PNG signature and IHDR chunk (8-bit RGB unless `fields` says otherwise), nothing else. */
export function pngHeader(
  width: number,
  height: number,
  fields: readonly number[] = [8, 2, 0, 0, 0],
): Uint8Array {
  const bytes = new Uint8Array(33);
  const view = new DataView(bytes.buffer);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  view.setUint32(8, 13);
  bytes.set([0x49, 0x48, 0x44, 0x52], 12); // IHDR
  view.setUint32(16, width);
  view.setUint32(20, height);
  bytes.set(fields, 24); // depth, colour type, compression, filter, interlace
  view.setUint32(29, crc32(bytes.subarray(12, 29)));
  return bytes;
}

/** A PNG file: {@linkcode pngHeader} then chunks `[type, data]`. */
export function pngFile(
  width: number,
  height: number,
  chunks: readonly [string, Uint8Array][],
  fields?: readonly number[],
): Uint8Array {
  const parts = [pngHeader(width, height, fields)];
  for (const [type, data] of chunks) {
    const chunk = new Uint8Array(12 + data.length);
    const view = new DataView(chunk.buffer);
    view.setUint32(0, data.length);
    chunk.set(new TextEncoder().encode(type), 4);
    chunk.set(data, 8);
    view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
    parts.push(chunk);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}
