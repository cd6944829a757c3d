import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeVideo } from "../../pipeline/video/encode_video.ts";
import { probeVideo } from "../../pipeline/video/probe.ts";
import { decodeToRgb, listDir, movingGradient, topLevelBoxes, withScratchDir } from "./_clips.ts";

const permissions: Deno.TestDefinition["permissions"] = {
  read: true,
  write: true,
  run: true,
  env: true,
};

/** Mean absolute difference of two byte arrays of equal length. */
function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

Deno.test({
  name: "encodeVideo() writes an H.264 yuv420p mp4 with every frame at exactly the fps asked",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "clip.mp4");
      const frames = movingGradient(128, 72, 14);
      const written = await encodeVideo(frames, {
        width: 128,
        height: 72,
        fps: 7,
        format: "mp4",
        out,
      });
      assert.deepEqual({ ...written, bytes: undefined }, {
        path: out,
        bytes: undefined,
        format: "mp4",
        frames: 14,
        fps: 7,
      });
      assert.equal(written.bytes, (await Deno.stat(out)).size);
      const probe = await probeVideo(out);
      assert.equal(probe.codec, "h264");
      assert.equal(probe.pixelFormat, "yuv420p");
      assert.deepEqual([probe.width, probe.height], [128, 72]);
      assert.equal(probe.frames, 14);
      assert.equal(probe.fps, 7);
      assert.equal(probe.durationSeconds, 2);
      assert.deepEqual(await listDir(dir), ["clip.mp4"]); // no partial left beside it
    });
  },
});

Deno.test({
  name: "encodeVideo() mp4 puts moov before mdat (+faststart)",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "clip.mp4");
      await encodeVideo(movingGradient(128, 72, 14), {
        width: 128,
        height: 72,
        fps: 7,
        format: "mp4",
        out,
      });
      const boxes = topLevelBoxes(await Deno.readFile(out));
      assert.equal(boxes[0], "ftyp");
      assert.ok(boxes.includes("moov") && boxes.includes("mdat"), `boxes: ${boxes}`);
      assert.ok(boxes.indexOf("moov") < boxes.indexOf("mdat"), `boxes: ${boxes}`);
    });
  },
});

Deno.test({
  name: "encodeVideo() pads odd mp4 sizes with one black column and row, keeping the pixels",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "odd.mp4");
      const frames = movingGradient(127, 71, 14);
      await encodeVideo(frames, { width: 127, height: 71, fps: 7, format: "mp4", out });
      const probe = await probeVideo(out);
      assert.deepEqual([probe.width, probe.height, probe.frames, probe.fps], [128, 72, 14, 7]);
      assert.equal(probe.pixelFormat, "yuv420p");

      const decoded = await decodeToRgb(out); // [14, 72, 128, 3]
      const cropped = new Uint8Array(14 * 71 * 127 * 3); // [14, 71, 127, 3]
      let rightColumn = 0;
      for (let t = 0; t < 14; t++) {
        for (let y = 0; y < 71; y++) {
          const row = ((t * 72 + y) * 128) * 3;
          cropped.set(decoded.subarray(row, row + 127 * 3), ((t * 71 + y) * 127) * 3);
          rightColumn += decoded[row + 127 * 3 + 1]; // green of the padding column
        }
      }
      // CRF 18 and 4:2:0 chroma cost a few levels; a BT.601/709 mix-up costs far more.
      const error = meanAbsDiff(cropped, Uint8Array.from(frames.flatMap((f) => [...f])));
      assert.ok(error < 3, `mean abs error ${error}`);
      assert.ok(rightColumn / (14 * 71) < 24, "padding column should be (near) black");
    });
  },
});

Deno.test({
  name: "encodeVideo() writes a VP9 yuv420p webm with every frame at exactly the fps asked",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "clip.webm");
      const written = await encodeVideo(movingGradient(128, 72, 14), {
        width: 128,
        height: 72,
        fps: 7,
        format: "webm",
        out,
        crf: 30,
      });
      assert.equal(written.frames, 14);
      const probe = await probeVideo(out);
      assert.equal(probe.codec, "vp9");
      assert.match(probe.format, /webm/);
      assert.equal(probe.pixelFormat, "yuv420p");
      assert.deepEqual([probe.width, probe.height, probe.frames, probe.fps], [128, 72, 14, 7]);
      assert.equal(probe.durationSeconds, 2);
      assert.deepEqual(await listDir(dir), ["clip.webm"]);
    });
  },
});

Deno.test({
  name: "encodeVideo() writes a looping palette gif at the fps asked, within GIF's 1 cs rounding",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "clip.gif");
      await encodeVideo(movingGradient(128, 72, 14), {
        width: 128,
        height: 72,
        fps: 7,
        format: "gif",
        out,
      });
      const probe = await probeVideo(out);
      assert.equal(probe.codec, "gif");
      assert.deepEqual([probe.width, probe.height, probe.frames], [128, 72, 14]);
      // Delays are whole centiseconds (14 or 15 cs at 7 fps): allow 1 cs per frame.
      assert.ok(Math.abs(probe.fps - 7) <= 7 * 0.08, `fps ${probe.fps}`);
      assert.ok(Math.abs(probe.durationSeconds - 2) <= 14 * 0.01, `${probe.durationSeconds} s`);
      // NETSCAPE2.0 application extension with loop count 0 = forever.
      const bytes = await Deno.readFile(out);
      const at = new TextDecoder("latin1").decode(bytes).indexOf("NETSCAPE2.0");
      assert.ok(at > 0, "no NETSCAPE2.0 loop extension");
      assert.deepEqual([...bytes.subarray(at + 11, at + 15)], [3, 1, 0, 0]);
      assert.deepEqual(await listDir(dir), ["clip.gif"]);
    });
  },
});

Deno.test({
  name: "encodeVideo() frames writes numbered PNGs that decode to exactly the input pixels",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "frames");
      const frames = movingGradient(127, 71, 14);
      const written = await encodeVideo(frames, {
        width: 127,
        height: 71,
        fps: 7,
        format: "frames",
        out: `${out}/`,
      });
      assert.equal(written.path, out);
      assert.equal(written.frames, 14);
      const names = await listDir(out);
      assert.deepEqual(names, frames.map((_, i) => `frame_${String(i).padStart(3, "0")}.png`));
      let bytes = 0;
      for (const name of names) bytes += (await Deno.stat(join(out, name))).size;
      assert.equal(written.bytes, bytes);
      assert.deepEqual(await listDir(dir), ["frames"]); // the temporary directory was renamed

      const decoded = await decodeToRgb(join(out, "frame_%03d.png"), ["-start_number", "0"]);
      assert.deepEqual(decoded, Uint8Array.from(frames.flatMap((f) => [...f])));
    });
  },
});

Deno.test({
  name: "encodeVideo() frames refuses a non-empty destination and a path with an extension",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const frames = movingGradient(4, 4, 2);
      const options = { width: 4, height: 4, fps: 7, format: "frames" } as const;
      await Deno.writeTextFile(join(dir, "keep.txt"), "mine");
      await assert.rejects(
        encodeVideo(frames, { ...options, out: dir }),
        Deno.errors.AlreadyExists,
      );
      await assert.rejects(
        encodeVideo(frames, { ...options, out: join(dir, "frames.mp4") }),
        /has a file extension/,
      );
      assert.deepEqual(await listDir(dir), ["keep.txt"]);
    });
  },
});

Deno.test({
  name: "encodeVideo() replaces an existing mp4 only once the new one is complete",
  permissions,
  async fn() {
    await withScratchDir(async (dir) => {
      const out = join(dir, "clip.mp4");
      await Deno.writeTextFile(out, "old");
      const options = { width: 16, height: 16, fps: 7, format: "mp4", out } as const;
      await encodeVideo(movingGradient(16, 16, 3), options);
      assert.equal((await probeVideo(out)).frames, 3);
      assert.deepEqual(await listDir(dir), ["clip.mp4"]);
    });
  },
});
