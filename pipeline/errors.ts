/**
 * Domain errors that callers catch. Bad arguments throw the built-in `TypeError`/`RangeError`.
 *
 * @module
 */

/**
 * A generation stopped because its `AbortSignal` fired (client gone, job cancelled, shutdown).
 * `cause` holds the signal's `reason`.
 *
 * @example
 * ```ts
 * import { GenerationCancelledError } from "./errors.ts";
 * const error = new GenerationCancelledError("Generation cancelled before step 3 of 25", {
 *   cause: new DOMException("client closed the stream", "AbortError"),
 * });
 * error.name; // "GenerationCancelledError"
 * ```
 */
export class GenerationCancelledError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GenerationCancelledError";
  }
}
