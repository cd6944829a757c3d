/**
 * A job decodes, sizes and tensorises its image in the image pool, off the main thread (a 16 Mpx
 * upload once stalled every request of the process for 0.5–6.6 s): `runVideoJob` hands the image
 * to `options.images.prepare` with the request's size, policy, pixel limit and the job's signal,
 * and generates from what comes back.
 */

import assert from "node:assert/strict";
import { ensureDemoModel } from "../../pipeline/cli/demo_model.ts";
import { modelConstants } from "../../pipeline/generate.ts";
import { ImagePool } from "../../pipeline/image/image_pool.ts";
import type { PrepareImageOptions } from "../../pipeline/image/prepare_image.ts";
import { parseRequest } from "../../pipeline/request/mod.ts";
import { readModelDirectory } from "../../pipeline/runtime/mod.ts";
import { runVideoJob } from "../../pipeline/service/video_job.ts";

Deno.test({
  name:
    "runVideoJob prepares the image in the image pool with the request's size and the job's signal",
  permissions: { read: true, write: true, env: true, run: true },
  async fn() {
    const { manifest } = await readModelDirectory(await ensureDemoModel(), { graphs: [] });
    const pool = new ImagePool({ workers: 1 });
    const calls: PrepareImageOptions[] = [];
    const sizes: string[] = [];
    const images = {
      async prepare(bytes: Uint8Array, options: PrepareImageOptions) {
        calls.push(options);
        const prepared = await pool.prepare(bytes, options);
        sizes.push(`${prepared.width}×${prepared.height}`);
        return prepared;
      },
    };
    const seen: number[][] = [];
    const networks = {
      run: (_graph: string, feeds: Record<string, { dims: readonly number[] }>) => {
        seen.push([...Object.values(feeds)[0].dims]);
        return Promise.reject(new Error("no networks in this test"));
      },
    };
    const request = parseRequest(
      { width: "256", height: "128", size: "contain", num_frames: "4", steps: "2" },
      { surface: "http", model: manifest.name, sampling: manifest.config.sampling },
    );
    const signal = new AbortController().signal;
    try {
      await assert.rejects(
        runVideoJob(
          Deno.readFileSync(new URL("../fixtures/tiny/input.png", import.meta.url)),
          request,
          {
            images,
            networks,
            model: modelConstants(manifest.config),
            maxPixels: 16e6,
            signal,
          },
        ),
        /no networks in this test/,
      );
    } finally {
      await pool.close();
    }
    assert.equal(calls.length, 1);
    assert.deepEqual(
      { ...calls[0], signal: undefined },
      { width: 256, height: 128, policy: "contain", maxPixels: 16e6, signal: undefined },
    );
    assert.equal(calls[0].signal, signal, "the job's signal, so a cancel stops the decode");
    assert.deepEqual(sizes, ["256×128"]); // the 128×64 fixture, contained in 256×128
    assert.ok(seen.length >= 1, "generation started from the pool's tensor");
  },
});
