/**
 * The service's HTTP server: the app on `node:http`, through Hono's Node adapter
 * (`@hono/node-server`), not `Deno.serve`.
 *
 * Why: a request body must be able to time out. Deno 2.9's own HTTP/1.1 server cannot close a
 * connection while a read of its request body is pending, and a stalled upload always has one:
 * it answers the 408 but keeps the socket open for as long as the client stays silent (checked
 * on a raw socket: cancelling the body, erroring the response, throwing, none closes it). On
 * `node:http` the adapter drains what a refused or timed-out upload still sends for 0.5 s and
 * then closes its socket, so a stalled client holds nothing once it has its answer.
 *
 * The adapter is used without replacing the global `Request` and `Response` (its default): the
 * app runs on Deno's own.
 *
 * @example
 * ```ts
 * import { serveHttp } from "./http_server.ts";
 * const server = await serveHttp(app.fetch, { hostname: "127.0.0.1", port: 0 });
 * server.addr.port; // the port it listens on
 * await server.shutdown();
 * ```
 *
 * @module
 */

import { getRequestListener } from "@hono/node-server";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** A listening server. */
export interface HttpServer {
  /** Where it listens. */
  readonly addr: { readonly hostname: string; readonly port: number };
  /**
   * Stops accepting connections, closes idle ones, and resolves once the open ones have ended
   * (open event streams end when their jobs' streams do); `server.closeAllConnections()` after
   * the caller's own deadline is {@linkcode HttpServer.closeAll}.
   */
  shutdown(): Promise<void>;
  /** Closes every connection now. */
  closeAll(): void;
}

/** What the app is handed per request. */
export type Fetch = (request: Request, env: unknown) => Response | Promise<Response>;

/** Serves `fetch` on `hostname:port` (port 0: any free port). */
export function serveHttp(
  fetch: Fetch,
  options: { readonly hostname: string; readonly port: number },
): Promise<HttpServer> {
  const listener = getRequestListener(fetch, { overrideGlobalObjects: false });
  const server = createServer(listener);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      const address = server.address() as AddressInfo;
      resolve({
        addr: { hostname: address.address, port: address.port },
        shutdown: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
          }),
        closeAll: () => server.closeAllConnections(),
      });
    });
  });
}
