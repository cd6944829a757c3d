/**
 * While the service drains (after SIGTERM) new work is refused with 503 `shutting_down` and a
 * `Retry-After`, so a load balancer or client sends it to another instance; reads go on.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";

/** Middleware that answers 503 while `draining()` is true. */
export function rejectWhileDraining(draining: () => boolean): MiddlewareHandler {
  return async function refuseNewWork(_c, next) {
    if (draining()) throw shuttingDown();
    await next();
  };
}

/** The 503 `shutting_down` that new work gets while the service drains. */
export function shuttingDown(): HttpError {
  return new HttpError(
    503,
    "shutting_down",
    "The service is shutting down; retry on another instance",
    {
      headers: { "Retry-After": "5" },
    },
  );
}
