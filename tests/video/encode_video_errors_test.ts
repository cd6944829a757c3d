import assert from "node:assert/strict";
import { join } from "node:path";
import { GenerationCancelledError } from "../../pipeline/errors.ts";
import { encodeVideo } from "../../pipeline/video/encode_video.ts";
import {
  encodeTimeoutMs,
  FfmpegError,
  FfmpegNotFoundError,
  FfmpegTimeoutError,
} from "../../pipeline/video/ffmpeg.ts";
import { listDir, movingGradient, withScratchDir } from "./_clips.ts";

const permissions: Deno.TestDefinition["permissions"] = {
  read: true,
  write: true,
  run: true,
  env: true,
};

const small = { width: 16, height: 16, fps: 7 } as const;

/**
 * A stand-in ffmpeg that creates its output (the last argument, after `file:`), says why it
 * fails and exits 3: the partial file exists when encodeVideo sees the failure.
 */
async function writeFailingFfmpeg(dir: string): Promise<string> {
  const path = join(dir, "fake-ffmpeg.sh");
  await Deno.writeTextFile(
    path,
    [
      "#!/bin/sh",
      'for last in "$@"; do :; done',
      'echo partial > "${last#file:}"',
      "cat > /dev/null",
      "echo 'Unrecognized option: bogus' >&2",
      "exit 3",
    ].join("\n"),
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test({
  name: "encodeVideo() throws FfmpegError with the exit code and stderr and removes the partial",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const ffmpegPath = await writeFailingFfmpeg(dir);
      for (const format of ["mp4", "webm", "gif", "frames"] as const) {
        const out = join(dir, format === "frames" ? "frames" : `clip.${format}`);
        const error = await encodeVideo(movingGradient(16, 16, 3), {
          ...small,
          format,
          out,
          ffmpegPath,
        }).catch((e) => e);
        assert.ok(error instanceof FfmpegError, `${format}: ${error}`);
        assert.equal(error.exitCode, 3);
        assert.equal(error.stderrTail, "Unrecognized option: bogus");
        assert.match(error.message, /exited with code 3 .*Unrecognized option: bogus/);
        assert.deepEqual(await listDir(dir), ["fake-ffmpeg.sh"], format);
      }
    });
  },
});

Deno.test({
  name: "encodeVideo() throws FfmpegError when ffmpeg exits without reading (/bin/false)",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const error = await encodeVideo(movingGradient(256, 256, 20), {
        width: 256,
        height: 256,
        fps: 7,
        format: "mp4",
        out: join(dir, "clip.mp4"),
        ffmpegPath: "/bin/false",
      }).catch((e) => e);
      assert.ok(error instanceof FfmpegError, String(error));
      assert.equal(error.exitCode, 1);
      assert.deepEqual(await listDir(dir), []);
    });
  },
});

Deno.test({
  name: "encodeVideo() turns a real ffmpeg failure into FfmpegError and leaves no partial",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      // ffmpeg cannot open an output in a directory that does not exist
      const error = await encodeVideo(movingGradient(16, 16, 3), {
        ...small,
        format: "gif",
        out: join(dir, "missing", "clip.gif"),
      }).catch((e) => e);
      assert.ok(error instanceof FfmpegError, String(error));
      assert.notEqual(error.exitCode, 0);
      assert.match(error.stderrTail, /No such file or directory/);
      assert.deepEqual(await listDir(dir), []);
    });
  },
});

Deno.test({
  name:
    "encodeVideo() throws FfmpegNotFoundError for a missing ffmpeg, from options or FFMPEG_PATH",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const missing = join(dir, "no-such-ffmpeg");
      const options = { ...small, format: "mp4", out: join(dir, "clip.mp4") } as const;
      await assert.rejects(
        encodeVideo(movingGradient(16, 16, 2), { ...options, ffmpegPath: missing }),
        (error: unknown) => {
          assert.ok(error instanceof FfmpegNotFoundError);
          assert.equal(
            error.message,
            `ffmpeg not found at "${missing}": install it (apt-get install ffmpeg) or set FFMPEG_PATH`,
          );
          return true;
        },
      );
      const previous = Deno.env.get("FFMPEG_PATH");
      Deno.env.set("FFMPEG_PATH", missing);
      try {
        await assert.rejects(encodeVideo(movingGradient(16, 16, 2), options), FfmpegNotFoundError);
      } finally {
        if (previous === undefined) Deno.env.delete("FFMPEG_PATH");
        else Deno.env.set("FFMPEG_PATH", previous);
      }
      assert.deepEqual(await listDir(dir), []);
    });
  },
});

/** Resolves once `dir` holds an entry that `ready` accepts, polling every 10 ms. */
async function waitFor(dir: string, ready: (names: string[]) => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 3000; tries++) {
    if (await ready(await listDir(dir))) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`nothing appeared in "${dir}"`);
}

for (const format of ["mp4", "frames"] as const) {
  Deno.test({
    name: `encodeVideo() ${format}: aborting mid-encode kills ffmpeg, throws ` +
      "GenerationCancelledError and leaves nothing",
    permissions,
    async fn() {
      await withScratchDir(async (dir) => {
        const width = 1024, height = 576;
        const frame = movingGradient(width, height, 1)[0];
        const frames = Array.from({ length: 400 }, () => frame); // minutes of work for x264
        const controller = new AbortController();
        const out = join(dir, format === "frames" ? "frames" : "clip.mp4");
        const encoding = encodeVideo(frames, {
          width,
          height,
          fps: 7,
          format,
          out,
          signal: controller.signal,
        });
        // Abort once ffmpeg has written something: the partial file, or a first PNG.
        await waitFor(dir, async (names) => {
          if (format === "mp4") return names.includes("clip.mp4.partial.mp4");
          const partial = names.find((name) => name.startsWith(".frames.partial-"));
          return partial !== undefined && (await listDir(join(dir, partial))).length > 0;
        });
        const reason = new DOMException("client went away", "AbortError");
        const abortedAt = performance.now();
        controller.abort(reason);
        const error = await encoding.catch((e) => e);
        assert.ok(error instanceof GenerationCancelledError, String(error));
        assert.equal(error.cause, reason);
        // Killed, not left to finish 400 frames.
        assert.ok(performance.now() - abortedAt < 10_000, "cancellation took too long");
        assert.deepEqual(await listDir(dir), []);
      });
    },
  });
}

Deno.test({
  name: "encodeVideo() with an already aborted signal throws before starting ffmpeg",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const controller = new AbortController();
      controller.abort("shutdown");
      const error = await encodeVideo(movingGradient(16, 16, 2), {
        ...small,
        format: "frames",
        out: join(dir, "frames"),
        signal: controller.signal,
        ffmpegPath: join(dir, "never-run"),
      }).catch((e) => e);
      assert.ok(error instanceof GenerationCancelledError, String(error));
      assert.equal(error.cause, "shutdown");
      assert.deepEqual(await listDir(dir), []);
    });
  },
});

Deno.test({
  name: "encodeVideo() rejects a frame of the wrong size, naming its index",
  permissions: "none",
  async fn() {
    const frames = movingGradient(16, 16, 4);
    frames[2] = new Uint8Array(16 * 15 * 3);
    await assert.rejects(
      encodeVideo(frames, { ...small, format: "mp4", out: "never.mp4" }),
      (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.match(error.message, /frame 2 has 720 bytes, expected 768/);
        return true;
      },
    );
  },
});

Deno.test({
  name: "encodeVideo() rejects no frames and out-of-range sizes, fps, crf and format",
  permissions: "none",
  async fn() {
    const frames = movingGradient(16, 16, 2);
    const base = { ...small, format: "mp4", out: "never.mp4" } as const;
    const cases: [Uint8Array[], Record<string, unknown>, RegExp][] = [
      [[], {}, /at least one frame, got 0/],
      [frames, { fps: 0 }, /fps must be in 1\.\.60, got 0/],
      [frames, { fps: 61 }, /fps must be in 1\.\.60, got 61/],
      [frames, { fps: NaN }, /got NaN/],
      [frames, { width: 1 }, /width must be a whole number >= 2, got 1/],
      [frames, { height: 2.5 }, /height must be a whole number >= 2, got 2.5/],
      [frames, { crf: 52 }, /crf for mp4 must be in 0\.\.51, got 52/],
      [frames, { crf: -1 }, /got -1/],
      [frames, { crf: 64, format: "webm" }, /crf for webm must be in 0\.\.63, got 64/],
      [frames, { format: "avi" }, /format must be one of mp4, webm, gif, frames, got "avi"/],
    ];
    for (const [input, override, message] of cases) {
      // deno-lint-ignore no-explicit-any
      await assert.rejects(encodeVideo(input, { ...base, ...override } as any), (error) => {
        assert.ok(error instanceof RangeError, String(error));
        assert.match(error.message, message);
        return true;
      });
    }
  },
});

/** A stand-in ffmpeg that hangs: before reading anything (`stdin`), or after reading it all. */
async function writeHangingFfmpeg(dir: string, when: "before" | "after"): Promise<string> {
  const path = join(dir, `hanging-ffmpeg-${when}.sh`);
  await Deno.writeTextFile(
    path,
    [
      "#!/bin/sh",
      'for last in "$@"; do :; done',
      'echo partial > "${last#file:}"',
      ...(when === "after" ? ["cat > /dev/null"] : []),
      "echo 'encoder stuck' >&2",
      "exec sleep 600",
    ].join("\n"),
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test({
  name:
    "encodeVideo() kills an ffmpeg that hangs past its timeout, throws FfmpegTimeoutError and leaves no partial",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      for (const when of ["before", "after"] as const) {
        const ffmpegPath = await writeHangingFfmpeg(dir, when);
        for (const format of ["mp4", "frames"] as const) {
          const out = join(dir, format === "frames" ? "frames" : `clip.${format}`);
          const started = performance.now();
          const error = await encodeVideo(movingGradient(256, 256, 20), {
            width: 256,
            height: 256,
            fps: 7,
            format,
            out,
            ffmpegPath,
            timeoutMs: 300,
          }).catch((e) => e);
          assert.ok(error instanceof FfmpegTimeoutError, `${when} ${format}: ${error}`);
          assert.ok(error instanceof FfmpegError, "a kind of FfmpegError");
          assert.equal(error.timeoutMs, 300);
          assert.match(
            error.message,
            /^ffmpeg did not finish encoding 20 frames as .* within 0\.3 s and was killed/,
          );
          assert.ok(performance.now() - started < 60_000, "not the 600 s the fake sleeps");
          assert.deepEqual(
            (await listDir(dir)).filter((name) => !name.endsWith(".sh")),
            [],
            `${when} ${format}: nothing left`,
          );
        }
      }
    });
  },
});

Deno.test({
  name:
    "encodeTimeoutMs() gives a minute plus 2 µs per pixel of every frame (90 s for SVD-XT's clip)",
  permissions: "none",
  fn() {
    assert.equal(encodeTimeoutMs(25, 1024, 576), 89_491);
    assert.equal(encodeTimeoutMs(1, 64, 64), 60_008);
    assert.equal(encodeTimeoutMs(64, 2048, 2048), 596_871);
  },
});
