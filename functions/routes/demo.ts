/**
 * The demo page: static files in `functions/demo/` (`index.html`, `demo.css`, `demo.js`, formatted
 * and linted with the rest), served as they are. The page reads the request fields, their limits
 * and defaults from `/openapi.json`, so it repeats none of them. Served without a token: it holds
 * no data, and asks for the token itself.
 *
 * Hono's `serveStatic` resolves paths against the working directory; these three files are read
 * next to this module, whatever the working directory, once, on first request.
 *
 * @module
 */

import { createRoute, OpenAPIHono } from "@hono/zod-openapi";

const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/demo/demo.css": { file: "demo.css", type: "text/css; charset=utf-8" },
  "/demo/demo.js": { file: "demo.js", type: "text/javascript; charset=utf-8" },
};

/** The paths of the page and its assets (open without a token). */
export const DEMO_PATHS: readonly string[] = Object.keys(FILES);

/** The page's routes, mounted at `/`. */
export function demoRoutes(): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openAPIRegistry.registerPath(createRoute({
    method: "get",
    path: "/",
    operationId: "getDemoPage",
    summary: "Demo page: upload an image, watch the previews, play the clip",
    security: [],
    responses: {
      200: {
        description: "HTML page driving the API",
        content: { "text/html": { schema: { type: "string" } } },
      },
    },
  }));
  const texts = new Map<string, Promise<string>>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    app.get(path, async (c) => {
      if (!texts.has(file)) {
        texts.set(file, Deno.readTextFile(new URL(`../demo/${file}`, import.meta.url)));
      }
      return c.body(await texts.get(file)!, 200, {
        "Content-Type": type,
        "Cache-Control": "no-cache",
      });
    });
  }
  return app;
}
