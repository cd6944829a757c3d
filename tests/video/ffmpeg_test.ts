import assert from "node:assert/strict";
import { join } from "node:path";
import {
  FfmpegError,
  FfmpegNotFoundError,
  resolveFfmpegPath,
  resolveFfprobePath,
  runFfmpeg,
  STDERR_TAIL_BYTES,
} from "../../pipeline/video/ffmpeg.ts";
import { withScratchDir } from "./_clips.ts";

Deno.test({
  name: "resolveFfmpegPath() prefers the explicit path, then FFMPEG_PATH, then ffmpeg from PATH",
  permissions: { env: ["FFMPEG_PATH", "FFPROBE_PATH"] },
  fn() {
    const saved = [Deno.env.get("FFMPEG_PATH"), Deno.env.get("FFPROBE_PATH")];
    try {
      Deno.env.delete("FFMPEG_PATH");
      Deno.env.delete("FFPROBE_PATH");
      assert.equal(resolveFfmpegPath(), "ffmpeg");
      assert.equal(resolveFfprobePath(), "ffprobe");
      Deno.env.set("FFMPEG_PATH", "/opt/ffmpeg/bin/ffmpeg");
      Deno.env.set("FFPROBE_PATH", "");
      assert.equal(resolveFfmpegPath(), "/opt/ffmpeg/bin/ffmpeg");
      assert.equal(resolveFfprobePath(), "ffprobe"); // empty means unset
      assert.equal(resolveFfmpegPath("/usr/bin/ffmpeg"), "/usr/bin/ffmpeg");
    } finally {
      for (const [name, value] of [["FFMPEG_PATH", saved[0]], ["FFPROBE_PATH", saved[1]]]) {
        if (value === undefined) Deno.env.delete(name!);
        else Deno.env.set(name!, value);
      }
    }
  },
});

Deno.test({
  name: "resolveFfmpegPath() falls back to ffmpeg without env permission instead of throwing",
  permissions: { env: false },
  fn() {
    assert.equal(resolveFfmpegPath(), "ffmpeg");
  },
});

Deno.test({
  name: "runFfmpeg() keeps only the last 4 KB of stderr, where ffmpeg says why it failed",
  permissions: { read: true, write: true, run: true },
  async fn() {
    await withScratchDir(async (dir) => {
      const noisy = join(dir, "noisy.sh");
      await Deno.writeTextFile(
        noisy,
        "#!/bin/sh\ncat > /dev/null\nseq 1 5000 >&2\necho 'the actual reason' >&2\nexit 69\n",
      );
      await Deno.chmod(noisy, 0o755);
      const error = await runFfmpeg([], {
        path: noisy,
        input: [new Uint8Array(100_000)],
        task: "testing",
      }).catch((e) => e);
      assert.ok(error instanceof FfmpegError, String(error));
      assert.equal(error.exitCode, 69);
      assert.ok(error.stderrTail.length <= STDERR_TAIL_BYTES);
      assert.ok(error.stderrTail.length > STDERR_TAIL_BYTES - 100);
      assert.ok(error.stderrTail.endsWith("4999\n5000\nthe actual reason"));
      assert.match(error.message, /^ffmpeg exited with code 69 while testing: /);
    });
  },
});

Deno.test({
  name: "runFfmpeg() reports a path that is not executable as FfmpegNotFoundError",
  permissions: { read: true, write: true, run: true },
  async fn() {
    await withScratchDir(async (dir) => {
      const plain = join(dir, "ffmpeg");
      await Deno.writeTextFile(plain, "not a program");
      await Deno.chmod(plain, 0o644);
      const error = await runFfmpeg([], { path: plain, input: [], task: "testing" }).catch((e) =>
        e
      );
      assert.ok(error instanceof FfmpegNotFoundError, String(error));
      assert.equal(error.path, plain);
      assert.match(error.message, /^ffmpeg (is not executable|not found) at "/);
    });
  },
});
