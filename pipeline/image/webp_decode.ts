/**
 * WebP to 8-bit RGB through an ffmpeg child process, behind a check of the RIFF container.
 *
 * The container is checked here because ffmpeg is lenient: every chunk must lie inside the RIFF
 * size and the RIFF size inside the file (a cut file is {@linkcode CorruptImageError}), the image
 * chunk (VP8 or VP8L) must be well formed and, in the extended format, as large as the VP8X
 * canvas (libwebp's own rule). Animation (ANIM/ANMF chunks, or the VP8X flag) is
 * {@linkcode UnsupportedImageError}: ffmpeg's WebP decoder does not read it. ffmpeg is the one
 * `FFMPEG_PATH` names (`resolveFfmpegPath`), as for encoding; a missing ffmpeg is an
 * {@linkcode UnsupportedImageError} (WebP cannot be read here), a failed decode a
 * {@linkcode CorruptImageError}.
 *
 * (Why ffmpeg and not a WebP decoder from npm: the pure-JavaScript ones are unmaintained ports;
 * the WebAssembly builds of libwebp load their module asynchronously from a file URL, which is
 * more machinery than one child process the service already depends on for encoding.)
 *
 * @module
 */

import { resolveFfmpegPath } from "../video/ffmpeg.ts";
import { CorruptImageError, UnsupportedImageError } from "./image_errors.ts";

/** How long one WebP decode may take before ffmpeg is killed (a still image takes < 1 s). */
export const WEBP_DECODE_TIMEOUT_MS = 30_000;
/** How much of ffmpeg's stderr a failure message keeps (its end, where the reason is). */
const STDERR_TAIL_BYTES = 2048;

/** Options of {@linkcode decodeWebp}. */
export interface DecodeWebpOptions {
  /** ffmpeg executable; default `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
  /** Kills ffmpeg; the decode rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Default {@linkcode WEBP_DECODE_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/**
 * Checks a WebP file's RIFF container and returns its image size.
 *
 * @throws {CorruptImageError} for a truncated container, chunks past the RIFF size, a malformed
 *   VP8/VP8L header, a canvas that differs from the image, no image chunk
 * @throws {UnsupportedImageError} for an animation
 *
 * @example
 * ```ts
 * import { readWebpStructure } from "./webp_decode.ts";
 * readWebpStructure(Deno.readFileSync("still.webp")); // { width: 96, height: 64, lossless: false }
 * ```
 */
export function readWebpStructure(
  bytes: Uint8Array,
): { width: number; height: number; lossless: boolean } {
  if (bytes.length < 20 || ascii(bytes, 0, 4) !== "RIFF" || ascii(bytes, 8, 4) !== "WEBP") {
    throw new CorruptImageError(`Corrupt WebP: ${bytes.length} bytes without a RIFF WEBP header`);
  }
  const riffEnd = 8 + u32le(bytes, 4);
  if (riffEnd > bytes.length) {
    throw new CorruptImageError(
      `Truncated WebP: the RIFF header announces ${riffEnd} bytes, the file has ${bytes.length}`,
    );
  }
  let canvas: { width: number; height: number } | undefined;
  let image: { width: number; height: number; lossless: boolean } | undefined;
  for (let offset = 12; offset < riffEnd;) {
    if (offset + 8 > riffEnd) {
      throw new CorruptImageError(
        `Corrupt WebP: ${riffEnd - offset} stray bytes at byte ${offset}, inside the RIFF size`,
      );
    }
    const type = ascii(bytes, offset, 4);
    const size = u32le(bytes, offset + 4);
    const data = offset + 8;
    // the pad byte after an odd payload may be missing at the very end
    const end = Math.min(data + size + (size & 1), riffEnd);
    if (data + size > riffEnd) {
      throw new CorruptImageError(
        `${riffEnd === bytes.length ? "Truncated" : "Corrupt"} WebP: chunk ${
          JSON.stringify(type)
        } at byte ${offset} needs ${size} bytes, ${riffEnd - data} are left in the RIFF`,
      );
    }
    const payload = bytes.subarray(data, data + size);
    if (offset === 12 && type === "VP8X") {
      if (size < 10) throw new CorruptImageError(`Corrupt WebP: VP8X chunk of ${size} bytes`);
      if ((payload[0] & 0x02) !== 0) throw animated("the VP8X animation flag is set");
      canvas = { width: u24le(payload, 4) + 1, height: u24le(payload, 7) + 1 };
    } else if (type === "ANIM" || type === "ANMF") {
      throw animated(`it has an ${type} chunk at byte ${offset}`);
    } else if ((type === "VP8 " || type === "VP8L") && image === undefined) {
      image = type === "VP8 " ? readVp8(payload, offset) : readVp8l(payload, offset);
      if (canvas === undefined) break; // simple format: the image is the file
    } else if (offset === 12) {
      throw new CorruptImageError(
        `Corrupt WebP: first chunk is ${JSON.stringify(type)}, expected "VP8 ", "VP8L" or "VP8X"`,
      );
    }
    offset = end;
  }
  if (image === undefined) {
    throw new CorruptImageError("Corrupt WebP: no VP8 or VP8L image chunk");
  }
  if (canvas && (canvas.width !== image.width || canvas.height !== image.height)) {
    throw new CorruptImageError(
      `Corrupt WebP: the VP8X canvas is ${canvas.width}×${canvas.height}, its image ${image.width}×${image.height}`,
    );
  }
  return image;
}

/** VP8 (lossy) key frame header: frame tag, start code, 14-bit sizes. */
function readVp8(payload: Uint8Array, offset: number) {
  if (payload.length < 10) {
    throw new CorruptImageError(
      `Corrupt WebP: VP8 chunk at byte ${offset} is ${payload.length} bytes`,
    );
  }
  const tag = payload[0] | (payload[1] << 8) | (payload[2] << 16);
  const keyFrame = (tag & 1) === 0;
  const version = (tag >> 1) & 7;
  const shown = (tag >> 4) & 1;
  const firstPartition = tag >> 5;
  const startCode = payload[3] === 0x9d && payload[4] === 0x01 && payload[5] === 0x2a;
  if (!keyFrame || version > 3 || !shown || !startCode || firstPartition > payload.length - 10) {
    throw new CorruptImageError(
      `Corrupt WebP: VP8 frame header at byte ${
        offset + 8
      } (key frame ${keyFrame}, version ${version}, ` +
        `shown ${shown}, start code ${startCode}, first partition ${firstPartition} of ${payload.length} bytes)`,
    );
  }
  const width = (payload[6] | (payload[7] << 8)) & 0x3fff;
  const height = (payload[8] | (payload[9] << 8)) & 0x3fff;
  if (width === 0 || height === 0) {
    throw new CorruptImageError(`Corrupt WebP: VP8 size ${width}×${height}`);
  }
  return { width, height, lossless: false };
}

/** VP8L (lossless) header: signature 0x2F, 14-bit sizes − 1, alpha bit, 3-bit version 0. */
function readVp8l(payload: Uint8Array, offset: number) {
  if (payload.length < 5 || payload[0] !== 0x2f) {
    throw new CorruptImageError(
      `Corrupt WebP: VP8L chunk at byte ${offset} lacks the 0x2F signature`,
    );
  }
  const bits = u32le(payload, 1);
  if (bits >>> 29 !== 0) {
    throw new CorruptImageError(`Corrupt WebP: VP8L version ${bits >>> 29}, expected 0`);
  }
  return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, lossless: true };
}

function animated(why: string): UnsupportedImageError {
  return new UnsupportedImageError(
    `Unsupported WebP: animated (${why}); send one frame as PNG, JPEG or still WebP`,
  );
}

/**
 * Decodes a still WebP to RGB: {@linkcode readWebpStructure}, then
 * `ffmpeg -f webp_pipe -i pipe:0 -frames:v 1 -f rawvideo -pix_fmt rgb24 pipe:1`. The output is
 * read against the size of the image chunk and ffmpeg is killed past it, so no bitstream can make
 * it stream out more than the header announced. Alpha is dropped, as PIL's `convert("RGB")` does.
 *
 * @param bytes the whole file
 * @returns `rgb` as `[height, width, 3]` bytes
 * @throws {CorruptImageError} for a damaged container, or a bitstream ffmpeg fails on, returns
 *   short, or takes longer than the timeout to decode
 * @throws {UnsupportedImageError} for an animation, or when there is no ffmpeg at the resolved path
 *
 * @example
 * ```ts
 * import { decodeWebp } from "./webp_decode.ts";
 * const { width, height, rgb } = await decodeWebp(Deno.readFileSync("still.webp"));
 * ```
 */
export async function decodeWebp(
  bytes: Uint8Array,
  options: DecodeWebpOptions = {},
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const { width, height } = readWebpStructure(bytes);
  const ffmpeg = resolveFfmpegPath(options.ffmpegPath);
  const timeoutMs = options.timeoutMs ?? WEBP_DECODE_TIMEOUT_MS;
  options.signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(ffmpeg, {
      args: [
        ...["-nostdin", "-hide_banner", "-loglevel", "error", "-f", "webp_pipe", "-i", "pipe:0"],
        ...["-frames:v", "1", "-sws_flags", "bicubic+accurate_rnd+full_chroma_int"],
        ...["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      throw new UnsupportedImageError(
        `WebP input needs ffmpeg, and "${ffmpeg}" ${
          error instanceof Deno.errors.NotFound ? "was not found" : "is not executable"
        }; install ffmpeg, set FFMPEG_PATH, or send PNG or JPEG`,
        { cause: error },
      );
    }
    throw error;
  }
  let stopped: "overflow" | "timeout" | "aborted" | undefined;
  const stop = (why: typeof stopped) => {
    stopped ??= why;
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  const timer = setTimeout(() => stop("timeout"), timeoutMs);
  const abort = () => stop("aborted");
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    const writing = (async () => {
      const writer = child.stdin.getWriter();
      try {
        await writer.write(bytes);
        await writer.close();
      } catch {
        // ffmpeg stopped reading (it failed or was killed): its exit status tells the story
      }
    })();
    const stderr = readTail(child.stderr);
    const expected = width * height * 3;
    const rgb = new Uint8Array(expected);
    let received = 0;
    for await (const chunk of child.stdout) {
      if (received + chunk.length > expected) {
        stop("overflow");
        break;
      }
      rgb.set(chunk, received);
      received += chunk.length;
    }
    const [status, message] = await Promise.all([child.status, stderr, writing]);
    if (stopped === "aborted") throw options.signal!.reason;
    const size = `${width}×${height}`;
    if (stopped === "overflow") {
      throw new CorruptImageError(
        `Corrupt WebP: ffmpeg decoded more than the ${size} pixels the header announces`,
      );
    }
    if (stopped === "timeout") {
      throw new CorruptImageError(
        `Corrupt WebP: ffmpeg did not decode the ${size} image within ${timeoutMs} ms`,
      );
    }
    if (!status.success || received !== expected) {
      const why = message.trim().split("\n").slice(-3).join("; ") || `exit code ${status.code}`;
      throw new CorruptImageError(
        `Corrupt WebP (${size}): ffmpeg ${
          status.success ? `returned ${received} of ${expected} RGB bytes` : `failed: ${why}`
        }`,
      );
    }
    return { width, height, rgb };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", abort);
  }
}

/** Drains a stream, keeping its last {@linkcode STDERR_TAIL_BYTES} bytes as text. */
async function readTail(stream: ReadableStream<Uint8Array>): Promise<string> {
  const tail = new Uint8Array(STDERR_TAIL_BYTES);
  let kept = 0;
  for await (const chunk of stream) {
    const take = chunk.subarray(Math.max(0, chunk.length - STDERR_TAIL_BYTES));
    const keep = Math.min(kept, STDERR_TAIL_BYTES - take.length);
    tail.copyWithin(0, kept - keep, kept);
    tail.set(take, keep);
    kept = keep + take.length;
  }
  return new TextDecoder().decode(tail.subarray(0, kept));
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return String.fromCharCode(...bytes.subarray(offset, offset + length));
}

function u24le(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}
