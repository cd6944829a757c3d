/**
 * The three ways an uploaded image is refused, each with a stable `code` for the HTTP error body.
 * Every message names the problem and quotes the value (the byte offset, the marker, the size).
 *
 * | error | means | HTTP | `code` |
 * |---|---|---|---|
 * | {@linkcode CorruptImageError} | a PNG, JPEG or WebP that is damaged: truncated, a bad CRC, bad zlib data, an inconsistent header, empty | 422 | `corrupt_image` |
 * | {@linkcode UnsupportedImageError} | not PNG, JPEG or WebP, or a variant we do not decode (lossless or arithmetic JPEG, animated WebP, 12-bit JPEG, …), or WebP without ffmpeg | 415 | `unsupported_media_type` |
 * | {@linkcode ImageTooLargeError} | the header announces more pixels than allowed | 413 | `image_too_large` |
 *
 * `CorruptImageError` extends `UnsupportedImageError` (both say "these bytes cannot be read"), so
 * a table that maps errors to statuses must test `CorruptImageError` FIRST.
 *
 * @module
 */

/**
 * The bytes are not an image svd-stream can read: an unknown format (GIF, BMP, text, …), or a
 * PNG, JPEG or WebP variant that is not decoded (see `decode_image.ts`). `code` is the
 * HTTP-facing reason (415 Unsupported Media Type).
 *
 * @example
 * ```ts
 * import { sniffImage } from "./image_header.ts";
 * import { UnsupportedImageError } from "./image_errors.ts";
 * try {
 *   sniffImage(new TextEncoder().encode("GIF89a..."));
 * } catch (error) {
 *   error instanceof UnsupportedImageError; // true, message names "GIF"
 * }
 * ```
 */
export class UnsupportedImageError extends SyntaxError {
  /** `unsupported_media_type` here, `corrupt_image` in {@linkcode CorruptImageError}. */
  readonly code: string = "unsupported_media_type";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnsupportedImageError";
  }
}

/**
 * A PNG, JPEG or WebP file that is damaged: truncated, a chunk CRC that does not match, zlib data
 * that does not inflate, markers or chunks out of place, sizes that disagree, or no bytes at all.
 * `code` is the HTTP-facing reason (422 Unprocessable Content). It is an
 * {@linkcode UnsupportedImageError} too, for callers that only ask "can this be read?".
 *
 * @example
 * ```ts
 * import { decodePng } from "./png_decode.ts";
 * import { CorruptImageError } from "./image_errors.ts";
 * import { encodePng } from "./png_encode.ts";
 * const png = encodePng(new Uint8Array(3), 1, 1);
 * png[png.length - 20] ^= 1; // a bit of the IDAT chunk
 * try {
 *   decodePng(png);
 * } catch (error) {
 *   error instanceof CorruptImageError; // true: "Corrupt PNG: CRC mismatch in chunk IDAT at byte 33, …"
 * }
 * ```
 */
export class CorruptImageError extends UnsupportedImageError {
  override readonly code: string = "corrupt_image";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CorruptImageError";
  }
}

/**
 * The header announces more pixels than allowed. `code` is the HTTP-facing reason (413).
 *
 * @example
 * ```ts
 * import { assertImageSize } from "./decode_image.ts";
 * import { ImageTooLargeError } from "./image_errors.ts";
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
