/**
 * Watermark benchmark: what sgm's invisible watermark costs and what survives our encoders.
 *
 * For each test clip (25 frames; see tests/watermark/_content.ts): the embed and read time per
 * frame (wall and CPU), the longest the event loop waits while the service's `watermarkFrames`
 * marks the clip, PSNR of the marked frames against the unmarked ones, and the bits read back from PNG
 * frames (lossless), from our default mp4 (x264 CRF 18) and webm (VP9 CRF 24), and from mp4 at
 * CRF 23 and 28 for context — per frame (mean and lowest of 48) and with all frames pooled. The
 * unmarked clip's mp4 is read too, to show what "not found" looks like.
 *
 * Usage: deno task bench watermark [--frames 25]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { decodePng } from "../../pipeline/image/png_decode.ts";
import { encodeVideo, readVideoFrames, type VideoFormat } from "../../pipeline/video/mod.ts";
import process from "node:process";
import {
  embedWatermark,
  WatermarkDetector,
  watermarkFrames,
} from "../../pipeline/watermark/mod.ts";
import { fixtureClip, panningClip, psnr } from "../watermark/_content.ts";

/** Runs the benchmark. */
export async function watermarkBench(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { frames: { type: "string", default: "25" } } });
  const count = Number(values.frames);
  const clips: [string, number, number, () => Promise<Uint8Array[]> | Uint8Array[]][] = [
    ["landscape 1024×576", 1024, 576, () => panningClip(1024, 576, count)],
    ["fixture upscaled 1024×576", 1024, 576, () => fixtureClip(1024, 576, count)],
    [
      "landscape 128×64 (demo size)",
      128,
      64,
      () => panningClip(128, 64, count, { panPerFrame: 1 }),
    ],
    ["fixture 128×64 (demo size)", 128, 64, () => fixtureClip(128, 64, count)],
  ];
  const dir = await Deno.makeTempDir({ prefix: "svd_watermark_bench_" });
  try {
    for (const [name, width, height, make] of clips) {
      const clean = await make();
      const marked = clean.map((frame) => frame.slice());
      const cpuBefore = process.cpuUsage();
      const embedMs = marked.map((frame) => timed(() => embedWatermark(frame, width, height)));
      const cpu = process.cpuUsage(cpuBefore);
      const readMs = marked.map((frame) =>
        timed(() => new WatermarkDetector().add(frame, width, height))
      );
      const stall = await longestStall(() =>
        watermarkFrames(clean.map((frame) => frame.slice()), width, height)
      );
      const psnrs = marked.map((frame, t) => psnr(clean[t], frame));
      console.log(`${name}, ${count} frames:`);
      console.log(
        `  embed ${median(embedMs).toFixed(2)} ms/frame wall (median), ` +
          `${((cpu.user + cpu.system) / 1000 / count).toFixed(2)} ms/frame CPU; read ` +
          `${median(readMs).toFixed(2)} ms/frame; watermarkFrames: ${
            stall.totalMs.toFixed(0)
          } ms ` +
          `for the clip, longest event-loop stall ${stall.longestMs.toFixed(1)} ms`,
      );
      console.log(
        `  PSNR marked vs unmarked ${mean(psnrs).toFixed(2)} dB (lowest ` +
          `${Math.min(...psnrs).toFixed(2)})`,
      );
      const runs: [string, VideoFormat, Uint8Array[], number?][] = [
        ["png frames", "frames", marked],
        ["mp4 default (CRF 18)", "mp4", marked],
        ["webm default (CRF 24)", "webm", marked],
        ["mp4 CRF 23", "mp4", marked, 23],
        ["mp4 CRF 28", "mp4", marked, 28],
        ["unmarked, mp4 default", "mp4", clean],
      ];
      for (const [label, format, frames, crf] of runs) {
        const out = `${dir}/${format === "frames" ? "frames" : `clip.${format}`}`;
        await Deno.remove(out, { recursive: true }).catch(() => {});
        const encoded = await encodeVideo(frames, { width, height, fps: 7, format, out, crf });
        const detector = new WatermarkDetector();
        if (format === "frames") {
          for (const entry of [...Deno.readDirSync(out)].map((e) => e.name).sort()) {
            const png = decodePng(await Deno.readFile(`${out}/${entry}`));
            detector.add(png.rgb, png.width, png.height);
          }
        } else {
          const clip = await readVideoFrames(out);
          for await (const frame of clip.frames) detector.add(frame, clip.width, clip.height);
        }
        const result = detector.result();
        const matched = result.frames.map((frame) => frame.matched);
        console.log(
          `  ${label.padEnd(22)} ${(encoded.bytes / 1024).toFixed(0).padStart(5)} KB: frames ` +
            `${(mean(matched) / 48 * 100).toFixed(1)} % of bits (lowest ${
              Math.min(...matched)
            }/48, ` +
            `${matched.filter((m) => m >= 36).length}/${matched.length} found); pooled ` +
            `${result.matched}/48 ${result.found ? "FOUND" : "not found"}`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `work` while a 1 ms timer measures the longest gap between its ticks. */
async function longestStall(work: () => Promise<unknown>) {
  let last = performance.now();
  let longestMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestMs = Math.max(longestMs, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await work();
  const totalMs = performance.now() - started;
  clearInterval(timer);
  return { totalMs, longestMs: Math.max(longestMs, performance.now() - last) };
}

function timed(run: () => unknown): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
