/**
 * A hung ffmpeg does not hold the only slot: the service on the demo model with `FFMPEG_PATH`
 * pointing at an encoder that never finishes. The job ends with `error` `encoding_timed_out`
 * once its (here shortened) time is up, and the next job
 * runs with the real ffmpeg.
 */

import assert from "node:assert/strict";
import { SseReader } from "./_sse_client.ts";
import { inputPng, SMALL, testService, upload } from "./_service.ts";

Deno.test("a hung ffmpeg (FFMPEG_PATH) is killed at the encode timeout; the job fails with encoding_timed_out and the slot is free", async () => {
  const dir = await Deno.makeTempDir({ prefix: "encode_timeout_test_" });
  const fake = `${dir}/ffmpeg`;
  await Deno.writeTextFile(fake, "#!/bin/sh\ncat > /dev/null\necho 'stuck' >&2\nexec sleep 600\n");
  await Deno.chmod(fake, 0o755);
  const before = Deno.env.get("FFMPEG_PATH");
  try {
    await using service = await testService({ encodeTimeoutMs: 500 });
    const png = await inputPng();
    Deno.env.set("FFMPEG_PATH", fake);
    const hung = await service.app.request("/v1/generations", {
      method: "POST",
      body: upload(png, SMALL),
      headers: { Accept: "text/event-stream" },
    });
    const events = await new SseReader(hung).rest();
    const last = events.at(-1)!;
    assert.equal(events.at(-2)?.event, "encoding");
    assert.equal(last.event, "error", JSON.stringify(last));
    assert.equal(last.data.code, "encoding_timed_out");
    const failed = service.logs.find((l) => l.event === "job_failed");
    assert.match(
      String(failed?.error),
      /ffmpeg did not finish encoding 4 frames as mp4 .* within 0\.5 s and was killed: stuck/,
    );

    if (before === undefined) Deno.env.delete("FFMPEG_PATH");
    else Deno.env.set("FFMPEG_PATH", before);
    const next = await service.app.request("/v1/generations", {
      method: "POST",
      body: upload(png, SMALL),
      headers: { Accept: "text/event-stream" },
    });
    assert.equal((await new SseReader(next).rest()).at(-1)?.event, "done");
  } finally {
    if (before === undefined) Deno.env.delete("FFMPEG_PATH");
    else Deno.env.set("FFMPEG_PATH", before);
    await Deno.remove(dir, { recursive: true });
  }
});
