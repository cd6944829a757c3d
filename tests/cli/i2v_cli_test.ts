/**
 * `deno task i2v` as users run it: on the fixture model with the fixture's noise it reproduces
 * sgm's final latent and frames; on the demo model it writes clips ffprobe reads with the
 * requested frame count and rate; an interrupted run leaves no output.
 */

import assert from "node:assert/strict";
import { decodePng } from "../../pipeline/image/png_decode.ts";
import { SafetensorsFile } from "../../pipeline/safetensors/reader.ts";
import { float32Entry, writeSafetensors } from "../../pipeline/safetensors/writer.ts";
import { probeVideo } from "../../pipeline/video/probe.ts";
import { readIntegers } from "../_fixture_integers.ts";
import { assertClose, fixturePath, readFixture } from "../_fixtures.ts";
import { runTask } from "../_run_task.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("deno task i2v on the converted fixture model with --noise reproduces sgm's latent and frames", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const converted = await runTask("convert", [
      "--config",
      `${ROOT}configs/tiny.yaml`,
      "--checkpoint",
      fixturePath("weights.safetensors"),
      "--out",
      `${dir}/model`,
    ]);
    assert.equal(converted.code, 0, converted.stderr);
    const s = await readFixture("sampling.safetensors", ["noise", "final_latent"]);
    const c = await readFixture("conditioning.safetensors", ["input.cond_aug_noise"]);
    await writeSafetensors(`${dir}/noise.safetensors`, [
      float32Entry("noise", s.noise),
      float32Entry("cond_aug_noise", c["input.cond_aug_noise"]),
    ]);
    const result = await runTask("i2v", [
      "--model",
      `${dir}/model`,
      "--image",
      fixturePath("input.png"),
      "--noise",
      `${dir}/noise.safetensors`,
      "--save-latents",
      `${dir}/latents.safetensors`,
      "--no-watermark", // sgm's fixture frames stop before its watermark
      "--format",
      "frames",
      "--out",
      `${dir}/frames`,
    ]);
    assert.equal(result.code, 0, result.stderr);

    using latents = await SafetensorsFile.open(`${dir}/latents.safetensors`);
    assertClose(await latents.readFloat32("final_latent"), s.final_latent, 2e-3, "final_latent");

    const expected = await readIntegers("sampling.safetensors", "frames_uint8"); // [T, H, W, 3]
    const files = [...Deno.readDirSync(`${dir}/frames`)].map((e) => e.name).sort();
    assert.deepEqual(files, ["frame_000.png", "frame_001.png", "frame_002.png", "frame_003.png"]);
    let different = 0;
    for (const [t, name] of files.entries()) {
      const png = decodePng(await Deno.readFile(`${dir}/frames/${name}`));
      assert.deepEqual([png.width, png.height], [128, 64]);
      const reference = decodePng(await Deno.readFile(fixturePath(`expected_frames/${name}`)));
      for (let i = 0; i < png.rgb.length; i++) {
        const d = Math.abs(png.rgb[i] - expected[t * png.rgb.length + i]);
        assert.ok(d <= 1, `${name} value ${i} differs by ${d}`);
        if (d) different++;
        assert.equal(reference.rgb[i], expected[t * png.rgb.length + i]); // the PNGs are the tensor
      }
    }
    assert.ok(
      different <= expected.length / 100,
      `${different} of ${expected.length} values differ`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task i2v on the demo model writes mp4, webm and gif with the requested frames and rate", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [format, frames, fps] of [["mp4", 6, 8], ["webm", 5, 10], ["gif", 4, 5]] as const) {
      await t.step(`${format}: ${frames} frames at ${fps} fps`, async () => {
        const out = `${dir}/clip.${format}`;
        const result = await runTask("i2v", [
          "--image",
          fixturePath("input.png"),
          "--out",
          out,
          "--num-frames",
          String(frames),
          "--fps",
          String(fps),
          "--steps",
          "2",
        ]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stderr, /random, so the video is coloured noise/);
        const probe = await probeVideo(out);
        assert.equal(probe.frames, frames);
        assert.equal(probe.fps, fps);
        assert.deepEqual([probe.width, probe.height], [128, 64]);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task i2v refuses out-of-range parameters with the allowed range, exit code 2", async () => {
  const result = await runTask("i2v", [
    "--image",
    fixturePath("input.png"),
    "--out",
    "/tmp/never.mp4",
    "--steps",
    "0",
  ]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /steps = 0 is out of range: allowed 1\.\.200/);
  const guider = await runTask("i2v", [
    "--image",
    fixturePath("input.png"),
    "--out",
    "/tmp/never.mp4",
    "--guider",
    "cubic",
  ]);
  assert.equal(guider.code, 2);
  assert.match(
    guider.stderr,
    /guider = "cubic" is not an allowed value: allowed linear \| triangle/,
  );
  // crf follows the format, as over HTTP: refused for gif, not ignored
  const gif = await runTask("i2v", [
    "--image",
    fixturePath("input.png"),
    "--out",
    "/tmp/never.gif",
    "--crf",
    "20",
  ]);
  assert.equal(gif.code, 2);
  assert.match(gif.stderr, /^error: crf = 20 does not apply to gif: allowed only with format mp4/m);
});

Deno.test("deno task i2v checks everything typed before it reads the model: flags, files, output, ffmpeg", async () => {
  // An empty --model folder: reading it would fail with another message, so each refusal below
  // comes before the model is read (let alone loaded).
  const dir = await Deno.makeTempDir();
  try {
    const image = fixturePath("input.png");
    const base = ["--model", dir, "--image", image, "--out", `${dir}/clip.mp4`];
    const cases: [string[], number, RegExp, Record<string, string>?][] = [
      [[...base, "--crf", "99"], 2, /^error: crf = 99 is out of range: allowed 0\.\.51 for mp4$/m],
      [[...base, "--max-pixels", "lots"], 2, /^error: --max-pixels must be a whole number/m],
      [[...base, "--provider", "tpu"], 2, /^error: --provider must be cpu, cuda, webgpu/m],
      [[...base, "--format", "avi"], 2, /format = "avi" is not an allowed value: .*frames$/m],
      [[...base, "--format", "frames", "--crf", "20"], 2, /crf = "20" does not apply to frames/],
      [
        ["--model", dir, "--image", "nope.png", "--out", "x.mp4"],
        2,
        /^error: --image: no such file: nope\.png$/m,
      ],
      [
        ["--model", dir, "--image", image, "--out", "/no/such/x.mp4"],
        2,
        /^error: --out: no such folder: \/no\/such$/m,
      ],
      [
        ["--model", `${dir}/none`, "--image", image, "--out", `${dir}/x.mp4`],
        2,
        /^error: --model: no such folder/m,
      ],
      [[...base, "--noise", `${dir}/none.safetensors`], 2, /^error: --noise: no such file/m],
      [
        ["--model", dir, "--image", image, "--out", dir, "--format", "mp4"],
        2,
        /^error: --out: .* is a folder/m,
      ],
      [[...base], 1, /^error: ffmpeg not found at "\/no\/ffmpeg"/m, { FFMPEG_PATH: "/no/ffmpeg" }],
    ];
    for (const [args, code, message, env] of cases) {
      const result = await runTask("i2v", args, env);
      assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(" "));
      assert.doesNotMatch(result.stderr, /model\.json|demo model/, "the model was not read");
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an i2v run interrupted with SIGINT mid-way leaves no output file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "-q",
        "i2v",
        "--image",
        fixturePath("input.png"),
        "--out",
        `${dir}/clip.mp4`,
        "--steps",
        "200",
        "--width",
        "512",
        "--height",
        "256",
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Wait for the first progress line, then interrupt as Ctrl-C would.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!/step σ=/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGINT");
    while (!(await reader.read()).done) { /* drain */ }
    const status = await child.status;
    assert.notEqual(status.code, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
