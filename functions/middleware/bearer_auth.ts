/**
 * Bearer-token authentication: every request must carry `Authorization: Bearer <token>`, except
 * the open paths (health, readiness, metrics, the demo page). No token configured: everything is
 * open.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { bearerAuth } from "./bearer_auth.ts";
 * const app = new Hono();
 * app.use(bearerAuth({ token: Deno.env.get("API_TOKEN"), open: ["/healthz", "/readyz", "/metrics"] }));
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";

/** Options of {@linkcode bearerAuth}. */
export interface BearerAuthOptions {
  /** The expected token; undefined disables the check. */
  readonly token: string | undefined;
  /** Paths served without a token (exact matches). */
  readonly open: readonly string[];
}

/** Middleware that answers 401 `unauthorized` without the right bearer token. */
export function bearerAuth(options: BearerAuthOptions): MiddlewareHandler {
  const expected = options.token === undefined ? undefined : encoder.encode(options.token);
  const open = new Set(options.open);
  return async function requireBearerToken(c, next) {
    if (expected === undefined || open.has(c.req.path)) return await next();
    const header = c.req.header("Authorization") ?? "";
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match || !sameBytes(encoder.encode(match[1]), expected)) {
      throw new HttpError(
        401,
        "unauthorized",
        match ? "The bearer token is not valid" : "Authorization: Bearer <token> is required",
        { headers: { "WWW-Authenticate": 'Bearer realm="svd-stream"' } },
      );
    }
    await next();
  };
}

const encoder = new TextEncoder();

/** Compares in time independent of where the bytes differ (the length still shows). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}
