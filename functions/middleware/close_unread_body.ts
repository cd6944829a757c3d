/**
 * Closes the connection of a request whose body was not read: refused before reading (401, 429,
 * 503, 413 on its `Content-Length`), or abandoned part-way (`body_limit.ts`). Without this, Deno
 * answers such a request but keeps its connection open for the rest of the body, and a client
 * that stalls mid-upload holds a connection for good (300 stalled uploads were held for 75 s and
 * never closed).
 *
 * How: the body's reader is taken before the response is returned and cancelled one macrotask
 * later, once Deno has the response; Deno then sends the response and closes the connection
 * (`tests/functions/body_timeout_test.ts` checks this on a real socket). Cancelling before the
 * response, or taking the reader after it, leaves the connection open.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { closeUnreadBody } from "./close_unread_body.ts";
 * const app = new Hono();
 * app.use(closeUnreadBody());
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";

/** Middleware: a request body nothing read is cancelled once its response is out. */
export function closeUnreadBody(): MiddlewareHandler {
  return async function closeUnreadRequestBody(c, next) {
    // Taken now: after the response, Deno refuses to hand out the body.
    const body = c.req.raw.body;
    try {
      await next();
    } finally {
      if (body && !body.locked) cancelAfterResponse(body.getReader());
    }
  };
}

/**
 * Cancels `reader`'s stream one macrotask from now, after the response under way is sent; see the
 * module doc.
 */
export function cancelAfterResponse(reader: ReadableStreamDefaultReader<Uint8Array>): void {
  setTimeout(() => reader.cancel().catch(() => {}), 0);
}
