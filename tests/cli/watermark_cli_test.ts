/**
 * `deno task watermark` as users run it (exit 0 found, 1 not found, 2 no answer), and the
 * watermark of `deno task i2v` on the demo model, on by default and off with `--no-watermark`.
 */

import assert from "node:assert/strict";
import { encodePng } from "../../pipeline/image/png_encode.ts";
import { encodeVideo } from "../../pipeline/video/encode_video.ts";
import { embedWatermark } from "../../pipeline/watermark/mod.ts";
import { fixturePath } from "../_fixtures.ts";
import { runTask } from "../_run_task.ts";
import { panningClip } from "../watermark/_content.ts";

const [W, H] = [512, 288];

async function withClips(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const clean = panningClip(W, H, 3);
    const marked = clean.map((frame) => frame.slice());
    for (const frame of marked) embedWatermark(frame, W, H);
    await encodeVideo(marked, {
      width: W,
      height: H,
      fps: 7,
      format: "frames",
      out: `${dir}/frames`,
    });
    await encodeVideo(marked, {
      width: W,
      height: H,
      fps: 7,
      format: "mp4",
      out: `${dir}/marked.mp4`,
    });
    await encodeVideo(clean, {
      width: W,
      height: H,
      fps: 7,
      format: "mp4",
      out: `${dir}/clean.mp4`,
    });
    await Deno.writeFile(`${dir}/marked.png`, encodePng(marked[0], W, H));
    await Deno.writeFile(`${dir}/clean.png`, encodePng(clean[0], W, H));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("deno task watermark finds the mark in a folder of frames, a PNG and an mp4 (exit 0)", async () => {
  await withClips(async (dir) => {
    const frames = await runTask("watermark", [`${dir}/frames`]);
    assert.equal(frames.code, 0, frames.stderr);
    assert.match(frames.stdout, /frame_000\.png: 48\/48 bits \(100\.0 %\) very likely/);
    assert.match(
      frames.stdout,
      /all frames pooled: 48 of 48 bits \(100\.0 %\), very likely — sgm's watermark FOUND/,
    );
    const png = await runTask("watermark", [`${dir}/marked.png`]);
    assert.equal(png.code, 0, png.stderr);
    assert.match(png.stdout, /image 512×288\n {2}image: 48\/48 bits/);
    const mp4 = await runTask("watermark", [`${dir}/marked.mp4`]);
    assert.equal(mp4.code, 0, mp4.stderr);
    assert.match(mp4.stdout, /video 512×288/);
    assert.equal(mp4.stdout.match(/frame \d: 48\/48 bits/g)?.length, 3, mp4.stdout);
  });
});

Deno.test("deno task watermark says NOT FOUND for unmarked input (exit 1)", async () => {
  await withClips(async (dir) => {
    for (const file of ["clean.mp4", "clean.png"]) {
      const result = await runTask("watermark", [`${dir}/${file}`]);
      assert.equal(result.code, 1, `${file}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /sgm's watermark NOT FOUND/);
    }
  });
});

Deno.test("deno task watermark exits 2 when it cannot answer, saying why", async () => {
  await withClips(async (dir) => {
    await Deno.mkdir(`${dir}/empty`);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a video");
    const cases: [string[], RegExp, Record<string, string>?][] = [
      [[], /expected one FILE, got 0/],
      [[`${dir}/marked.png`, `${dir}/clean.png`], /expected one FILE, got 2/],
      [[`${dir}/missing.mp4`], /missing\.mp4" does not exist/],
      [[`${dir}/empty`], /holds no png, jpg or webp files/],
      [[`${dir}/notes.txt`], /ffprobe exited with code/],
      [[`${dir}/marked.mp4`], /ffmpeg not found at ".*no-ffmpeg"/, {
        FFMPEG_PATH: `${dir}/no-ffmpeg`,
      }],
    ];
    for (const [args, message, env] of cases) {
      const result = await runTask("watermark", args, env);
      assert.equal(result.code, 2, `${args}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });
});

Deno.test("deno task i2v marks every frame by default and not with --no-watermark", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, flags] of [["marked", []], ["unmarked", ["--no-watermark"]]] as const) {
      const out = `${dir}/${name}`;
      const made = await runTask("i2v", [
        ...["--image", fixturePath("input.png"), "--num-frames", "3", "--steps", "2"],
        ...["--format", "frames", "--out", out, ...flags],
      ]);
      assert.equal(made.code, 0, made.stderr);
      const read = await runTask("watermark", [out]);
      if (name === "marked") {
        assert.equal(read.code, 0, read.stdout);
        assert.equal(read.stdout.match(/48\/48 bits \(100\.0 %\) very likely/g)?.length, 3);
      } else {
        assert.equal(read.code, 1, read.stdout);
        assert.doesNotMatch(read.stdout, /very likely\n/);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
