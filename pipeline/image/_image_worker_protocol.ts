/**
 * Messages between `ImagePool` and `image_worker.ts`, and how errors cross the boundary: by name
 * and message, rebuilt as the same classes on the pool's side so callers can `instanceof` them.
 *
 * @module
 */

import type { ImageFormat } from "./image_header.ts";
import { CorruptImageError, ImageTooLargeError, UnsupportedImageError } from "./image_errors.ts";
import type { PreparedImage, PrepareImageOptions } from "./prepare_image.ts";

/** What {@linkcode ImageWorkerRequest} `validate` returns: the image is whole and this size. */
export interface ImageInfo {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

/** Options that cross to the worker (no signal: cancelling terminates the worker). */
export type WorkerPrepareOptions = Omit<PrepareImageOptions, "signal">;

/** Pool → worker. `bytes` is the pool's own copy, transferred. */
export type ImageWorkerRequest =
  | {
    readonly type: "prepare";
    readonly id: number;
    readonly bytes: Uint8Array;
    readonly options: WorkerPrepareOptions;
  }
  | {
    readonly type: "validate";
    readonly id: number;
    readonly bytes: Uint8Array;
    readonly options: { readonly maxPixels: number; readonly ffmpegPath?: string };
  }
  // test hooks: an uncaught error (a crash), or a loop that never yields (a hang)
  | { readonly type: "crash"; readonly id: number }
  | { readonly type: "hang"; readonly id: number };

/** Worker → pool, with the request's id. */
export type ImageWorkerResponse =
  | { readonly type: "prepared"; readonly id: number; readonly image: PreparedImage }
  | { readonly type: "validated"; readonly id: number; readonly info: ImageInfo }
  | { readonly type: "failed"; readonly id: number; readonly error: SerializedError };

/** An error as it crosses: class name, message, and `code` where it has one. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
}

/** An error → {@linkcode SerializedError}. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}

/**
 * {@linkcode SerializedError} → the class it was (image errors, `RangeError`, `TypeError`);
 * anything else becomes an `Error` whose message names the original class.
 */
export function deserializeError(error: SerializedError): Error {
  switch (error.name) {
    case "CorruptImageError":
      return new CorruptImageError(error.message);
    case "UnsupportedImageError":
      return new UnsupportedImageError(error.message);
    case "ImageTooLargeError":
      return new ImageTooLargeError(error.message);
    case "RangeError":
      return new RangeError(error.message);
    case "TypeError":
      return new TypeError(error.message);
    default:
      return new Error(`Image preparation failed: ${error.name}: ${error.message}`);
  }
}
