/**
 * JPEG to 8-bit RGB with `jpeg-js` (pure JavaScript), behind a walk of the whole marker
 * structure that `jpeg-js` is never asked to survive on its own.
 *
 * What is decoded: one frame of SOF0 (baseline), SOF1 (extended sequential) or SOF2 (progressive)
 * DCT, Huffman-coded, 8-bit samples, with 1 (grey), 3 (YCbCr, or RGB under an Adobe marker) or 4
 * components (CMYK/YCCK, only with an Adobe APP14 marker). What is refused with
 * {@linkcode UnsupportedImageError} (415), naming it: SOF3 lossless, SOF5–7 hierarchical, SOF9–15
 * and DAC arithmetic coding, DHP, JPEG-LS (SOF55), 12- and 16-bit samples, 2 components, 4 without
 * Adobe, a height given later by DNL, JPEG extension markers (JPG, JPGn).
 *
 * Why the walk: `jpeg-js` 0.4.4 ignores the frame's precision (a 12-bit file is read as if 8-bit),
 * says only "unknown JPEG marker ffc3" for a lossless or arithmetic frame, reads past the end of
 * the data as zero bits, and meets a scan that names an undefined table with a `TypeError`. So
 * before `jpeg-js` runs, every segment is checked to lie inside the file, tables and scans to
 * reference what the frame defines, every entropy-coded segment to end at a marker, and EOI to
 * close the file; anything else is a {@linkcode CorruptImageError} (422) that says where. At most
 * {@linkcode MAX_JPEG_SCANS} scans: each progressive scan makes `jpeg-js` walk the whole image
 * again.
 *
 * @module
 */

import jpeg from "jpeg-js";
import { CorruptImageError, UnsupportedImageError } from "./image_errors.ts";
import { assertJpegProcess, JPEG_PROCESSES } from "./image_header.ts";

/** Most scans a JPEG may have (libjpeg's progressive script has 10; mozjpeg's fewer than 20). */
export const MAX_JPEG_SCANS = 100;

/** What the marker walk found. */
export interface JpegStructure {
  /** Frame marker: 0xC0, 0xC1 or 0xC2. */
  readonly frame: number;
  readonly width: number;
  readonly height: number;
  readonly components: number;
  readonly scans: number;
  /** Whether an Adobe APP14 segment is present (it decides the colour transform). */
  readonly adobe: boolean;
}

/**
 * Walks a JPEG's markers from SOI to EOI and checks that `jpeg-js` can decode it.
 *
 * @throws {CorruptImageError} for a truncated or malformed file
 * @throws {UnsupportedImageError} for a coding process or layout `jpeg-js` does not decode
 *
 * @example
 * ```ts
 * import { readJpegStructure } from "./jpeg_decode.ts";
 * const bytes = Deno.readFileSync("photo.jpg");
 * readJpegStructure(bytes); // { frame: 0xc0, width: 640, height: 480, components: 3, scans: 1, adobe: false }
 * ```
 */
export function readJpegStructure(bytes: Uint8Array): JpegStructure {
  if (!(bytes[0] === 0xff && bytes[1] === 0xd8)) {
    throw new CorruptImageError("Corrupt JPEG: the file does not start with SOI (FF D8)");
  }
  const quantTables = new Set<number>();
  const dcTables = new Set<number>();
  const acTables = new Set<number>();
  let frame: (JpegStructure & { ids: number[]; quant: number[] }) | undefined;
  let adobe = false;
  let scans = 0;
  let offset = 2;
  while (true) {
    if (offset + 2 > bytes.length) {
      throw new CorruptImageError(
        `Truncated JPEG: ${bytes.length} bytes end at byte ${offset}, before EOI`,
      );
    }
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
    const at = offset;
    const name = `0xFF${hex(marker)}`;
    if (marker === 0xd9) { // EOI
      if (frame === undefined || scans === 0) {
        throw new CorruptImageError(
          `Corrupt JPEG: EOI at byte ${at} before any ${frame ? "scan" : "frame header"}`,
        );
      }
      const { ids: _ids, quant: _quant, ...structure } = frame;
      return { ...structure, scans, adobe };
    }
    if (marker === 0x00 || marker === 0x01 || marker === 0xd8 || (marker & 0xf8) === 0xd0) {
      throw new CorruptImageError(`Corrupt JPEG: marker ${name} at byte ${at} outside a scan`);
    }
    if (marker === 0xc8 || (marker >= 0xf0 && marker <= 0xfd && marker !== 0xf7)) {
      throw new UnsupportedImageError(
        `Unsupported JPEG: extension marker ${name} at byte ${at} (JPG/JPGn)`,
      );
    }
    if (marker === 0xcc) {
      throw new UnsupportedImageError(
        `Unsupported JPEG process: arithmetic coding (DAC marker at byte ${at})`,
      );
    }
    if (offset + 4 > bytes.length) {
      throw new CorruptImageError(
        `Truncated JPEG: ${bytes.length} bytes end inside marker ${name}`,
      );
    }
    const length = u16be(bytes, offset + 2);
    const start = offset + 4;
    const end = offset + 2 + length;
    if (length < 2) {
      throw new CorruptImageError(
        `Corrupt JPEG: segment ${name} at byte ${at} has length ${length}`,
      );
    }
    if (end > bytes.length) {
      throw new CorruptImageError(
        `Truncated JPEG: segment ${name} at byte ${at} needs ${length + 2} bytes, ` +
          `the file has ${bytes.length - at} left`,
      );
    }
    const body = bytes.subarray(start, end);
    if (marker in JPEG_PROCESSES) {
      assertJpegProcess(marker, at);
      if (frame !== undefined) {
        throw new CorruptImageError(`Corrupt JPEG: a second frame header at byte ${at}`);
      }
      frame = readFrame(marker, body, at);
    } else if (marker === 0xc4) {
      readHuffmanTables(body, at, dcTables, acTables);
    } else if (marker === 0xdb) {
      readQuantTables(body, at, quantTables);
    } else if (marker === 0xdd) {
      if (length !== 4) {
        throw new CorruptImageError(`Corrupt JPEG: DRI at byte ${at} has length ${length}, not 4`);
      }
    } else if (marker === 0xda) {
      if (frame === undefined) {
        throw new CorruptImageError(`Corrupt JPEG: scan (SOS) at byte ${at} before the frame`);
      }
      if (scans === 0) {
        const missing = frame.quant.filter((t) => !quantTables.has(t));
        if (missing.length > 0) {
          throw new CorruptImageError(
            `Corrupt JPEG: the frame uses quantization table ${
              missing[0]
            }, not defined before the first scan`,
          );
        }
      }
      readScan(body, at, frame, dcTables, acTables);
      scans++;
      if (scans > MAX_JPEG_SCANS) {
        throw new CorruptImageError(
          `Corrupt JPEG: more than ${MAX_JPEG_SCANS} scans (the ${scans}th at byte ${at})`,
        );
      }
      offset = endOfEntropyData(bytes, end, scans);
      continue;
    } else if (marker === 0xee && ascii(body, 0, 5) === "Adobe") {
      adobe = true;
    } else if (!(marker >= 0xe0 && marker <= 0xef) && marker !== 0xfe && marker !== 0xdc) {
      // APPn, COM and DNL (meaningless here: a zero height is refused) are skipped
      throw new CorruptImageError(`Corrupt JPEG: unknown marker ${name} at byte ${at}`);
    }
    offset = end;
  }
}

/** SOFn: precision, height, width, components (id, sampling, quantization table). */
function readFrame(
  marker: number,
  body: Uint8Array,
  at: number,
): JpegStructure & { ids: number[]; quant: number[] } {
  if (body.length < 6) {
    throw new CorruptImageError(`Corrupt JPEG: frame header at byte ${at} is ${body.length} bytes`);
  }
  const precision = body[0];
  const height = u16be(body, 1);
  const width = u16be(body, 3);
  const components = body[5];
  if (precision !== 8) {
    throw new UnsupportedImageError(
      `Unsupported JPEG: ${precision}-bit samples (${
        JPEG_PROCESSES[marker]
      }); only 8-bit JPEG is decoded`,
    );
  }
  if (height === 0) {
    throw new UnsupportedImageError(
      "Unsupported JPEG: height 0 in the frame header (height given later by a DNL marker)",
    );
  }
  if (width === 0) throw new CorruptImageError(`Corrupt JPEG: width 0 in the frame header`);
  if (body.length !== 6 + 3 * components) {
    throw new CorruptImageError(
      `Corrupt JPEG: frame header at byte ${at} is ${body.length} bytes for ${components} components`,
    );
  }
  if (components !== 1 && components !== 3 && components !== 4) {
    throw new UnsupportedImageError(
      `Unsupported JPEG: ${components} colour components; 1 (grey), 3 (colour) or 4 (CMYK) are decoded`,
    );
  }
  const ids: number[] = [];
  const quant: number[] = [];
  for (let i = 0; i < components; i++) {
    const [id, sampling, table] = body.subarray(6 + 3 * i, 9 + 3 * i);
    const h = sampling >> 4;
    const v = sampling & 15;
    if (ids.includes(id) || h < 1 || h > 4 || v < 1 || v > 4 || table > 3) {
      throw new CorruptImageError(
        `Corrupt JPEG: frame component ${i} has id ${id}, sampling ${h}×${v}, table ${table}`,
      );
    }
    ids.push(id);
    quant.push(table);
  }
  return { frame: marker, width, height, components, scans: 0, adobe: false, ids, quant };
}

/** DHT: one or more tables, each class/id, 16 code counts, then the values; exactly filling. */
function readHuffmanTables(
  body: Uint8Array,
  at: number,
  dcTables: Set<number>,
  acTables: Set<number>,
): void {
  let i = 0;
  while (i < body.length) {
    if (i + 17 > body.length) break;
    const spec = body[i];
    let codes = 0;
    for (let k = 1; k <= 16; k++) codes += body[i + k];
    if (spec >> 4 > 1 || (spec & 15) > 3 || codes > 256 || i + 17 + codes > body.length) break;
    (spec >> 4 === 0 ? dcTables : acTables).add(spec & 15);
    i += 17 + codes;
  }
  if (i !== body.length || body.length === 0) {
    throw new CorruptImageError(
      `Corrupt JPEG: Huffman table segment (DHT) at byte ${at} is malformed at its byte ${i}`,
    );
  }
}

/** DQT: one or more tables of 64 bytes (8-bit) or 128 bytes (16-bit); exactly filling. */
function readQuantTables(body: Uint8Array, at: number, tables: Set<number>): void {
  let i = 0;
  while (i < body.length) {
    const precision = body[i] >> 4;
    const size = precision === 0 ? 64 : 128;
    if (precision > 1 || (body[i] & 15) > 3 || i + 1 + size > body.length) break;
    tables.add(body[i] & 15);
    i += 1 + size;
  }
  if (i !== body.length || body.length === 0) {
    throw new CorruptImageError(
      `Corrupt JPEG: quantization table segment (DQT) at byte ${at} is malformed at its byte ${i}`,
    );
  }
}

/** SOS: components (each in the frame, with defined tables) and the spectral selection. */
function readScan(
  body: Uint8Array,
  at: number,
  frame: JpegStructure & { ids: number[] },
  dcTables: Set<number>,
  acTables: Set<number>,
): void {
  const count = body[0];
  if (count < 1 || count > 4 || body.length !== 4 + 2 * count) {
    throw new CorruptImageError(
      `Corrupt JPEG: scan header at byte ${at} is ${body.length} bytes for ${count} components`,
    );
  }
  const [ss, se, approximation] = body.subarray(1 + 2 * count);
  const ah = approximation >> 4;
  const al = approximation & 15;
  const progressive = frame.frame === 0xc2;
  const valid = progressive
    ? ss <= se && se <= 63 && (ss === 0 ? se === 0 : count === 1) && ah <= 13 && al <= 13
    : ss === 0 && se === 63 && ah === 0 && al === 0;
  if (!valid) {
    throw new CorruptImageError(
      `Corrupt JPEG: scan at byte ${at} has spectral selection ${ss}..${se}, approximation ${ah}/${al}`,
    );
  }
  const seen: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = body[1 + 2 * i];
    const tables = body[2 + 2 * i];
    if (!frame.ids.includes(id) || seen.includes(id)) {
      throw new CorruptImageError(
        `Corrupt JPEG: scan at byte ${at} names component ${id}, which the frame ${
          seen.includes(id) ? "lists once" : "does not have"
        }`,
      );
    }
    seen.push(id);
    const needsDc = ss === 0 && ah === 0;
    const needsAc = se > 0;
    if ((needsDc && !dcTables.has(tables >> 4)) || (needsAc && !acTables.has(tables & 15))) {
      throw new CorruptImageError(
        `Corrupt JPEG: scan at byte ${at} uses Huffman table ${
          needsDc && !dcTables.has(tables >> 4) ? `DC ${tables >> 4}` : `AC ${tables & 15}`
        }, not defined before it`,
      );
    }
  }
}

/** The offset of the first marker after a scan's entropy-coded data (stuffed 00 and RSTn skipped). */
function endOfEntropyData(bytes: Uint8Array, offset: number, scan: number): number {
  for (let i = offset; i + 1 < bytes.length; i++) {
    if (bytes[i] !== 0xff) continue;
    const next = bytes[i + 1];
    if (next === 0x00 || (next & 0xf8) === 0xd0 || next === 0xff) continue;
    return i;
  }
  throw new CorruptImageError(
    `Truncated JPEG: the data of scan ${scan} (from byte ${offset}) runs to the end of the ` +
      `file (${bytes.length} bytes) without EOI`,
  );
}

/**
 * Decodes a JPEG to RGB after {@linkcode readJpegStructure} accepted it.
 *
 * @param bytes the whole file
 * @returns `rgb` as `[height, width, 3]` bytes
 * @throws {CorruptImageError} for a damaged file (including what `jpeg-js` itself rejects:
 *   invalid Huffman codes, an unexpected marker inside a scan)
 * @throws {UnsupportedImageError} for a process or layout that is not decoded
 *
 * @example
 * ```ts
 * import { decodeJpeg } from "./jpeg_decode.ts";
 * const { width, height, rgb } = decodeJpeg(Deno.readFileSync("photo.jpg"));
 * ```
 */
export function decodeJpeg(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const structure = readJpegStructure(bytes);
  const { width, height } = structure;
  if (structure.components === 4 && !structure.adobe) {
    throw new UnsupportedImageError(
      "Unsupported JPEG: 4 components (CMYK/YCCK) without an Adobe APP14 marker",
    );
  }
  const pixels = width * height;
  let image: { width: number; height: number; data: Uint8Array };
  try {
    image = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      // PIL refuses truncated JPEGs (LOAD_TRUNCATED_IMAGES is off); so do we
      tolerantDecoding: false,
      maxResolutionInMP: Math.ceil(pixels / 1e6) + 1,
      // coefficients (progressive), component lines and output: ~20 bytes a pixel at most
      maxMemoryUsageInMB: Math.ceil((pixels * 32) / 2 ** 20) + 16,
    });
  } catch (error) {
    throw new CorruptImageError(
      `Corrupt JPEG (${width}×${height}, ${structure.scans} scans): ${messageOf(error)}`,
      { cause: error },
    );
  }
  if (image.width !== width || image.height !== height || image.data.length !== pixels * 3) {
    throw new CorruptImageError(
      `Corrupt JPEG: decoded ${image.width}×${image.height}, the frame header says ${width}×${height}`,
    );
  }
  return { width, height, rgb: image.data };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function u16be(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}
