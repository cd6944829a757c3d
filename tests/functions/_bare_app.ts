/**
 * The app as `main.ts` builds it, on a model's name and defaults but with nothing behind it (an
 * empty in-memory queue, no worker): for tests of what the app serves by itself, the demo page
 * and `/openapi.json`.
 *
 * @module
 */

import type { Hono } from "hono";
import { createApp } from "../../functions/app.ts";
import { MemoryJobQueue } from "../../functions/jobs/memory_job_queue.ts";
import { Metrics } from "../../functions/metrics.ts";
import type { UploadModel } from "../../functions/multipart.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";

/** The app, its queue and image pool; dispose it to close them. */
export interface BareApp extends AsyncDisposable {
  readonly app: Hono;
}

/** Builds the app for `model`. */
export function bareApp(model: UploadModel): BareApp {
  const queue = new MemoryJobQueue({ capacity: 1, retentionMs: 1000, retryAfterSeconds: () => 1 });
  const imagePool = new ImagePool({ workers: 1 });
  const app = createApp({
    queue,
    model,
    metrics: new Metrics(),
    provider: "cpu",
    inferenceReady: () => true,
    maxUploadBytes: 1 << 20,
    maxPixels: 16e6,
    imagePool,
    heartbeatMs: 1000,
  });
  return {
    app,
    async [Symbol.asyncDispose]() {
      await queue.close();
      await imagePool.close();
    },
  };
}
