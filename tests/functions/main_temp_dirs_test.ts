/**
 * `main.ts` clears at start the temporary folders that killed service processes left (issue 13:
 * a SIGKILL during encoding left `svd_job_*` folders nothing cleared), encodes in a folder of its
 * own, and removes that folder on a clean shutdown.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { MainProcess as Service } from "./_main_process.ts";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, upload, waitFor } from "./_service.ts";

Deno.test("main.ts removes the temp folders of killed processes at start, keeps a live one's, and leaves nothing of its own", async () => {
  const root = await Deno.makeTempDir({ prefix: "main_temp_dirs_test_" });
  try {
    // A killed service's folder: its .lock is free. A loose job folder of an earlier version,
    // untouched for two hours. A live owner's folder, locked by this test.
    const killed = join(root, "svd-stream-4242-abcdef");
    await Deno.mkdir(join(killed, "svd_job_123"), { recursive: true });
    await Deno.writeTextFile(join(killed, ".lock"), "");
    await Deno.writeFile(join(killed, "svd_job_123", "clip.mp4.partial.mp4"), new Uint8Array(64));
    const loose = join(root, "svd_job_old");
    await Deno.mkdir(loose);
    const old = new Date(Date.now() - 2 * 3_600_000);
    await Deno.utime(loose, old, old);
    const live = join(root, "svd-stream-1-live");
    await Deno.mkdir(live);
    using lock = await Deno.open(join(live, ".lock"), { create: true, write: true });
    assert.equal(await lock.tryLock(true), true);

    await using service = new Service({ TMPDIR: root, DRAIN_SECONDS: "5" });
    const url = await service.url();
    await waitFor(
      async () => (await fetch(`${url}/readyz`)).status === 200,
      "/readyz 200",
      120_000,
    );
    const cleared = await service.line("temp_cleared");
    assert.deepEqual(new Set(cleared.removed as string[]), new Set([killed, loose]));
    // Ours only: other tools (ONNX Runtime, Deno) may put files of their own in TMPDIR.
    const ours = async () =>
      (await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).filter((n) =>
        n.startsWith("svd")
      ).sort();
    const names = await ours();
    assert.equal(names.length, 2, names.join(", "));
    assert.ok(names.includes("svd-stream-1-live"));
    const own = names.find((n) => n.startsWith(`svd-stream-${service.process.pid}-`));
    assert.ok(own, `its own folder: ${names}`);

    const response = await fetch(`${url}/v1/generations`, {
      method: "POST",
      body: upload(await inputPng(), SMALL),
      headers: { Accept: "text/event-stream" },
    });
    assert.equal((await new SseReader(response).rest()).at(-1)?.event, "done");
    service.process.kill("SIGTERM");
    assert.equal((await service.ended()).status.code, 0);
    assert.deepEqual(await ours(), ["svd-stream-1-live"], "its own folder went with it");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
