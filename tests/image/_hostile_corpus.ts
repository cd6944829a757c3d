/**
 * A corpus of hostile image uploads, made at test time from real files (ffmpeg and jpegtran) and
 * mutated the ways an attacker or a broken client would: cut at many offsets, bytes flipped in
 * chunk data, CRCs and zlib streams, frame markers swapped for processes we do not decode,
 * animation, lying sizes, decompression bombs. Each case says which outcomes are right:
 * `"decodes"`, or the HTTP status class of the refusal (413, 415, 422).
 *
 * Needs `run: ["ffmpeg", "jpegtran"]` and read/write access to the temp folder.
 *
 * @module
 */

import { deflateRawSync, deflateSync } from "node:zlib";
import { crc32 } from "../../pipeline/image/png_encode.ts";
import { ffmpeg, makeImage } from "./_ffmpeg.ts";

/** Outcomes of validating an upload: it decodes, or it is refused with this HTTP status. */
export type Outcome = "decodes" | 413 | 415 | 422;

/** One hostile upload and the outcomes that are right for it. */
export interface HostileCase {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly expect: readonly Outcome[];
  /** What the refusal's message must say, when it is refused. */
  readonly message?: RegExp;
}

/** The pixel limit the corpus is built around (the service's default `MAX_PIXELS`). */
export const CORPUS_MAX_PIXELS = 16_000_000;

/** Permissions to build the corpus. */
export const CORPUS_PERMISSIONS: Deno.PermissionOptionsObject = {
  run: ["ffmpeg", "jpegtran"],
  read: true,
  write: true,
};

/** Real, valid files the mutations start from, small so the corpus runs fast. */
export interface Seeds {
  readonly png: Uint8Array;
  readonly pngGrey16: Uint8Array;
  readonly jpeg: Uint8Array;
  readonly jpegGrey: Uint8Array;
  readonly jpegProgressive: Uint8Array;
  readonly webpLossy: Uint8Array;
  readonly webpLossless: Uint8Array;
  readonly webpAlpha: Uint8Array;
}

/** Makes the seed files (96×64 test cards). */
export async function makeSeeds(): Promise<Seeds> {
  const jpeg = await makeImage("x.jpg", ["-q:v", "4"]);
  return {
    png: await makeImage("x.png"),
    pngGrey16: await makeImage("x.png", ["-pix_fmt", "gray16be"]),
    jpeg,
    jpegGrey: await makeImage("g.jpg", ["-pix_fmt", "gray"]),
    jpegProgressive: await jpegtran(["-progressive"], jpeg),
    webpLossy: await makeImage("x.webp"),
    webpLossless: await makeImage("x.webp", ["-lossless", "1"]),
    webpAlpha: await makeImage(
      "a.webp",
      ["-pix_fmt", "yuva420p"],
      "testsrc=size=96x64,format=rgba,colorchannelmixer=aa=0.5",
    ),
  };
}

/** Runs jpegtran with `args` on `input`, returning its output. */
export async function jpegtran(args: readonly string[], input: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("jpegtran", {
    args: [...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const { success, stdout, stderr } = await output;
  if (!success) {
    throw new Error(`jpegtran ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return stdout;
}

/** Builds the whole corpus (a few hundred cases). */
export async function hostileCorpus(): Promise<HostileCase[]> {
  const seeds = await makeSeeds();
  return [
    ...validCases(seeds),
    ...truncations(seeds),
    ...pngCases(seeds),
    ...(await jpegCases(seeds)),
    ...(await webpCases(seeds)),
    ...sizeCases(),
    ...bombCases(),
  ];
}

function validCases(seeds: Seeds): HostileCase[] {
  return Object.entries(seeds).map(([name, bytes]) => ({
    name: `valid ${name}`,
    bytes,
    expect: ["decodes"],
  }));
}

/** Every seed cut at 0, 1, 2, 8, at least 40 evenly spaced offsets, and its last 4 bytes. */
function truncations(seeds: Seeds): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const [name, bytes] of Object.entries(seeds)) {
    const offsets = new Set([0, 1, 2, 8, 16, 30, bytes.length - 4, bytes.length - 3]);
    for (let i = 0; i < 48; i++) offsets.add(Math.floor((bytes.length * i) / 48));
    offsets.add(bytes.length - 2);
    offsets.add(bytes.length - 1);
    for (const length of [...offsets].sort((a, b) => a - b)) {
      cases.push({
        name: `${name} cut to ${length} of ${bytes.length} bytes`,
        bytes: bytes.slice(0, length),
        // one byte names no format; anything longer is a cut file
        expect: length === 1 ? [415] : [422],
        message: length === 0 ? /Empty/ : length === 1 ? /Unsupported/ : /Truncated|Corrupt/,
      });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// PNG

/** A chunk's position in a PNG file. */
interface ChunkAt {
  readonly type: string;
  readonly offset: number;
  readonly length: number;
}

/** The chunks of a well-formed PNG. */
export function pngChunks(bytes: Uint8Array): ChunkAt[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: ChunkAt[] = [];
  for (let offset = 8; offset + 12 <= bytes.length;) {
    const length = view.getUint32(offset);
    chunks.push({ type: ascii(bytes.subarray(offset + 4, offset + 8)), offset, length });
    offset += 12 + length;
  }
  return chunks;
}

/** One PNG chunk with its length and CRC. */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode(type), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

/** Signature + the chunks given (`[type, data]`), each with a right CRC. */
export function pngOf(chunks: readonly [string, Uint8Array][]): Uint8Array {
  return concat(PNG_SIGNATURE, ...chunks.map(([type, data]) => pngChunk(type, data)));
}

const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The `[type, data]` chunks of a well-formed PNG. */
function pngParts(bytes: Uint8Array): [string, Uint8Array][] {
  return pngChunks(bytes).map((c) => [c.type, bytes.slice(c.offset + 8, c.offset + 8 + c.length)]);
}

function pngCases(seeds: Seeds): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const [name, png] of [["png", seeds.png], ["pngGrey16", seeds.pngGrey16]] as const) {
    const chunks = pngChunks(png);
    // a flipped byte anywhere in a chunk's type, data or CRC fails that chunk's CRC
    for (const chunk of chunks) {
      // type, data (first, last and spread between), CRC (first and last byte)
      const spots = new Set([4, 7, 8 + chunk.length, 11 + chunk.length]);
      for (let i = 0; i < 6 && chunk.length > 0; i++) {
        spots.add(8 + Math.floor((chunk.length * i) / 6));
      }
      if (chunk.length > 0) spots.add(8 + chunk.length - 1);
      for (const spot of spots) {
        const bad = png.slice();
        bad[chunk.offset + spot] ^= 0x20; // keeps a type byte a letter
        cases.push({
          name: `${name}: byte ${spot} of chunk ${chunk.type} flipped`,
          bytes: bad,
          expect: [422],
          message: spot < 8 ? /CRC mismatch|Corrupt PNG/ : /CRC mismatch/,
        });
      }
    }
    // bad zlib data under a right CRC: the stream itself must be checked
    const parts = pngParts(png);
    const idatIndex = parts.findIndex(([type]) => type === "IDAT");
    const idat = parts[idatIndex][1];
    const zlibSpots = [0, 1, 2, 5, Math.floor(idat.length / 3), Math.floor(idat.length / 2)];
    for (const spot of [...zlibSpots, idat.length - 5, idat.length - 1]) {
      const bad = idat.slice();
      bad[spot] ^= 0xff;
      cases.push({
        name: `${name}: IDAT zlib byte ${spot} of ${idat.length} flipped, CRC fixed`,
        bytes: pngOf(parts.map((p, i) => (i === idatIndex ? ["IDAT", bad] : p))),
        expect: [422],
        message: /zlib|inflate|Truncated PNG|filter type/,
      });
    }
    const cutStream = idat.slice(0, Math.floor(idat.length * 0.7));
    cases.push({
      name: `${name}: IDAT zlib stream cut at 70 %, CRC fixed, IEND present`,
      bytes: pngOf(parts.map((p, i) => (i === idatIndex ? ["IDAT", cutStream] : p))),
      expect: [422],
      message: /does not inflate: unexpected end of file/,
    });
    // structure
    const ihdr = parts[0];
    const iend: [string, Uint8Array] = ["IEND", new Uint8Array(0)];
    const body = parts.slice(1, -1);
    const split: [string, Uint8Array][] = [
      ["IDAT", idat.slice(0, 10)],
      ["IDAT", idat.slice(10)],
    ];
    const structural: [string, [string, Uint8Array][], Outcome, RegExp?][] = [
      ["IDAT split in two (valid)", [ihdr, ...split, iend], "decodes"],
      [
        "an unknown ancillary chunk (valid)",
        [ihdr, ["zzZz", new Uint8Array(3)], ...body, iend],
        "decodes",
      ],
      ["no IEND", [ihdr, ...body], 422, /before IEND/],
      ["no IDAT", [ihdr, iend], 422, /before any IDAT/],
      [
        "IDAT before IHDR",
        [["IDAT", idat], ihdr, ["IDAT", idat], iend],
        422,
        /first chunk is "IDAT"/,
      ],
      [
        "IDAT before PLTE",
        [ihdr, ["IDAT", idat], ["PLTE", new Uint8Array(6)], iend],
        422,
        /PLTE chunk at byte \d+ after IDAT/,
      ],
      ["two IHDR chunks", [ihdr, ihdr, ...body, iend], 422, /second IHDR/],
      [
        "IDAT chunks not consecutive",
        [ihdr, split[0], ["teXt", new Uint8Array(2)], split[1], iend],
        422,
        /consecutive/,
      ],
      [
        "an unknown critical chunk",
        [ihdr, ["ZZZZ", new Uint8Array(4)], ...body, iend],
        415,
        /unknown critical chunk "ZZZZ"/,
      ],
      [
        "a chunk type with a digit",
        [ihdr, ["ab1d", new Uint8Array(4)], ...body, iend],
        422,
        /not four letters/,
      ],
    ];
    for (const [what, chunks, outcome, message] of structural) {
      cases.push({ name: `${name}: ${what}`, bytes: pngOf(chunks), expect: [outcome], message });
    }
    cases.push({
      name: `${name}: junk after IEND (ignored, as libpng does)`,
      bytes: concat(png, new TextEncoder().encode("trailing junk")),
      expect: ["decodes"],
    });
    // IHDR fields that lie, with the CRC fixed
    const fields: [string, (d: DataView) => void, RegExp][] = [
      ["width + 1", (d) => d.setUint32(0, d.getUint32(0) + 1), /Truncated PNG|inflates past/],
      // rows end 3 bytes early: a data byte is read as a filter type
      ["width − 1", (d) => d.setUint32(0, d.getUint32(0) - 1), /filter type/],
      ["height × 2", (d) => d.setUint32(4, d.getUint32(4) * 2), /Truncated PNG/],
      ["bit depth 3", (d) => d.setUint8(8, 3), /bit depth 3/],
      ["colour type 5", (d) => d.setUint8(9, 5), /colour type 5/],
      ["compression method 1", (d) => d.setUint8(10, 1), /compression 1/],
      ["interlace method 2", (d) => d.setUint8(12, 2), /interlace 2/],
      ["width 0", (d) => d.setUint32(0, 0), /size 0×/],
    ];
    for (const [what, change, message] of fields) {
      const data = ihdr[1].slice();
      change(new DataView(data.buffer));
      cases.push({
        name: `${name}: IHDR ${what}, CRC fixed`,
        bytes: pngOf([["IHDR", data], ...body, iend]),
        expect: [422],
        message,
      });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// JPEG

/** Offset of the first marker `FF <code>` after SOI, walking segments (not scan data). */
export function jpegMarkerOffset(bytes: Uint8Array, codes: readonly number[]): number {
  for (let offset = 2; offset + 4 <= bytes.length;) {
    const code = bytes[offset + 1];
    if (codes.includes(code)) return offset;
    if (code === 0xda) break;
    offset += 2 + ((bytes[offset + 2] << 8) | bytes[offset + 3]);
  }
  throw new Error(`no marker ${codes.map((c) => c.toString(16))} before the first scan`);
}

async function jpegCases(seeds: Seeds): Promise<HostileCase[]> {
  const cases: HostileCase[] = [];
  const { jpeg } = seeds;
  const sof = jpegMarkerOffset(jpeg, [0xc0]);
  // frame markers swapped: only SOF1 (same syntax as SOF0 at 8 bits) still decodes; SOF2 reads
  // the baseline scan as an invalid progressive one; every other process is refused by name
  const swaps: [number, Outcome, RegExp][] = [
    [0xc1, "decodes", /./],
    [0xc2, 422, /spectral selection 0\.\.63/],
    [0xc3, 415, /SOF3 lossless/],
    [0xc5, 415, /SOF5 differential/],
    [0xc6, 415, /SOF6/],
    [0xc7, 415, /SOF7/],
    [0xc9, 415, /SOF9 extended sequential DCT, arithmetic/],
    [0xca, 415, /SOF10 progressive DCT, arithmetic/],
    [0xcb, 415, /SOF11 lossless, arithmetic/],
    [0xcd, 415, /SOF13/],
    [0xce, 415, /SOF14/],
    [0xcf, 415, /SOF15/],
    [0xf7, 415, /JPEG-LS/],
    [0xde, 415, /DHP/],
  ];
  for (const [marker, outcome, message] of swaps) {
    const bad = jpeg.slice();
    bad[sof + 1] = marker;
    cases.push({
      name: `jpeg: SOF0 swapped for 0xFF${hex(marker)}`,
      bytes: bad,
      expect: [outcome],
      message,
    });
  }
  const frameField = (
    what: string,
    at: number,
    values: number[],
    outcome: Outcome,
    message: RegExp,
  ) => {
    const bad = jpeg.slice();
    bad.set(values, sof + at);
    cases.push({ name: `jpeg: frame ${what}`, bytes: bad, expect: [outcome], message });
  };
  frameField("precision 12", 4, [12], 415, /12-bit/);
  frameField("precision 16", 4, [16], 415, /16-bit/);
  frameField("height 0 (given later by DNL)", 5, [0, 0], 415, /DNL/);
  frameField("width 0", 7, [0, 0], 422, /size|width 0/);
  frameField("component count 2 in a 3-component header", 9, [2], 422, /frame header/);
  frameField("component count 5", 9, [5], 422, /frame header/);
  frameField("sampling factor 0×0", 11, [0x00], 422, /sampling 0×0/);
  frameField("quantization table 7", 12, [7], 422, /table 7/);
  // structure
  const eoiless = jpeg.slice(0, jpeg.length - 2);
  cases.push({ name: "jpeg: no EOI", bytes: eoiless, expect: [422], message: /without EOI/ });
  cases.push({
    name: "jpeg: junk after EOI (ignored)",
    bytes: concat(jpeg, new TextEncoder().encode("junk")),
    expect: ["decodes"],
  });
  const filled = concat(jpeg.subarray(0, sof), Uint8Array.from([0xff]), jpeg.subarray(sof));
  filled[sof + 2] = 0xc3;
  cases.push({
    name: "jpeg: fill byte then SOF3",
    bytes: filled,
    expect: [415],
    message: /SOF3/,
  });
  const rstOutside = concat(
    jpeg.subarray(0, sof),
    Uint8Array.from([0xff, 0xd0]),
    jpeg.subarray(sof),
  );
  cases.push({
    name: "jpeg: RST0 before the frame",
    bytes: rstOutside,
    expect: [422],
    message: /outside a scan/,
  });
  const dac = concat(
    jpeg.subarray(0, sof),
    Uint8Array.from([0xff, 0xcc, 0, 4, 0, 0]),
    jpeg.subarray(sof),
  );
  cases.push({ name: "jpeg: DAC segment", bytes: dac, expect: [415], message: /arithmetic/ });
  const app = concat(
    jpeg.subarray(0, sof),
    Uint8Array.from([0xff, 0xe5, 0xff, 0xf0]),
    jpeg.subarray(sof),
  );
  cases.push({
    name: "jpeg: APP5 length past the end",
    bytes: app,
    expect: [422],
    message: /Truncated JPEG/,
  });
  const sos = jpegMarkerOffset(jpeg, [0xda]);
  const noScanTables = jpeg.slice();
  noScanTables[sos + 6] = 0x33; // component 1 uses DC table 3 and AC table 3, never defined
  cases.push({
    name: "jpeg: scan names undefined Huffman tables",
    bytes: noScanTables,
    expect: [422],
    message: /Huffman table/,
  });
  const badComponent = jpeg.slice();
  badComponent[sos + 5] = 9; // scan names component 9
  cases.push({
    name: "jpeg: scan names a component the frame lacks",
    bytes: badComponent,
    expect: [422],
    message: /component 9/,
  });
  // flipped bytes in the entropy-coded data: jpeg-js may decode garbage or refuse it
  const scanStart = sos + 2 + ((jpeg[sos + 2] << 8) | jpeg[sos + 3]);
  for (let i = 1; i <= 8; i++) {
    const at = scanStart + Math.floor(((jpeg.length - 2 - scanStart) * i) / 9);
    const bad = jpeg.slice();
    bad[at] ^= 0x5a;
    cases.push({
      name: `jpeg: scan data byte ${at} flipped`,
      bytes: bad,
      expect: ["decodes", 422],
    });
  }
  // flipped bytes in the tables
  for (const code of [0xc4, 0xdb]) {
    const at = jpegMarkerOffset(jpeg, [code]);
    for (const spot of [2, 3, 4, 5, 20]) {
      const bad = jpeg.slice();
      bad[at + spot] ^= 0xa5;
      cases.push({
        name: `jpeg: byte ${spot} of ${code === 0xc4 ? "DHT" : "DQT"} flipped`,
        bytes: bad,
        // a length byte may make the walk read a different segment as the frame header
        expect: ["decodes", 413, 415, 422],
      });
    }
  }
  // real files of processes jpeg-js does not decode
  const real: [string, Promise<Uint8Array>, RegExp][] = [
    ["arithmetic (jpegtran)", jpegtran(["-arithmetic"], jpeg), /SOF9/],
    ["progressive arithmetic (jpegtran)", jpegtran(["-arithmetic", "-progressive"], jpeg), /SOF10/],
    ["lossless (ffmpeg ljpeg)", makeImage("l.jpg", ["-c:v", "ljpeg", "-pix_fmt", "bgr24"]), /SOF3/],
    ["JPEG-LS (ffmpeg jpegls)", makeImage("ls.jpg", ["-c:v", "jpegls"]), /JPEG-LS/],
  ];
  for (const [what, bytes, message] of real) {
    cases.push({ name: `jpeg: ${what}`, bytes: await bytes, expect: [415], message });
  }
  // progressive: every scan repeated past the scan limit
  const progressive = seeds.jpegProgressive;
  const firstScan = jpegMarkerOffset(progressive, [0xda]);
  const end = progressive.length - 2;
  const scans = progressive.subarray(firstScan, end);
  const many = concat(
    progressive.subarray(0, firstScan),
    ...Array(12).fill(scans),
    progressive.subarray(end),
  );
  cases.push({
    name: "jpeg: progressive with 120 scans",
    bytes: many,
    expect: [422],
    message: /more than 100 scans/,
  });
  return cases;
}

// ---------------------------------------------------------------------------------------------
// WebP

async function webpCases(seeds: Seeds): Promise<HostileCase[]> {
  const cases: HostileCase[] = [];
  const animated = await makeAnimatedWebp();
  cases.push({
    name: "webp: animated (ffmpeg libwebp_anim)",
    bytes: animated,
    expect: [415],
    message: /animated/,
  });
  const unflagged = animated.slice();
  unflagged[20] &= ~0x02; // animation flag cleared, ANIM and ANMF chunks left
  cases.push({
    name: "webp: animation chunks without the flag",
    bytes: unflagged,
    expect: [415],
    message: /ANIM/,
  });
  for (
    const [name, webp] of Object.entries({
      lossy: seeds.webpLossy,
      lossless: seeds.webpLossless,
      alpha: seeds.webpAlpha,
    })
  ) {
    const riffLonger = webp.slice();
    new DataView(riffLonger.buffer).setUint32(4, webp.length, true); // 8 more than the file
    cases.push({
      name: `webp ${name}: RIFF size past the file`,
      bytes: riffLonger,
      expect: [422],
      message: /Truncated WebP/,
    });
    const riffShorter = webp.slice();
    new DataView(riffShorter.buffer).setUint32(4, webp.length - 8 - 10, true);
    cases.push({
      name: `webp ${name}: RIFF size short of its chunks`,
      bytes: riffShorter,
      expect: [422],
      message: /Corrupt WebP|Truncated WebP/,
    });
    // flipped bytes in the bitstream: ffmpeg decodes garbage or fails
    for (let i = 1; i <= 6; i++) {
      const at = 30 + Math.floor(((webp.length - 31) * i) / 7);
      const bad = webp.slice();
      bad[at] ^= 0x5a;
      cases.push({
        name: `webp ${name}: byte ${at} flipped`,
        bytes: bad,
        expect: ["decodes", 422],
      });
    }
  }
  const alpha = seeds.webpAlpha;
  const canvas = alpha.slice();
  canvas.set([9, 0, 0, 9, 0, 0], 24);
  cases.push({
    name: "webp: VP8X canvas 10×10 over a 96×64 image",
    bytes: canvas,
    expect: [422],
    message: /canvas is 10×10/,
  });
  const lossless = seeds.webpLossless.slice();
  lossless[20] = 0x2e;
  cases.push({
    name: "webp: VP8L signature flipped",
    bytes: lossless,
    expect: [422],
    message: /0x2F/,
  });
  const vp8 = seeds.webpLossy.slice();
  vp8[23] = 0;
  cases.push({
    name: "webp: VP8 start code broken",
    bytes: vp8,
    expect: [422],
    message: /key frame/,
  });
  const noImage = riff("WEBP", [["VP8X", Uint8Array.from([0, 0, 0, 0, 95, 0, 0, 63, 0, 0])]]);
  cases.push({
    name: "webp: VP8X without an image chunk",
    bytes: noImage,
    expect: [422],
    message: /no VP8/,
  });
  return cases;
}

/** Three frames of the test card as an animated WebP (ffmpeg's libwebp_anim). */
async function makeAnimatedWebp(): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "svd_image_test_" });
  try {
    const path = `${dir}/anim.webp`;
    await ffmpeg([
      ...["-f", "lavfi", "-i", "testsrc=size=96x64:rate=5", "-frames:v", "3"],
      ...["-c:v", "libwebp_anim", "-loop", "0", path],
    ]);
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A RIFF file of `form` with the chunks given (padded to even sizes). */
export function riff(form: string, chunks: readonly [string, Uint8Array][]): Uint8Array {
  const parts = chunks.map(([type, data]) => {
    const chunk = new Uint8Array(8 + data.length + (data.length & 1));
    chunk.set(new TextEncoder().encode(type));
    new DataView(chunk.buffer).setUint32(4, data.length, true);
    chunk.set(data, 8);
    return chunk;
  });
  const body = concat(new TextEncoder().encode(form), ...parts);
  const head = new Uint8Array(8);
  head.set(new TextEncoder().encode("RIFF"));
  new DataView(head.buffer).setUint32(4, body.length, true);
  return concat(head, body);
}

// ---------------------------------------------------------------------------------------------
// Sizes and bombs

function sizeCases(): HostileCase[] {
  const idat = deflateSync(new Uint8Array(64));
  const pngOfSize = (w: number, h: number) =>
    pngOf([["IHDR", ihdr(w, h, 0)], ["IDAT", idat], ["IEND", new Uint8Array(0)]]);
  const jpegOfSize = (w: number, h: number) =>
    Uint8Array.from([
      0xff,
      0xd8,
      0xff,
      0xc0,
      0,
      11,
      8,
      h >> 8,
      h & 255,
      w >> 8,
      w & 255,
      1,
      1,
      0x11,
      0,
      0xff,
      0xd9,
    ]);
  const vp8x = (w: number, h: number) => {
    const data = new Uint8Array(10);
    data.set([
      (w - 1) & 255,
      ((w - 1) >> 8) & 255,
      (w - 1) >> 16,
      (h - 1) & 255,
      ((h - 1) >> 8) & 255,
      (h - 1) >> 16,
    ], 4);
    return riff("WEBP", [["VP8X", data], ["VP8L", Uint8Array.from([0x2f, 0, 0, 0, 0])]]);
  };
  return [
    {
      name: "png: 100000×100000 header, tiny data",
      bytes: pngOfSize(100000, 100000),
      expect: [413],
      message: /10000000000 pixels/,
    },
    {
      name: "png: 4001×4000 header (just over 16 Mpx)",
      bytes: pngOfSize(4001, 4000),
      expect: [413],
      message: /16004000 pixels/,
    },
    {
      name: "png: 2^31−1 × 2^31−1 header",
      bytes: pngOfSize(0x7fffffff, 0x7fffffff),
      expect: [413],
    },
    {
      name: "png: 2^32−1 wide header",
      bytes: pngOfSize(0xffffffff, 1),
      expect: [422],
      message: /size/,
    },
    { name: "jpeg: 65535×65535 frame", bytes: jpegOfSize(65535, 65535), expect: [413] },
    { name: "webp: 16777216×16777216 VP8X canvas", bytes: vp8x(1 << 24, 1 << 24), expect: [413] },
    {
      name: "webp: 16384×16384 VP8L",
      bytes: riff("WEBP", [["VP8L", Uint8Array.from([0x2f, 0xff, 0xff, 0xff, 0x0f])]]),
      expect: [413],
    },
  ];
}

/** IHDR data: width, height, 8-bit, colour type, deflate, adaptive filtering, no interlace. */
function ihdr(width: number, height: number, colourType: number): Uint8Array {
  const data = new Uint8Array(13);
  const view = new DataView(data.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  data.set([8, colourType, 0, 0, 0], 8);
  return data;
}

/**
 * A valid zlib stream of `gib` GiB of zero bytes, in about a megabyte per GiB: one compressed
 * MiB of zeros (a sync-flushed raw deflate segment) repeated, an empty final block, and the
 * Adler-32 of the whole (for n zeros: a = 1, b = n mod 65521).
 */
export function zlibBomb(gib: number): Uint8Array {
  const mib = deflateRawSync(new Uint8Array(1 << 20), { level: 9, finishFlush: 2 }); // Z_SYNC_FLUSH
  const count = gib * 1024;
  const out = new Uint8Array(2 + mib.length * count + 2 + 4);
  out.set([0x78, 0xda]);
  for (let i = 0; i < count; i++) out.set(mib, 2 + i * mib.length);
  const tail = 2 + mib.length * count;
  out.set([0x03, 0x00], tail); // final fixed-Huffman block holding only end-of-block
  const b = (count * (1 << 20)) % 65521;
  new DataView(out.buffer).setUint32(tail + 2, ((b << 16) | 1) >>> 0);
  return out;
}

function bombCases(): HostileCase[] {
  const bomb = zlibBomb(4); // 4 GiB of zeros in ~4 MB
  const bombPng = (w: number, h: number) =>
    pngOf([["IHDR", ihdr(w, h, 0)], ["IDAT", bomb], ["IEND", new Uint8Array(0)]]);
  return [
    {
      name: "png bomb: 4 GiB IDAT under a 100000×100000 header",
      bytes: bombPng(100000, 100000),
      expect: [413],
    },
    {
      name: "png bomb: 4 GiB IDAT under a 4000×4000 grey header (at the limit)",
      bytes: bombPng(4000, 4000),
      expect: [422],
      message: /inflates past the 16004000 bytes/,
    },
    {
      name: "png bomb: 4 GiB IDAT under a 64×64 header",
      bytes: bombPng(64, 64),
      expect: [422],
      message: /inflates past the 4160 bytes/,
    },
  ];
}

// ---------------------------------------------------------------------------------------------

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function ascii(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}
