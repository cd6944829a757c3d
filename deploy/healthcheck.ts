/**
 * The container's HEALTHCHECK: exits 0 when `GET http://127.0.0.1:$PORT/healthz` answers 2xx within
 * 5 s, else 1. Deno is the only HTTP client the image is sure to have.
 *
 * Run: deno run --no-config --allow-net=127.0.0.1 --allow-env=PORT deploy/healthcheck.ts
 *
 * @module
 */

const port = Deno.env.get("PORT") || "8080";
try {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(5000),
  });
  await response.body?.cancel();
  Deno.exit(response.ok ? 0 : 1);
} catch {
  Deno.exit(1);
}
