/**
 * Image type and size from the first bytes of a file, without decoding pixels: what the HTTP
 * service checks before it accepts an upload (a 100 000 × 100 000 PNG is a few kilobytes).
 *
 * The format is told by magic bytes only, never by file name or content type. Every read is
 * bounds-checked, so hostile headers throw {@linkcode CorruptImageError} (truncated, inconsistent,
 * empty) or {@linkcode UnsupportedImageError} (another format, a JPEG process or WebP feature
 * svd-stream does not decode) and nothing else. The header alone does not prove the file whole:
 * `decodeImage` checks the rest.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { CorruptImageError, UnsupportedImageError } from "./image_errors.ts";

/** Formats svd-stream reads: PNG and JPEG in-process, WebP through ffmpeg. */
export type ImageFormat = "png" | "jpeg" | "webp";

/** What {@linkcode sniffImage} reads from a header. */
export interface ImageHeader {
  readonly format: ImageFormat;
  /** Pixels, ≥ 1. */
  readonly width: number;
  /** Pixels, ≥ 1. */
  readonly height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Reads format and size from an image header: PNG (IHDR), JPEG (the first SOFn frame header)
 * or WebP (the VP8, VP8L or VP8X chunk). Does not decode pixels and reads at most the bytes up
 * to the frame header.
 *
 * @param bytes the whole file, or at least its header
 * @throws {CorruptImageError} for empty input and truncated or inconsistent headers
 * @throws {UnsupportedImageError} for other formats (naming what the bytes look like), a JPEG
 *   whose frame header is not baseline, extended or progressive Huffman-coded 8-bit DCT (see
 *   {@linkcode JPEG_PROCESSES}), a JPEG whose height comes from a DNL marker, animated WebP
 *
 * @example
 * ```ts
 * import { sniffImage } from "./image_header.ts";
 * const png = Deno.readFileSync("tests/fixtures/tiny/input.png");
 * sniffImage(png); // { format: "png", width: 128, height: 64 }
 * ```
 */
export function sniffImage(bytes: Uint8Array): ImageHeader {
  if (startsWith(bytes, PNG_SIGNATURE)) return sniffPng(bytes);
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return sniffJpeg(bytes);
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return sniffWebp(bytes);
  if (bytes.length === 0) throw new CorruptImageError("Empty image file: 0 bytes");
  const cut = truncatedMagic(bytes);
  if (cut) {
    throw new CorruptImageError(`Truncated ${cut}: ${bytes.length} bytes end inside the magic`);
  }
  throw new UnsupportedImageError(
    `Unsupported image type: ${describeBytes(bytes)}; expected PNG, JPEG or WebP`,
  );
}

/**
 * PNG: signature, then IHDR (length 13) with width and height as big-endian uint32, and its CRC
 * (a size from an IHDR that fails its CRC cannot be trusted, even to say "too large").
 */
function sniffPng(bytes: Uint8Array): ImageHeader {
  need(bytes, 33, "PNG", "the end of IHDR");
  if (u32be(bytes, 8) !== 13 || ascii(bytes, 12, 4) !== "IHDR") {
    throw new CorruptImageError(
      `Corrupt PNG: first chunk is "${ascii(bytes, 12, 4)}" of length ${
        u32be(bytes, 8)
      }, expected IHDR of length 13`,
    );
  }
  const stored = u32be(bytes, 29);
  const computed = crc32(bytes.subarray(12, 29));
  if (stored !== computed) {
    throw new CorruptImageError(
      `Corrupt PNG: CRC mismatch in chunk IHDR at byte 8: stored 0x${hex32(stored)}, computed 0x${
        hex32(computed)
      }`,
    );
  }
  return checked("png", u32be(bytes, 16), u32be(bytes, 20));
}

/**
 * JPEG: walk the marker segments after SOI to the first frame header SOF0…SOF15 (0xC0–0xCF
 * except 0xC4 DHT, 0xC8 JPG, 0xCC DAC), which holds precision, height, width.
 */
function sniffJpeg(bytes: Uint8Array): ImageHeader {
  let offset = 2;
  while (true) {
    need(bytes, offset + 2, "JPEG", "a frame header (SOF)");
    if (bytes[offset] !== 0xff) {
      throw new CorruptImageError(
        `Corrupt JPEG: expected a marker at byte ${offset}, found 0x${hex(bytes[offset])}`,
      );
    }
    const marker = bytes[offset + 1];
    if (marker === 0xff) { // fill byte before a marker
      offset += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { // TEM, RSTn: no length
      offset += 2;
      continue;
    }
    if (marker === 0xd8 || marker === 0xd9 || marker === 0xda) {
      throw new CorruptImageError(
        `Corrupt JPEG: marker 0xFF${hex(marker)} at byte ${offset} before any frame header (SOF)`,
      );
    }
    need(bytes, offset + 4, "JPEG", "a marker segment length");
    const length = u16be(bytes, offset + 2);
    if (length < 2) {
      throw new CorruptImageError(
        `Corrupt JPEG: segment 0xFF${hex(marker)} at byte ${offset} has length ${length}`,
      );
    }
    const isFrame = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
      marker !== 0xcc) || marker === 0xf7 || marker === 0xde;
    if (isFrame) {
      assertJpegProcess(marker, offset);
      need(bytes, offset + 9, "JPEG", "the frame header (SOF)");
      if (length < 8) {
        throw new CorruptImageError(`Corrupt JPEG: frame header length ${length} < 8`);
      }
      const precision = bytes[offset + 4];
      if (precision !== 8) {
        throw new UnsupportedImageError(
          `Unsupported JPEG: ${precision}-bit samples (${
            JPEG_PROCESSES[marker]
          }); only 8-bit JPEG is decoded`,
        );
      }
      const height = u16be(bytes, offset + 5);
      const width = u16be(bytes, offset + 7);
      if (height === 0) {
        throw new UnsupportedImageError(
          "Unsupported JPEG: height 0 in the frame header (height given later by a DNL marker)",
        );
      }
      return checked("jpeg", width, height);
    }
    offset += 2 + length;
  }
}

/**
 * WebP: `RIFF <size> WEBP`, then the first chunk: `VP8 ` (lossy: 14-bit sizes after the key
 * frame start code), `VP8L` (lossless: 14-bit sizes − 1 after signature 0x2F) or `VP8X`
 * (extended: 24-bit canvas sizes − 1).
 */
function sniffWebp(bytes: Uint8Array): ImageHeader {
  need(bytes, 20, "WebP", "the first chunk");
  const chunk = ascii(bytes, 12, 4);
  const data = 20;
  if (chunk === "VP8 ") {
    need(bytes, data + 10, "WebP", "the VP8 frame header");
    if ((bytes[data] & 1) !== 0 || !startsWith(bytes.subarray(data + 3), [0x9d, 0x01, 0x2a])) {
      throw new CorruptImageError("Corrupt WebP: VP8 chunk does not start with a key frame");
    }
    return checked("webp", u16le(bytes, data + 6) & 0x3fff, u16le(bytes, data + 8) & 0x3fff);
  }
  if (chunk === "VP8L") {
    need(bytes, data + 5, "WebP", "the VP8L header");
    if (bytes[data] !== 0x2f) {
      throw new CorruptImageError(
        `Corrupt WebP: VP8L signature is 0x${hex(bytes[data])}, expected 0x2F`,
      );
    }
    const bits = u32le(bytes, data + 1);
    return checked("webp", (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  if (chunk === "VP8X") {
    need(bytes, data + 10, "WebP", "the VP8X header");
    if ((bytes[data] & WEBP_ANIMATION_FLAG) !== 0) {
      throw new UnsupportedImageError(
        "Unsupported WebP: animated (the VP8X animation flag is set); send one frame as PNG, JPEG or still WebP",
      );
    }
    return checked("webp", u24le(bytes, data + 4) + 1, u24le(bytes, data + 7) + 1);
  }
  throw new CorruptImageError(
    `Corrupt WebP: first chunk is ${JSON.stringify(chunk)}, expected "VP8 ", "VP8L" or "VP8X"`,
  );
}

/**
 * JPEG processes by frame marker (ITU T.81 table B.1, plus JPEG-LS and DHP). `jpeg-js` decodes
 * the first three; the others are refused with {@linkcode UnsupportedImageError} naming them.
 */
export const JPEG_PROCESSES: Readonly<Record<number, string>> = {
  0xc0: "SOF0 baseline DCT",
  0xc1: "SOF1 extended sequential DCT, Huffman",
  0xc2: "SOF2 progressive DCT, Huffman",
  0xc3: "SOF3 lossless, Huffman",
  0xc5: "SOF5 differential sequential DCT (hierarchical)",
  0xc6: "SOF6 differential progressive DCT (hierarchical)",
  0xc7: "SOF7 differential lossless (hierarchical)",
  0xc9: "SOF9 extended sequential DCT, arithmetic",
  0xca: "SOF10 progressive DCT, arithmetic",
  0xcb: "SOF11 lossless, arithmetic",
  0xcd: "SOF13 differential sequential DCT, arithmetic",
  0xce: "SOF14 differential progressive DCT, arithmetic",
  0xcf: "SOF15 differential lossless, arithmetic",
  0xde: "DHP hierarchical progression",
  0xf7: "SOF55 JPEG-LS",
};

/** Frame markers `jpeg-js` decodes: baseline, extended sequential and progressive Huffman DCT. */
export const DECODED_JPEG_FRAMES: readonly number[] = [0xc0, 0xc1, 0xc2];

/** VP8X flags bit 1: the file is an animation (ANIM + ANMF chunks). */
const WEBP_ANIMATION_FLAG = 0x02;

/** Throws {@linkcode UnsupportedImageError} for a frame marker `jpeg-js` does not decode. */
export function assertJpegProcess(marker: number, offset: number): void {
  if (DECODED_JPEG_FRAMES.includes(marker)) return;
  throw new UnsupportedImageError(
    `Unsupported JPEG process: ${JPEG_PROCESSES[marker] ?? `marker 0xFF${hex(marker)}`} ` +
      `(frame header at byte ${offset}); only baseline, extended and progressive Huffman-coded ` +
      "8-bit JPEG is decoded: re-save it as a standard JPEG or PNG",
  );
}

function checked(format: ImageFormat, width: number, height: number): ImageHeader {
  if (!(width >= 1 && height >= 1 && width <= 0x7fffffff && height <= 0x7fffffff)) {
    throw new CorruptImageError(
      `Corrupt ${format.toUpperCase()} header: size ${width}×${height}`,
    );
  }
  return { format, width, height };
}

function need(bytes: Uint8Array, length: number, format: string, what: string): void {
  if (bytes.length < length) {
    throw new CorruptImageError(
      `Truncated ${format}: ${bytes.length} bytes end before ${what} (needs ${length})`,
    );
  }
}

/** The format whose magic these 2+ bytes are a proper prefix of, if any. */
function truncatedMagic(bytes: Uint8Array): string | undefined {
  if (bytes.length < 2) return undefined;
  const magics: [string, number[]][] = [
    ["PNG", PNG_SIGNATURE],
    ["JPEG", [0xff, 0xd8, 0xff]],
    ["WebP", [..."RIFF"].map((c) => c.charCodeAt(0))],
  ];
  for (const [name, magic] of magics) {
    const n = Math.min(bytes.length, magic.length);
    if (magic.slice(0, n).every((b, i) => bytes[i] === b)) {
      if (bytes.length < magic.length || name === "WebP" && bytes.length < 12) return name;
    }
  }
  return undefined;
}

/** A short name for what unknown bytes look like, for the error message. */
function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return "empty file";
  const known: [string, number[] | string][] = [
    ["GIF", "GIF8"],
    ["BMP", "BM"],
    ["TIFF", [0x49, 0x49, 0x2a, 0x00]],
    ["TIFF", [0x4d, 0x4d, 0x00, 0x2a]],
    ["ICO", [0x00, 0x00, 0x01, 0x00]],
    ["PDF", "%PDF"],
    ["JPEG 2000", [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50]],
    ["JPEG XL", [0xff, 0x0a]],
    ["gzip", [0x1f, 0x8b]],
    ["zip", "PK\x03\x04"],
    ["SVG/XML", "<?xml"],
    ["SVG", "<svg"],
    ["HTML", "<!DOCTYPE"],
  ];
  for (const [name, magic] of known) {
    const expected = typeof magic === "string" ? [...magic].map((c) => c.charCodeAt(0)) : magic;
    if (startsWith(bytes, expected)) return `${name} (starts with ${preview(bytes)})`;
  }
  if (ascii(bytes, 0, 4) === "RIFF") return `RIFF ${JSON.stringify(ascii(bytes, 8, 4))} file`;
  if (ascii(bytes, 4, 4) === "ftyp") {
    return `ISO media ${JSON.stringify(ascii(bytes, 8, 4))} (HEIC/AVIF/MP4)`;
  }
  return `${bytes.length} bytes starting with ${preview(bytes)}`;
}

/** First bytes as hex, plus printable ASCII when the start is text. */
function preview(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 8);
  const hexText = Array.from(head, hex).join(" ");
  const text = String.fromCharCode(...head);
  return /^[\x20-\x7e]+$/.test(text) ? `${hexText} ${JSON.stringify(text)}` : hexText;
}

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}

function hex32(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, "0");
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}

function u16be(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function u32be(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function u16le(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8);
}

function u24le(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}
