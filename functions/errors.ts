/**
 * The HTTP function's one exception ({@linkcode HttpError}) and the one table that maps domain
 * errors to HTTP status ({@linkcode toHttpError}). Clients always get
 * `{"error": {"code", "message", "field"?}}`, never a stack trace.
 *
 * | error | status | code |
 * |---|---|---|
 * | `ParameterError` (a field out of range, unknown, missing) | 422 | `invalid_parameter`, … |
 * | malformed multipart / request | 400 | `malformed_request` |
 * | not `multipart/form-data` | 415 | `unsupported_content_type` |
 * | `UnsupportedImageError` (magic bytes) | 415 | `unsupported_media_type` |
 * | `ImageTooLargeError` (header pixels) | 413 | `image_too_large` |
 * | body over `MAX_UPLOAD_BYTES` | 413 | `body_too_large` |
 * | missing or wrong bearer token | 401 | `unauthorized` |
 * | unknown generation id | 404 | `not_found` |
 * | `QueueFullError` | 429 + `Retry-After` | `queue_full` |
 * | `StoreUnavailableError` | 503 | `store_unavailable` |
 * | shutting down | 503 | `shutting_down` |
 * | an `api` process without a usable published model (`model_unavailable_app.ts`) | 503 + `Retry-After` | `model_unavailable` |
 * | anything else | 500 | `internal_error` (message hidden, logged) |
 *
 * @module
 */

import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ParameterError } from "../pipeline/config/mod.ts";
import { ImageTooLargeError, UnsupportedImageError } from "../pipeline/image/mod.ts";
import { QueueFullError, StoreUnavailableError } from "./jobs/job_queue.ts";

/** Body of every error response. */
export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    /** The request field at fault (snake_case), when there is one. */
    readonly field?: string;
    /** Allowed values of `field` in words (`1..200`), when known. */
    readonly allowed?: string;
  };
}

/** Options of {@linkcode HttpError}. */
export interface HttpErrorOptions extends ErrorOptions {
  readonly field?: string;
  readonly allowed?: string;
  /** Extra response headers (`Retry-After`, `WWW-Authenticate`). */
  readonly headers?: Record<string, string>;
}

/**
 * An error with its HTTP status and a stable machine-readable `code`; the app's `onError` turns
 * it into the JSON error body.
 *
 * @example
 * ```ts
 * import { HttpError } from "./errors.ts";
 * throw new HttpError(404, "not_found", 'No generation "abc"');
 * ```
 */
export class HttpError extends HTTPException {
  readonly code: string;
  readonly field?: string;
  readonly allowed?: string;
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    options: HttpErrorOptions = {},
  ) {
    super(status, { message, cause: options.cause });
    this.name = "HttpError";
    this.code = code;
    this.field = options.field;
    this.allowed = options.allowed;
    this.headers = options.headers ?? {};
  }

  /** The JSON body clients receive. */
  body(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field === undefined ? {} : { field: this.field }),
        ...(this.allowed === undefined ? {} : { allowed: this.allowed }),
      },
    };
  }

  /** The response: JSON body, status and headers. */
  override getResponse(): Response {
    return Response.json(this.body(), { status: this.status, headers: this.headers });
  }
}

/**
 * The table: a domain error becomes its {@linkcode HttpError}; an `HttpError` stays itself; a
 * Hono `HTTPException` keeps its status; anything else is a 500 whose message is not shown.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof ParameterError) {
    return new HttpError(422, "invalid_parameter", error.message, {
      field: error.field,
      allowed: error.allowed,
      cause: error,
    });
  }
  if (error instanceof UnsupportedImageError) {
    return new HttpError(415, error.code, error.message, { field: "image", cause: error });
  }
  if (error instanceof ImageTooLargeError) {
    return new HttpError(413, error.code, error.message, { field: "image", cause: error });
  }
  if (error instanceof QueueFullError) {
    return new HttpError(429, "queue_full", error.message, {
      headers: { "Retry-After": String(Math.max(1, Math.ceil(error.retryAfterSeconds))) },
      cause: error,
    });
  }
  if (error instanceof StoreUnavailableError) {
    return new HttpError(503, "store_unavailable", error.message, {
      headers: { "Retry-After": "5" },
      cause: error,
    });
  }
  if (error instanceof HTTPException) {
    const code = error.status === 404 ? "not_found" : `http_${error.status}`;
    return new HttpError(error.status, code, error.message || statusText(error.status), {
      cause: error,
    });
  }
  return new HttpError(500, "internal_error", "Internal server error", { cause: error });
}

function statusText(status: number): string {
  return status === 404 ? "Not found" : `HTTP ${status}`;
}
