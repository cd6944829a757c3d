import assert from "node:assert/strict";
import { join } from "node:path";
import { FfmpegError, FfmpegNotFoundError } from "../../pipeline/video/ffmpeg.ts";
import { probeVideo } from "../../pipeline/video/probe.ts";
import { withScratchDir } from "./_clips.ts";

const permissions: Deno.TestDefinition["permissions"] = {
  read: true,
  write: true,
  run: true,
  env: true,
};

/** Runs ffmpeg with `args` (after the common flags); fails the test if ffmpeg fails. */
async function ffmpeg(...args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("ffmpeg", {
    args: ["-hide_banner", "-loglevel", "error", "-y", ...args],
    stdin: "null",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
}

Deno.test({
  name: "probeVideo() reports a clip's codec, size, counted frames, fractional fps and duration",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "ntsc.webm");
      // 30 frames at 30000/1001 fps, made by ffmpeg alone so the probe is checked on its own
      await ffmpeg(
        ...["-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001", "-frames:v", "30"],
        ...["-c:v", "libvpx-vp9", "-deadline", "realtime", "-pix_fmt", "yuv420p", out],
      );
      const probe = await probeVideo(out);
      assert.equal(probe.format, "matroska,webm");
      assert.equal(probe.codec, "vp9");
      assert.deepEqual([probe.width, probe.height, probe.frames], [64, 48, 30]);
      assert.equal(probe.fps, 30000 / 1001);
      assert.equal(probe.pixelFormat, "yuv420p");
      assert.ok(
        Math.abs(probe.durationSeconds - 30 * 1001 / 30000) < 0.002,
        `${probe.durationSeconds}`,
      );
    });
  },
});

Deno.test({
  name: "probeVideo() throws TypeError for a file with no video stream",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "beep.wav");
      await ffmpeg("-f", "lavfi", "-i", "sine=duration=0.1", out);
      await assert.rejects(probeVideo(out), TypeError, `no video stream in "${out}"`);
    });
  },
});

Deno.test({
  name: "probeVideo() throws FfmpegError naming the file when ffprobe cannot read it",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const missing = join(dir, "missing.mp4");
      const error = await probeVideo(missing).catch((e) => e);
      assert.ok(error instanceof FfmpegError, String(error));
      assert.equal(error.tool, "ffprobe");
      assert.notEqual(error.exitCode, 0);
      assert.match(error.message, /while probing ".*missing\.mp4"/);
      assert.match(error.stderrTail, /No such file or directory/);
    });
  },
});

Deno.test({
  name:
    "probeVideo() throws FfmpegNotFoundError for a missing ffprobe, from options or FFPROBE_PATH",
  permissions,
  async fn() {
    const missing = "/nonexistent/ffprobe";
    await assert.rejects(
      probeVideo("clip.mp4", { ffprobePath: missing }),
      FfmpegNotFoundError,
      `ffprobe not found at "${missing}": install it (apt-get install ffmpeg) or set FFPROBE_PATH`,
    );
    const previous = Deno.env.get("FFPROBE_PATH");
    Deno.env.set("FFPROBE_PATH", missing);
    try {
      await assert.rejects(probeVideo("clip.mp4"), FfmpegNotFoundError, missing);
    } finally {
      if (previous === undefined) Deno.env.delete("FFPROBE_PATH");
      else Deno.env.set("FFPROBE_PATH", previous);
    }
  },
});
