/**
 * How errors reach the wire: the one table ({@linkcode ERROR_TABLE}) from an error to its HTTP
 * status, stable `code`, message and the request field at fault. Every HTTP path answers through
 * it (the app's `onError` and `notFound`, the worker-only app's), and so does every job's `error`
 * event ({@linkcode jobError}). Clients always get `{"error": {"code", "message", "field"?,
 * "allowed"?}}`, never a stack trace or an error's internals.
 *
 * | error | status | code |
 * |---|---|---|
 * | {@linkcode HttpError} (thrown by routes and middleware: 400, 401, 404, 408, 409, 413, 415, 416, 422, 503) | its own | its own |
 * | `ParameterError` (a field out of range or unknown) | 422 | `invalid_parameter`, `unknown_field` |
 * | `CorruptImageError` (truncated, bad CRC or zlib data, inconsistent; a subclass of the next, so first) | 422 | `corrupt_image` |
 * | `UnsupportedImageError` (not PNG/JPEG/WebP, or a variant not decoded: lossless JPEG, animated WebP, …) | 415 | `unsupported_media_type` |
 * | `ImageTooLargeError` (header pixels) | 413 | `image_too_large` |
 * | `ImageWorkerError` (the image worker crashed, timed out or was closed) | 503 + `Retry-After` | `image_check_unavailable` |
 * | `QueueFullError` | 429 + `Retry-After` | `queue_full` |
 * | `StoreUnavailableError` | 503 + `Retry-After` | `store_unavailable` |
 * | `InferenceWorkerError` | 503 | `inference_worker_crashed`, `inference_unavailable` |
 * | `DeadlineExceededError` (a job past its `timeout_seconds`; job `error` events only) | 504 | `deadline_exceeded` |
 * | `JobLimitError` (over `MAX_JOB_COST` or `MAX_JOB_MEMORY_GB`) | 422 | `job_too_large` |
 * | `FfmpegTimeoutError` (the encoder ran past its time) | 500 | `encoding_timed_out` |
 * | `FfmpegError`, `FfmpegNotFoundError` | 500 | `encoding_failed` (details hidden, logged) |
 * | Hono's `HTTPException` | its own | `not_found`, `http_<status>` |
 * | an `api` process without a usable published model (`model_unavailable_app.ts`) | 503 + `Retry-After` | `model_unavailable` |
 * | anything else | 500 | `internal_error` (message hidden, logged) |
 *
 * @module
 */

import type { NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  CorruptImageError,
  ImageTooLargeError,
  ImageWorkerError,
  UnsupportedImageError,
} from "../pipeline/image/mod.ts";
import { ParameterError } from "../pipeline/request/mod.ts";
import { InferenceWorkerError } from "../pipeline/runtime/mod.ts";
import { DEADLINE_EXCEEDED, DeadlineExceededError } from "./jobs/deadlines.ts";
import { JobLimitError } from "../pipeline/service/job_limits.ts";
import { FfmpegError, FfmpegNotFoundError, FfmpegTimeoutError } from "../pipeline/video/mod.ts";
import { QueueFullError, StoreUnavailableError } from "./jobs/job_queue.ts";

/** An error as the wire shows it. */
export interface WireError {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly message: string;
  /** The request field at fault (snake_case), when there is one. */
  readonly field?: string;
  /** Allowed values of `field` in words (`1..200`), when known. */
  readonly allowed?: string;
  /** Extra response headers (`Retry-After`, `WWW-Authenticate`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Body of every error response. */
export interface ErrorBody {
  readonly error: Pick<WireError, "code" | "message" | "field" | "allowed">;
}

/** Options of {@linkcode HttpError}. */
export interface HttpErrorOptions extends ErrorOptions {
  readonly field?: string;
  readonly allowed?: string;
  readonly headers?: Record<string, string>;
}

/**
 * An error with its HTTP status and a stable machine-readable `code`, for what only HTTP knows
 * (a token missing, a body too large, an unknown id); the table renders it.
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
    return bodyOf(this);
  }

  /** The response: JSON body, status and headers. */
  override getResponse(): Response {
    return Response.json(this.body(), { status: this.status, headers: this.headers });
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E> = abstract new (...args: any[]) => E;
type Row<E = never> = readonly [ErrorClass<E>, (error: E) => WireError];

/** One row: errors of `type` become `describe(error)`. */
function row<E>(type: ErrorClass<E>, describe: (error: E) => WireError): Row<unknown> {
  return [type, describe] as unknown as Row<unknown>;
}

/** The table, first match wins (`HttpError` before Hono's `HTTPException`, its base). */
export const ERROR_TABLE: readonly Row<unknown>[] = [
  row(HttpError, (e) => ({
    status: e.status as ContentfulStatusCode,
    code: e.code,
    message: e.message,
    field: e.field,
    allowed: e.allowed,
    headers: e.headers,
  })),
  row(ParameterError, (e) => ({
    status: 422,
    code: e.code,
    message: e.message,
    field: e.field,
    allowed: e.allowed,
  })),
  // CorruptImageError extends UnsupportedImageError: it comes first.
  row(CorruptImageError, (e) => ({
    status: 422,
    code: e.code,
    message: e.message,
    field: "image",
  })),
  row(UnsupportedImageError, (e) => ({
    status: 415,
    code: e.code,
    message: e.message,
    field: "image",
  })),
  row(
    ImageTooLargeError,
    (e) => ({ status: 413, code: e.code, message: e.message, field: "image" }),
  ),
  row(ImageWorkerError, (e) => ({
    status: 503,
    code: "image_check_unavailable",
    message: e.reason === "timedOut"
      ? "The image took too long to check; retry, or send a smaller image"
      : "The image could not be checked just now; retry",
    headers: { "Retry-After": "1" },
  })),
  row(QueueFullError, (e) => ({
    status: 429,
    code: "queue_full",
    message: e.message,
    headers: { "Retry-After": String(Math.max(1, Math.ceil(e.retryAfterSeconds))) },
  })),
  row(StoreUnavailableError, (e) => ({
    status: 503,
    code: "store_unavailable",
    message: e.message,
    headers: { "Retry-After": "5" },
  })),
  row(InferenceWorkerError, (e) =>
    e.reason === "crashed"
      ? {
        status: 503,
        code: "inference_worker_crashed",
        message:
          "The inference worker crashed during this generation; the next one starts a fresh worker",
      }
      : {
        status: 503,
        code: "inference_unavailable",
        message: "The inference worker is not available; retry later",
      }),
  row(DeadlineExceededError, (e) => ({ status: 504, code: DEADLINE_EXCEEDED, message: e.message })),
  row(JobLimitError, (e) => ({
    status: 422,
    code: e.code,
    message: e.message,
    allowed: `${e.limit} = ${e.allowed}`,
  })),
  row(FfmpegTimeoutError, () => ({
    status: 500,
    code: "encoding_timed_out",
    message: "The video encoder did not finish in the time allowed for this clip and was stopped",
  })),
  row(FfmpegError, () => ENCODING_FAILED),
  row(FfmpegNotFoundError, () => ENCODING_FAILED),
  row(HTTPException, (e) => ({
    status: e.status as ContentfulStatusCode,
    code: e.status === 404 ? "not_found" : `http_${e.status}`,
    message: e.message || (e.status === 404 ? "Not found" : `HTTP ${e.status}`),
  })),
];

const ENCODING_FAILED: WireError = {
  status: 500,
  code: "encoding_failed",
  message: "The video could not be encoded",
};

/** What the table says of `error`; anything it does not know is a 500 whose message is hidden. */
export function describeError(error: unknown, during: "request" | "job" = "request"): WireError {
  for (const [type, describe] of ERROR_TABLE) if (error instanceof type) return describe(error);
  return {
    status: 500,
    code: "internal_error",
    message: during === "job" ? "The generation failed unexpectedly" : "Internal server error",
  };
}

/** `error` as an {@linkcode HttpError} (itself when it is one). */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const wire = describeError(error);
  return new HttpError(wire.status, wire.code, wire.message, {
    field: wire.field,
    allowed: wire.allowed,
    headers: wire.headers ? { ...wire.headers } : undefined,
    cause: error,
  });
}

/** The response for `error`: JSON body, status and headers from the table. */
export function errorResponse(error: unknown): Response {
  return toHttpError(error).getResponse();
}

/** The `error` event (and record) of a failed job: a stable code and a message, no internals. */
export function jobError(error: unknown): { code: string; message: string } {
  const { code, message } = describeError(error, "job");
  return { code, message };
}

/** A `notFound` handler: 404 `not_found` naming the method and path (`hint` appended). */
export function routeNotFound(hint = ""): NotFoundHandler {
  return (c) =>
    errorResponse(new HttpError(404, "not_found", `No route ${c.req.method} ${c.req.path}${hint}`));
}

function bodyOf(wire: ErrorBody["error"]): ErrorBody {
  return {
    error: {
      code: wire.code,
      message: wire.message,
      ...(wire.field === undefined ? {} : { field: wire.field }),
      ...(wire.allowed === undefined ? {} : { allowed: wire.allowed }),
    },
  };
}
