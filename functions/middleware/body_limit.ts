/**
 * A request body read under limits of size and time, as it streams (nothing is buffered here):
 *
 * - **size**: a `Content-Length` over `maxBytes` is refused with 413 `body_too_large` before a byte
 *   is read; a body without one (chunked) is counted as it arrives and cut off the moment it
 *   passes the limit.
 * - **time**: a body whose next bytes take longer than `idleMs` to arrive, or that is not all there
 *   `totalMs` after the handler started reading it, is answered 408 `request_timeout`. Only the
 *   time spent waiting for the client counts: while the handler works on what it has (the stream
 *   is pulled, never pushed), no clock runs against the client.
 *
 * A body left unread when the response goes out (refused early, cut off, timed out) has its
 * connection closed after the response (`close_unread_body.ts`): a client that stalls mid-body
 * holds nothing once it has its answer.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bodyLimit } from "./body_limit.ts";
 * const app = new Hono();
 * app.post("/v1/generations", bodyLimit({ maxBytes: 20 * 1024 * 1024, idleMs: 15_000, totalMs: 120_000 }), handler);
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";
import { cancelAfterResponse, servedByNodeAdapter } from "./close_unread_body.ts";

/** Limits of {@linkcode bodyLimit}. */
export interface BodyLimits {
  /** Largest body, bytes (`MAX_UPLOAD_BYTES`). */
  readonly maxBytes: number;
  /** Longest wait for the body's next bytes, milliseconds (`BODY_IDLE_SECONDS`). */
  readonly idleMs: number;
  /** Longest time to receive the whole body, milliseconds (`BODY_TIMEOUT_SECONDS`). */
  readonly totalMs: number;
}

/** Middleware that reads the request body under `limits`; see the module doc. */
export function bodyLimit(limits: BodyLimits): MiddlewareHandler {
  return async function limitRequestBody(c, next) {
    const source = c.req.raw.body;
    if (!source) return await next();
    const declared = c.req.header("Content-Length");
    if (declared !== undefined && Number(declared) > limits.maxBytes) {
      throw tooLarge(declared, limits.maxBytes);
    }
    const body = new LimitedBody(source, limits);
    // The same request (headers, client signal) with the limited stream as its body; built from
    // its parts, as a server adapter's request may be Request-like rather than a Request.
    const raw = c.req.raw;
    c.req.raw = new Request(raw.url, {
      method: raw.method,
      headers: raw.headers,
      signal: raw.signal,
      body: body.stream,
      duplex: "half",
    } as RequestInit);
    try {
      await next();
    } finally {
      // On the Node adapter, the adapter closes an unfinished body's connection itself.
      if (!servedByNodeAdapter(c)) body.settle();
    }
  };
}

/** The source body behind a stream that enforces the limits. */
class LimitedBody {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #limits: BodyLimits;
  #received = 0;
  #startedAt?: number;
  /** The source ended, failed or was cancelled by the reader of `stream`: nothing to close. */
  #finished = false;

  constructor(source: ReadableStream<Uint8Array>, limits: BodyLimits) {
    this.#reader = source.getReader();
    this.#limits = limits;
    this.stream = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => {
        this.#finished = true;
        return this.#reader.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Called once the response is decided (on `Deno.serve`): a source not read to its end is
   * cancelled just after the response is sent, which closes the connection.
   */
  settle(): void {
    if (!this.#finished) cancelAfterResponse(this.#reader);
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    this.#startedAt ??= performance.now();
    const { maxBytes, idleMs, totalMs } = this.#limits;
    const left = totalMs - (performance.now() - this.#startedAt);
    const idle = idleMs <= left;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, idle ? idleMs : left));
    });
    const read = this.#reader.read();
    read.catch(() => {}); // settled later (by the cancel) when the timeout wins
    let result: ReadableStreamReadResult<Uint8Array> | "timeout";
    try {
      result = await Promise.race([read, timeout]);
    } catch (cause) {
      this.#finished = true;
      controller.error(
        new HttpError(
          400,
          "malformed_request",
          `The request body could not be read after ${this.#received} bytes: ${
            cause instanceof Error ? cause.message : String(cause)
          }`,
          { cause },
        ),
      );
      return;
    } finally {
      clearTimeout(timer);
    }
    if (result === "timeout") {
      controller.error(
        new HttpError(
          408,
          "request_timeout",
          idle
            ? `No byte of the request body arrived for ${
              seconds(idleMs)
            } (BODY_IDLE_SECONDS) after ${this.#received} bytes; the connection is closed`
            : `The request body was not all there after ${
              seconds(totalMs)
            } (BODY_TIMEOUT_SECONDS): ${this.#received} bytes arrived; the connection is closed`,
          { headers: { Connection: "close" } },
        ),
      );
      return;
    }
    if (result.done) {
      this.#finished = true;
      controller.close();
      return;
    }
    this.#received += result.value.length;
    if (this.#received > maxBytes) {
      controller.error(tooLarge(`more than ${maxBytes}`, maxBytes));
      return;
    }
    controller.enqueue(result.value);
  }
}

function tooLarge(size: string, maxBytes: number): HttpError {
  return new HttpError(
    413,
    "body_too_large",
    `The request body is ${size} bytes; the limit is ${maxBytes} (MAX_UPLOAD_BYTES)`,
    { headers: { Connection: "close" } },
  );
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
