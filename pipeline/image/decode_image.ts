/**
 * Decodes an uploaded image to 8-bit RGB, after checking its header size against a pixel
 * limit: PNG with {@linkcode decodePng} (ours), JPEG with `jpeg-js` (pure JavaScript), WebP
 * through an `ffmpeg` child process.
 *
 * Colour follows sgm's `Image.open(path).convert("RGB")` (PIL): alpha is DROPPED, not composited
 * (a transparent pixel keeps its stored colour), grey is replicated to R = G = B, palette indices
 * are looked up (a palette's transparency is ignored too), 16-bit samples keep their high byte
 * (see `png_decode.ts` for the one PNG difference). JPEG chroma is upsampled by replication
 * (`jpeg-js`) where libjpeg interpolates: a few levels at colour edges. EXIF orientation is not
 * applied (PIL's `Image.open` does not either; diffusers' `load_image` does).
 *
 * @module
 */

import jpeg from "jpeg-js";
import { type ImageHeader, sniffImage, UnsupportedImageError } from "./image_header.ts";
import { decodePng } from "./png_decode.ts";

/** An image as 8-bit RGB. */
export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  /** `[height, width, 3]` bytes, row-major. */
  readonly rgb: Uint8Array;
}

/** Options of {@linkcode decodeImage}. */
export interface DecodeImageOptions {
  /** Largest width × height accepted, checked on the header before any decoding. */
  readonly maxPixels: number;
  /** Command that decodes WebP; default `"ffmpeg"` (looked up on `PATH`). */
  readonly ffmpeg?: string;
}

/**
 * The header announces more pixels than allowed. `code` is the HTTP-facing reason (413).
 *
 * @example
 * ```ts
 * import { assertImageSize, ImageTooLargeError } from "./decode_image.ts";
 * try {
 *   assertImageSize({ format: "png", width: 100000, height: 100000 }, 4_000_000);
 * } catch (error) {
 *   error instanceof ImageTooLargeError; // true: "Image is 100000×100000 = 10000000000 pixels, …"
 * }
 * ```
 */
export class ImageTooLargeError extends RangeError {
  readonly code = "image_too_large";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageTooLargeError";
  }
}

/**
 * Throws {@linkcode ImageTooLargeError} when `header.width × header.height > maxPixels`.
 * {@linkcode decodeImage} calls it first; the HTTP service may call it on {@linkcode sniffImage}'s
 * result to refuse an upload before queueing it.
 */
export function assertImageSize(header: ImageHeader, maxPixels: number): void {
  if (!(maxPixels > 0)) throw new RangeError(`maxPixels must be positive, got ${maxPixels}`);
  const pixels = header.width * header.height;
  if (pixels > maxPixels) {
    throw new ImageTooLargeError(
      `Image is ${header.width}×${header.height} = ${pixels} pixels, more than the limit of ${maxPixels}`,
    );
  }
}

/**
 * Decodes a PNG, JPEG or WebP file (told by its magic bytes) to RGB.
 *
 * @param bytes the whole file
 * @throws {ImageTooLargeError} when the header's width × height exceeds `maxPixels`
 * @throws {UnsupportedImageError} for another format, a corrupt or truncated file, a JPEG
 *   `jpeg-js` cannot read (e.g. 4 components without an Adobe marker, arithmetic coding), or
 *   WebP without ffmpeg
 *
 * @example
 * ```ts
 * import { decodeImage } from "./decode_image.ts";
 * const bytes = Deno.readFileSync("tests/fixtures/tiny/input.png");
 * const { width, height, rgb } = await decodeImage(bytes, { maxPixels: 4_000_000 });
 * [width, height, rgb.length]; // [128, 64, 24576]
 * ```
 */
export async function decodeImage(
  bytes: Uint8Array,
  options: DecodeImageOptions,
): Promise<DecodedImage> {
  const header = sniffImage(bytes);
  assertImageSize(header, options.maxPixels);
  const { width, height } = header;
  let rgb: Uint8Array;
  if (header.format === "png") rgb = decodePng(bytes).rgb;
  else if (header.format === "jpeg") rgb = decodeJpeg(bytes, header);
  else rgb = await decodeWebp(bytes, header, options.ffmpeg ?? "ffmpeg");
  return { width, height, rgb };
}

// ---------------------------------------------------------------------------------------------
// JPEG

function decodeJpeg(bytes: Uint8Array, header: ImageHeader): Uint8Array {
  const pixels = header.width * header.height;
  try {
    const image = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      // PIL refuses truncated JPEGs (LOAD_TRUNCATED_IMAGES is off); so do we
      tolerantDecoding: false,
      maxResolutionInMP: Math.ceil(pixels / 1e6) + 1,
      // coefficients (progressive), component lines and output: ~20 bytes a pixel at most
      maxMemoryUsageInMB: Math.ceil((pixels * 32) / 2 ** 20) + 16,
    });
    if (image.width !== header.width || image.height !== header.height) {
      throw new Error(
        `decoded ${image.width}×${image.height}, header says ${header.width}×${header.height}`,
      );
    }
    return image.data;
  } catch (error) {
    throw new UnsupportedImageError(`Cannot decode JPEG: ${messageOf(error)}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// WebP

/**
 * `ffmpeg -f webp_pipe -i pipe:0 -frames:v 1 -f rawvideo -pix_fmt rgb24 pipe:1`. The output is
 * read against the size the header announced and the process is killed past it, so a header
 * that understates the bitstream's size cannot make ffmpeg stream out a huge frame.
 */
async function decodeWebp(
  bytes: Uint8Array,
  header: ImageHeader,
  ffmpeg: string,
): Promise<Uint8Array> {
  const expected = header.width * header.height * 3;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(ffmpeg, {
      args: [
        ...["-hide_banner", "-loglevel", "error", "-f", "webp_pipe", "-i", "pipe:0"],
        ...["-frames:v", "1", "-sws_flags", "bicubic+accurate_rnd+full_chroma_int"],
        ...["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UnsupportedImageError(
        `WebP input needs ffmpeg, and "${ffmpeg}" was not found; install ffmpeg or send PNG or JPEG`,
        { cause: error },
      );
    }
    throw error;
  }
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(bytes);
      await writer.close();
    } catch {
      // ffmpeg stopped reading (it failed or was killed): its exit status tells the story
    }
  })();
  const stderr = new Response(child.stderr).text();
  const rgb = new Uint8Array(expected);
  let received = 0;
  let overflow = false;
  for await (const chunk of child.stdout) {
    if (received + chunk.length > expected) {
      overflow = true;
      child.kill("SIGKILL");
      break;
    }
    rgb.set(chunk, received);
    received += chunk.length;
  }
  const [status, message] = await Promise.all([child.status, stderr, writing]);
  if (overflow) {
    throw new UnsupportedImageError(
      `Corrupt WebP: ffmpeg decoded more than the ${header.width}×${header.height} pixels the header announces`,
    );
  }
  if (!status.success || received !== expected) {
    const why = message.trim().split("\n").slice(-3).join("; ") || `exit code ${status.code}`;
    throw new UnsupportedImageError(
      `Cannot decode WebP (${header.width}×${header.height}) with ffmpeg: ${
        status.success ? `got ${received} of ${expected} RGB bytes` : why
      }`,
    );
  }
  return rgb;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
