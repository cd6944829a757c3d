/**
 * Closes the connection of a request whose body was not read to its end: refused before reading
 * (401, 429, 503, 413 on its `Content-Length`), or abandoned part-way (`body_limit.ts`: cut off,
 * timed out). A client that stalls mid-upload must hold nothing once it has its answer (300
 * stalled uploads were once held for 75 s and never closed).
 *
 * - On the service's server (`http_server.ts`: `node:http` through Hono's Node adapter), the
 *   adapter does it: once the response is sent it drains what the client still sends for 0.5 s,
 *   then closes the socket. Nothing is done here (cancelling the body could close the socket
 *   before the response is written).
 * - On `Deno.serve` (tests, or an embedding), the body's reader is taken before the response is
 *   returned and cancelled one macrotask later, once Deno has the response; Deno then sends it
 *   and closes the connection. That works only while no read of the body is pending: Deno 2.9
 *   cannot close a connection whose body read waits for bytes that never come, which is why the
 *   service runs on `node:http`.
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

import type { Context, MiddlewareHandler } from "hono";

/** Middleware: a request body nothing read is closed once its response is out. */
export function closeUnreadBody(): MiddlewareHandler {
  return async function closeUnreadRequestBody(c, next) {
    // Taken now: after the response, Deno refuses to hand out the body.
    const body = c.req.raw.body;
    try {
      await next();
    } finally {
      if (body && !body.locked && !servedByNodeAdapter(c)) {
        cancelAfterResponse(body.getReader());
      }
    }
  };
}

/** True when the request came through Hono's Node adapter (it closes unread bodies itself). */
export function servedByNodeAdapter(c: Context): boolean {
  const env = c.env as { outgoing?: unknown } | undefined;
  return typeof env === "object" && env !== null && env.outgoing !== undefined;
}

/**
 * Cancels `reader`'s stream one macrotask from now, after the response under way is handed to
 * `Deno.serve`; see the module doc.
 */
export function cancelAfterResponse(reader: ReadableStreamDefaultReader<Uint8Array>): void {
  setTimeout(() => reader.cancel().catch(() => {}), 0);
}
