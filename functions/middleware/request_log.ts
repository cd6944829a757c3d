/**
 * One log line per request, when its response is ready: method, route (the matched pattern, e.g.
 * `/v1/generations/:id/events`), path, status, duration (to the response headers: an event stream
 * goes on after its line), the generation id when the request names or creates one, and for a
 * refused request the error code and message it got. 5xx are `error` lines (but 503
 * `shutting_down`, expected while draining); the probes (`/healthz`, `/readyz`, `/metrics`) are
 * `debug` lines, `/readyz`'s 503 too (not ready is its answer while the model loads; a failed
 * load has its own `error` line); everything else is `info`.
 *
 * @example
 * ```ts
 * import { requestLog } from "./request_log.ts";
 * app.use(requestLog(getLog("http")));
 * ```
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { toHttpError } from "../errors.ts";
import { errorMessage, type Log } from "../logging.ts";

/** Paths polled by load balancers and Prometheus: logged at `debug`. */
const PROBE_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

/** Middleware that logs every request once; see the module doc. */
export function requestLog(log: Log): MiddlewareHandler {
  return async function logRequest(c, next) {
    const started = performance.now();
    await next();
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    const { method, path } = c.req;
    const status = c.res.status;
    // Middleware is registered for every method ("ALL"); the last route with a method is the
    // handler that answered. None: no route matched (404).
    const route = matchedRoutes(c).findLast((r) => r.method !== "ALL")?.path;
    const generation = c.res.headers.get("X-Generation-Id") ??
      (route?.includes(":id") ? c.req.param("id") : undefined);
    // A refused request says why (the error the app's onError answered with).
    const error = status >= 400 && c.error !== undefined ? c.error : undefined;
    const code = error ? toHttpError(error).code : undefined;
    const fields = {
      event: "request",
      method,
      route: route ?? null,
      path,
      status,
      duration_ms: durationMs,
      ...(generation ? { generation } : {}),
      ...(code ? { code } : {}),
      ...(error ? { error: errorMessage(error) } : {}),
    };
    const message = `${method} ${path} ${status} ${durationMs} ms${
      generation && !path.includes(generation) ? ` ${generation}` : ""
    }${error ? `: ${errorMessage(error)}` : ""}`;
    if (code === "shutting_down") log.info(message, fields); // expected while draining
    else if (path === "/readyz") log.debug(message, fields); // a 503 is its answer, not a fault
    else if (status >= 500) log.error(message, fields);
    else if (PROBE_PATHS.has(path)) log.debug(message, fields);
    else log.info(message, fields);
  };
}
