/**
 * Request bodies over `maxBytes` are refused with 413 `body_too_large` while they are read: a
 * `Content-Length` over the limit is refused before a byte is read, and a body without one
 * (chunked) is counted as it arrives and dropped the moment it passes the limit. The accepted body
 * is handed on in memory.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bodyLimit } from "./body_limit.ts";
 * const app = new Hono();
 * app.post("/v1/generations", bodyLimit(20 * 1024 * 1024), handler);
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";

/** Middleware that limits the request body to `maxBytes`. */
export function bodyLimit(maxBytes: number): MiddlewareHandler {
  const tooLarge = (size: string) =>
    new HttpError(
      413,
      "body_too_large",
      `The request body is ${size} bytes; the limit is ${maxBytes} (MAX_UPLOAD_BYTES)`,
    );
  return async function limitRequestBody(c, next) {
    const body = c.req.raw.body;
    if (!body) return await next();
    const declared = c.req.header("Content-Length");
    if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(declared);
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge(`more than ${maxBytes}`);
        }
        chunks.push(value);
      }
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(400, "malformed_request", "The request body could not be read", {
        cause: error,
      });
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    c.req.raw = new Request(c.req.raw, { body: bytes });
    await next();
  };
}
