/**
 * Decodes an uploaded image to 8-bit RGB, validating all of it: the header's pixel count
 * against a limit first (before any byte is inflated or decoded), then the whole file: PNG with
 * {@linkcode decodePng} (ours: chunk CRCs, zlib to its end), JPEG with {@linkcode decodeJpeg}
 * (a full marker walk, then `jpeg-js`), WebP with {@linkcode decodeWebp} (the RIFF container,
 * then ffmpeg from `FFMPEG_PATH`). An image that decodes here is whole; one that does not is
 * refused with one of three errors (see `image_errors.ts`):
 *
 * | error | HTTP | `code` | e.g. |
 * |---|---|---|---|
 * | `ImageTooLargeError` | 413 | `image_too_large` | a 10 000 × 10 000 header over `maxPixels` |
 * | `CorruptImageError` | 422 | `corrupt_image` | truncated, bad CRC, bad zlib, empty |
 * | `UnsupportedImageError` | 415 | `unsupported_media_type` | GIF, lossless/arithmetic JPEG, animated WebP |
 *
 * Colour follows sgm's `Image.open(path).convert("RGB")` (PIL): alpha is DROPPED, not composited
 * (a transparent pixel keeps its stored colour), grey is replicated to R = G = B, palette indices
 * are looked up (a palette's transparency is ignored too), 16-bit samples keep their high byte
 * (see `png_decode.ts` for the one PNG difference). JPEG chroma is upsampled by replication
 * (`jpeg-js`) where libjpeg interpolates: a few levels at colour edges. EXIF orientation is not
 * applied (PIL's `Image.open` does not either; diffusers' `load_image` does).
 *
 * Decoding is synchronous CPU work (a 16 Mpx PNG takes about a second): a server runs it through
 * `ImagePool`, off its main thread.
 *
 * @module
 */

import { CorruptImageError, ImageTooLargeError } from "./image_errors.ts";
import { type ImageHeader, sniffImage } from "./image_header.ts";
import { decodeJpeg } from "./jpeg_decode.ts";
import { decodePng } from "./png_decode.ts";
import { decodeWebp } from "./webp_decode.ts";

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
  /** ffmpeg executable for WebP; default `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
  /** Stops a WebP decode (kills ffmpeg); PNG and JPEG decode synchronously. */
  readonly signal?: AbortSignal;
}

/**
 * Throws {@linkcode ImageTooLargeError} when `header.width × header.height > maxPixels`.
 * {@linkcode decodeImage} calls it first; the HTTP service may call it on {@linkcode sniffImage}'s
 * result to refuse an upload before queueing it.
 *
 * @example
 * ```ts
 * import { assertImageSize } from "./decode_image.ts";
 * assertImageSize({ format: "png", width: 4000, height: 4000 }, 16e6); // fine
 * assertImageSize({ format: "png", width: 100000, height: 100000 }, 16e6); // throws ImageTooLargeError
 * ```
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
 * Validates and decodes a PNG, JPEG or WebP file (told by its magic bytes) to RGB.
 *
 * @param bytes the whole file
 * @throws {ImageTooLargeError} when the header's width × height exceeds `maxPixels`
 * @throws {CorruptImageError} for an empty, truncated or damaged file
 * @throws {UnsupportedImageError} for another format, a JPEG process or WebP feature that is
 *   not decoded, or WebP without ffmpeg
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
  const image = header.format === "png"
    ? decodePng(bytes)
    : header.format === "jpeg"
    ? decodeJpeg(bytes)
    : await decodeWebp(bytes, { ffmpegPath: options.ffmpegPath, signal: options.signal });
  if (image.width !== header.width || image.height !== header.height) {
    throw new CorruptImageError(
      `Corrupt ${header.format.toUpperCase()}: the image is ${image.width}×${image.height}, ` +
        `its header says ${header.width}×${header.height}`,
    );
  }
  return { width: image.width, height: image.height, rgb: image.rgb };
}
