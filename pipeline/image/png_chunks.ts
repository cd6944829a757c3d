/**
 * A PNG file's chunk structure, checked whole before any pixel is inflated: every chunk lies
 * inside the file, every CRC matches (libpng checks them; a flipped bit anywhere is a corrupt
 * upload), IHDR comes first, IDAT chunks are consecutive, a palette (if any) comes before them,
 * and IEND closes the file. Bytes after IEND are ignored, as libpng and PIL do.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { CorruptImageError, UnsupportedImageError } from "./image_errors.ts";

/** What the decoder needs from the chunks. */
export interface PngChunks {
  /** The 13 IHDR bytes. */
  readonly ihdr: Uint8Array;
  /** IDAT payloads in order (views into the file). */
  readonly idat: readonly Uint8Array[];
  /** The PLTE payload, if present. */
  readonly palette?: Uint8Array;
}

/** Chunks whose meaning the decoder needs; any other critical (upper-case) chunk is unknown. */
const KNOWN_CRITICAL = new Set(["IHDR", "PLTE", "IDAT", "IEND"]);
/** The largest chunk length PNG allows (2³¹ − 1). */
const MAX_CHUNK_LENGTH = 0x7fffffff;

/**
 * Walks the chunks after the signature, checking lengths, types, CRCs and order.
 *
 * @param bytes the whole file, signature included
 * @throws {CorruptImageError} for a truncated file (a chunk past the end, no IEND), a CRC
 *   mismatch, a malformed type, a misplaced IHDR, PLTE or IDAT, a bad PLTE length
 * @throws {UnsupportedImageError} for an unknown critical chunk (the PNG spec says a decoder
 *   must not guess at one)
 *
 * @example
 * ```ts
 * import { readPngChunks } from "./png_chunks.ts";
 * import { encodePng } from "./png_encode.ts";
 * readPngChunks(encodePng(new Uint8Array(3), 1, 1)).idat.length; // 1
 * ```
 */
export function readPngChunks(bytes: Uint8Array): PngChunks {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let ihdr: Uint8Array | undefined;
  let palette: Uint8Array | undefined;
  let previous = "";
  for (let offset = 8;;) {
    if (offset + 8 > bytes.length) {
      throw new CorruptImageError(
        `Truncated PNG: ${bytes.length} bytes end ${
          previous === "" ? "before the first chunk" : `after chunk ${previous}`
        } at byte ${offset}, before IEND`,
      );
    }
    const length = view.getUint32(offset);
    const typeBytes = bytes.subarray(offset + 4, offset + 8);
    const type = String.fromCharCode(...typeBytes);
    if (!typeBytes.every(isLetter)) {
      throw new CorruptImageError(
        `Corrupt PNG: chunk type ${JSON.stringify(type)} at byte ${offset} is not four letters`,
      );
    }
    if (length > MAX_CHUNK_LENGTH) {
      throw new CorruptImageError(
        `Corrupt PNG: chunk ${type} at byte ${offset} has length ${length}, over 2^31 - 1`,
      );
    }
    const end = offset + 12 + length;
    if (end > bytes.length) {
      throw new CorruptImageError(
        `Truncated PNG: chunk ${type} at byte ${offset} needs ${12 + length} bytes, ` +
          `the file has ${bytes.length - offset} left`,
      );
    }
    const stored = view.getUint32(offset + 8 + length);
    const computed = crc32(bytes.subarray(offset + 4, offset + 8 + length));
    if (stored !== computed) {
      throw new CorruptImageError(
        `Corrupt PNG: CRC mismatch in chunk ${type} at byte ${offset}: stored 0x${
          hex32(stored)
        }, computed 0x${hex32(computed)}`,
      );
    }
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if ((ihdr === undefined) !== (type === "IHDR")) {
      throw new CorruptImageError(
        type === "IHDR"
          ? `Corrupt PNG: a second IHDR chunk at byte ${offset}`
          : `Corrupt PNG: chunk ${type} at byte ${offset} comes before IHDR`,
      );
    }
    if (type === "IHDR") {
      ihdr = data;
    } else if (type === "PLTE") {
      if (idat.length > 0 || palette !== undefined) {
        throw new CorruptImageError(
          `Corrupt PNG: PLTE chunk at byte ${offset} after ${idat.length > 0 ? "IDAT" : "PLTE"}`,
        );
      }
      if (length === 0 || length % 3 !== 0 || length > 768) {
        throw new CorruptImageError(
          `Corrupt PNG: PLTE chunk has length ${length}, expected 3 × 1..256 entries`,
        );
      }
      palette = data;
    } else if (type === "IDAT") {
      if (idat.length > 0 && previous !== "IDAT") {
        throw new CorruptImageError(
          `Corrupt PNG: IDAT chunk at byte ${offset} after ${previous}; IDAT chunks must be consecutive`,
        );
      }
      idat.push(data);
    } else if (type === "IEND") {
      if (idat.length === 0) {
        throw new CorruptImageError(`Corrupt PNG: IEND at byte ${offset} before any IDAT chunk`);
      }
      return { ihdr: ihdr!, idat, palette };
    } else if (isUpper(typeBytes[0]) && !KNOWN_CRITICAL.has(type)) {
      throw new UnsupportedImageError(
        `Unsupported PNG: unknown critical chunk ${JSON.stringify(type)} at byte ${offset}`,
      );
    }
    previous = type;
    offset = end;
  }
}

function isLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

function isUpper(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

function hex32(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, "0");
}
