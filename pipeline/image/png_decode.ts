/**
 * A PNG decoder to 8-bit RGB, for every colour type, bit depth and Adam7 interlacing, that
 * checks the whole file first: chunk structure and every CRC ({@linkcode readPngChunks}), then
 * the zlib stream inflated under a cap set by the IHDR size (a small file whose IDAT inflates to
 * gigabytes is refused as soon as it passes the cap, having used no more than the cap), to its
 * end (a cut stream or a wrong Adler-32 is refused).
 *
 * Colour as PIL's `Image.open(...).convert("RGB")`: grey replicated to R = G = B (1, 2, 4-bit
 * grey scaled to 0–255), palette indices looked up (an index past the palette reads black),
 * alpha and `tRNS` transparency DROPPED (a transparent pixel keeps its stored colour), 16-bit
 * samples keep their high byte. One difference: PIL's 16-bit grey ("I;16") → "RGB" clips the
 * value at 255; here it keeps the high byte like the colour types. Ancillary chunks (gamma,
 * ICC profiles, text) are ignored, as is APNG animation (the default image is read).
 *
 * (Why not `fast-png`: 8.0.0 garbles Adam7 images below 8 bits a pixel, and inflates the whole
 * stream before looking at the size.)
 *
 * @module
 */

import { inflateSync } from "node:zlib";
import { CorruptImageError, UnsupportedImageError } from "./image_errors.ts";
import { sniffImage } from "./image_header.ts";
import { readPngChunks } from "./png_chunks.ts";

/** Samples per pixel of each colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
const CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Bit depths each colour type allows. */
const DEPTHS: Readonly<Record<number, readonly number[]>> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
/** Adam7 passes: first column, first row, column step, row step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;
const NO_INTERLACE = [[0, 0, 1, 1]] as const;

/** The IHDR fields the decoder uses. */
interface Layout {
  readonly width: number;
  readonly height: number;
  readonly depth: number;
  readonly colourType: number;
  readonly channels: number;
  readonly passes: readonly (readonly [number, number, number, number])[];
}

/**
 * Decodes a PNG file to RGB.
 *
 * @param bytes the whole file
 * @returns `rgb` as `[height, width, 3]` bytes
 * @throws {CorruptImageError} for a truncated file (a chunk cut short, no IEND, image data short
 *   of what the size needs) or a corrupt one (a CRC mismatch, bad IHDR fields, filter types or
 *   zlib data, more image data than the size needs, a palette image without PLTE)
 * @throws {UnsupportedImageError} for a file that is not a PNG or has an unknown critical chunk
 *
 * @example
 * ```ts
 * import { decodePng } from "./png_decode.ts";
 * import { encodePng } from "./png_encode.ts";
 * decodePng(encodePng(new Uint8Array([1, 2, 3]), 1, 1)); // { width: 1, height: 1, rgb: [1, 2, 3] }
 * ```
 */
export function decodePng(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const header = sniffImage(bytes);
  if (header.format !== "png") {
    throw new UnsupportedImageError(`Not a PNG: the bytes are ${header.format.toUpperCase()}`);
  }
  const { ihdr, idat, palette } = readPngChunks(bytes);
  const layout = readLayout(ihdr, header.width, header.height);
  if (layout.colourType === 3 && !palette) {
    throw new CorruptImageError("Corrupt PNG: palette image without a PLTE chunk");
  }
  const raw = inflate(idat, layout);
  const rgb = new Uint8Array(layout.width * layout.height * 3);
  const bitsPerPixel = layout.channels * layout.depth;
  const bytesPerPixel = Math.max(1, bitsPerPixel >> 3);
  let offset = 0;
  for (const [x0, y0, dx, dy] of layout.passes) {
    const passWidth = Math.ceil((layout.width - x0) / dx);
    const passHeight = Math.ceil((layout.height - y0) / dy);
    if (passWidth <= 0 || passHeight <= 0) continue;
    const rowBytes = Math.ceil((passWidth * bitsPerPixel) / 8);
    let previous: Uint8Array | undefined;
    for (let y = 0; y < passHeight; y++) {
      const filter = raw[offset];
      const row = raw.subarray(offset + 1, offset + 1 + rowBytes);
      unfilter(filter, row, previous, bytesPerPixel, y0 + y * dy);
      writeRow(row, passWidth, layout, palette, rgb, (y0 + y * dy) * layout.width, x0, dx);
      previous = row;
      offset += 1 + rowBytes;
    }
  }
  return { width: layout.width, height: layout.height, rgb };
}

/** IHDR's fields after width and height (the chunk walk has checked its length and CRC). */
function readLayout(ihdr: Uint8Array, width: number, height: number): Layout {
  const [depth, colourType, compression, filtering, interlace] = ihdr.subarray(8, 13);
  if (
    !DEPTHS[colourType]?.includes(depth) || compression !== 0 || filtering !== 0 || interlace > 1
  ) {
    throw new CorruptImageError(
      `Corrupt PNG: IHDR colour type ${colourType}, bit depth ${depth}, compression ${compression}, filter method ${filtering}, interlace ${interlace}`,
    );
  }
  const passes = interlace === 1 ? ADAM7 : NO_INTERLACE;
  return { width, height, depth, colourType, channels: CHANNELS[colourType], passes };
}

/** Inflates the IDAT stream, refusing output past or short of what the layout needs. */
function inflate(idat: readonly Uint8Array[], layout: Layout): Uint8Array {
  const stream = new Uint8Array(idat.reduce((n, part) => n + part.length, 0));
  idat.reduce((at, part) => (stream.set(part, at), at + part.length), 0);
  const bitsPerPixel = layout.channels * layout.depth;
  let needed = 0;
  for (const [x0, y0, dx, dy] of layout.passes) {
    const w = Math.ceil((layout.width - x0) / dx);
    const h = Math.ceil((layout.height - y0) / dy);
    if (w > 0 && h > 0) needed += h * (1 + Math.ceil((w * bitsPerPixel) / 8));
  }
  const size = `${layout.width}×${layout.height}`;
  let raw: Uint8Array;
  try {
    // The cap stops inflating as soon as it is passed (zlib works in 16 KiB chunks), so a bomb
    // costs at most the cap. A little slack for encoders that pad the stream. The default
    // finish flush makes a stream that stops before its end (or whose Adler-32 is wrong) throw.
    raw = inflateSync(stream, { maxOutputLength: needed + 1024 });
  } catch (error) {
    if (error instanceof RangeError) {
      throw new CorruptImageError(
        `Corrupt PNG: image data inflates past the ${needed} bytes a ${size} image needs`,
        { cause: error },
      );
    }
    throw new CorruptImageError(
      `Corrupt PNG: image data (zlib, ${stream.length} bytes in ${idat.length} IDAT chunks) ` +
        `does not inflate: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  if (raw.length < needed) {
    throw new CorruptImageError(
      `Truncated PNG: image data inflates to ${raw.length} of the ${needed} bytes a ${size} image needs`,
    );
  }
  return raw;
}

/** Reverses a scanline's filter in place (`previous`: the pass's row above, unfiltered). */
function unfilter(
  filter: number,
  row: Uint8Array,
  previous: Uint8Array | undefined,
  bpp: number,
  y: number,
): void {
  const n = row.length;
  if (filter === 0) return;
  if (filter === 1) {
    for (let i = bpp; i < n; i++) row[i] += row[i - bpp];
  } else if (filter === 2) {
    if (previous) { for (let i = 0; i < n; i++) row[i] += previous[i]; }
  } else if (filter === 3) {
    for (let i = 0; i < n; i++) {
      const a = i >= bpp ? row[i - bpp] : 0;
      row[i] += (a + (previous ? previous[i] : 0)) >> 1;
    }
  } else if (filter === 4) {
    for (let i = 0; i < n; i++) {
      const a = i >= bpp ? row[i - bpp] : 0;
      const b = previous ? previous[i] : 0;
      const c = previous && i >= bpp ? previous[i - bpp] : 0;
      row[i] += paeth(a, b, c);
    }
  } else {
    throw new CorruptImageError(`Corrupt PNG: filter type ${filter} in row ${y}`);
  }
}

/** PNG's Paeth predictor: whichever of left, above, above-left is closest to a + b − c. */
export function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Unfiltered row of `count` pixels → RGB at columns `x0, x0 + dx, …` of the row at `base`. */
function writeRow(
  row: Uint8Array,
  count: number,
  layout: Layout,
  palette: Uint8Array | undefined,
  rgb: Uint8Array,
  base: number,
  x0: number,
  dx: number,
): void {
  const { depth, channels, colourType } = layout;
  const greyScale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  for (let x = 0; x < count; x++) {
    const o = (base + x0 + x * dx) * 3;
    const s = x * channels; // first sample of the pixel; alpha (the last of 2 or 4) is dropped
    if (colourType === 3) {
      const index = sample(row, s, depth) * 3;
      const inside = palette !== undefined && index + 2 < palette.length;
      rgb[o] = inside ? palette[index] : 0;
      rgb[o + 1] = inside ? palette[index + 1] : 0;
      rgb[o + 2] = inside ? palette[index + 2] : 0;
    } else if (channels >= 3) {
      rgb[o] = sample(row, s, depth);
      rgb[o + 1] = sample(row, s + 1, depth);
      rgb[o + 2] = sample(row, s + 2, depth);
    } else {
      const v = Math.round(sample(row, s, depth) * greyScale);
      rgb[o] = v;
      rgb[o + 1] = v;
      rgb[o + 2] = v;
    }
  }
}

/** Sample `i` of a row: a byte, the high byte of 16 bits, or `depth` bits packed MSB first. */
function sample(row: Uint8Array, i: number, depth: number): number {
  if (depth === 8) return row[i];
  if (depth === 16) return row[2 * i];
  const bit = i * depth;
  return (row[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
}
