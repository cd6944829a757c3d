/**
 * Upload memory is bounded, through `main.ts` as deployed: concurrent 19.9 MiB uploads add at
 * most twice their bytes to the service's resident memory (measured: 1.2–1.4 times, `deno task
 * bench uploads`), and once their jobs are gone it comes back to where it was. (Before: the body
 * was copied by the body limit, `clone().arrayBuffer()`, `formData()` and `image.arrayBuffer()`,
 * 40–80 MiB per 20 MiB upload; 40 uploads made 1.94 GB.)
 */

import assert from "node:assert/strict";
import { hwmMiB, paddedPng, rssMiB } from "../bench/uploads.ts";
import { MainProcess } from "./_main_process.ts";
import { upload, waitFor } from "./_service.ts";

const UPLOADS = 8;
const MIB = 2 ** 20;

Deno.test({
  name:
    "8 concurrent 19.9 MiB uploads add at most 2 × 8 × 20 MiB to the service's RSS, and it comes back",
  permissions: { run: true, net: ["127.0.0.1"], read: true, env: true },
  async fn() {
    await using service = new MainProcess({
      QUEUE_SIZE: String(UPLOADS + 8),
      MAX_CONCURRENT_UPLOADS: String(UPLOADS),
      MAX_UPLOAD_BYTES: String(21 * MIB),
    });
    const url = await service.url();
    await service.line("ready");
    const pid = service.process.pid;
    const post = async (png: Uint8Array) => {
      const response = await fetch(`${url}/v1/generations`, {
        method: "POST",
        body: upload(png, { steps: "1", num_frames: "2" }),
      });
      const body = await response.json();
      assert.equal(response.status, 202, JSON.stringify(body));
      return body.id as string;
    };
    const cancel = async (id: string) =>
      await (await fetch(`${url}/v1/generations/${id}`, { method: "DELETE" })).body?.cancel();
    // every path warmed (parser, image pool, queue) before the baseline
    await cancel(await post(paddedPng(64 * 1024)));
    const png = paddedPng(Math.round(19.9 * MIB));
    const baseline = rssMiB(pid);
    const ids = await Promise.all(Array.from({ length: UPLOADS }, () => post(png)));
    const added = hwmMiB(pid) - baseline;
    const bound = 2 * UPLOADS * 20;
    assert.ok(added <= bound, `the uploads added ${added.toFixed(0)} MiB, over ${bound} MiB`);
    await Promise.all(ids.map(cancel));
    // the images are garbage once their jobs are gone; collected within a minute of quiet
    await waitFor(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        return rssMiB(pid) <= baseline + 32;
      },
      `RSS back within 32 MiB of the ${baseline.toFixed(0)} MiB baseline`,
      120_000,
    );
  },
});
