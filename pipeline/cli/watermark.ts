/**
 * `deno task watermark FILE`: looks for sgm's invisible watermark in an image, a folder of frames
 * (PNG, JPEG, WebP, read in name order) or a video (anything ffmpeg decodes; `FFMPEG_PATH` and
 * `FFPROBE_PATH` are honoured). Prints each frame's matching bits and sgm's verdict, then the
 * clip's pooled reading.
 *
 * Exit codes, as grep's: 0 the watermark was found, 1 it was not, 2 the question could not be
 * answered (bad arguments, unreadable input, ffmpeg missing).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { decodeImage } from "../image/decode_image.ts";
import { readVideoFrames } from "../video/mod.ts";
import { type FrameDetection, WatermarkDetector } from "../watermark/detect_watermark.ts";
import { runCli, UsageError } from "./run_cli.ts";

const USAGE = `Usage: deno task watermark FILE
  FILE   an image, a folder of frames (png, jpg, webp) or a video (mp4, webm, …)
Prints each frame's bits matching sgm's 48-bit watermark and a verdict for the whole.
Exit code: 0 found, 1 not found, 2 error.`;

const IMAGE_EXTENSIONS = /\.(png|jpe?g|webp)$/i;
const MAX_PIXELS = 100e6;

/** Runs the detector; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h", default: false } },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(`expected one FILE, got ${positionals.length}\n${USAGE}`);
  }
  const [path] = positionals;
  const info = await Deno.stat(path).catch((error) => {
    throw error instanceof Deno.errors.NotFound
      ? new UsageError(`"${path}" does not exist`, { cause: error })
      : error;
  });
  const detector = new WatermarkDetector();
  const report = (frame: FrameDetection, name: string) => console.log(frameLine(frame, name));

  if (info.isDirectory) {
    const names = [...Deno.readDirSync(path)]
      .filter((entry) => entry.isFile && IMAGE_EXTENSIONS.test(entry.name))
      .map((entry) => entry.name)
      .sort();
    if (names.length === 0) throw new UsageError(`"${path}" holds no png, jpg or webp files`);
    console.log(`${path}: ${names.length} frames`);
    for (const name of names) {
      const image = await readImage(`${path}/${name}`);
      report(detector.add(image.rgb, image.width, image.height), name);
    }
  } else if (await isImage(path)) {
    const image = await readImage(path);
    console.log(`${path}: image ${image.width}×${image.height}`);
    report(detector.add(image.rgb, image.width, image.height), "image");
  } else {
    const clip = await readVideoFrames(path);
    console.log(`${path}: video ${clip.width}×${clip.height}`);
    let index = 0;
    for await (const frame of clip.frames) {
      report(detector.add(frame, clip.width, clip.height), `frame ${index++}`);
    }
    if (index === 0) throw new Error(`"${path}" has no frames`);
  }

  const result = detector.result();
  const frames = result.frames;
  const found = frames.filter((frame) => frame.verdict === "very likely").length;
  const mean = frames.reduce((sum, frame) => sum + frame.matched, 0) / frames.length;
  console.log(
    `frames: ${mean.toFixed(1)} of 48 bits match on average (${percent(mean)}), lowest ` +
      `${Math.min(...frames.map((frame) => frame.matched))}; ${found} of ${frames.length} ` +
      `very likely watermarked on their own`,
  );
  console.log(
    `all frames pooled: ${result.matched} of 48 bits (${percent(result.matched)}), ` +
      `${result.verdict} — sgm's watermark ${result.found ? "FOUND" : "NOT FOUND"}`,
  );
  if (frames.some((frame) => frame.tooSmall)) {
    console.log("note: frames under 64×48 pixels cannot carry all 48 bits");
  } else if (frames.some((frame) => frame.width * frame.height < 256 * 256)) {
    console.log("note: imwatermark's own decoder refuses images under 256×256 pixels");
  }
  return result.found ? 0 : 1;
}

function frameLine(frame: FrameDetection, name: string): string {
  const small = frame.tooSmall ? " (too small for 48 bits)" : "";
  return `  ${name}: ${frame.matched}/48 bits (${percent(frame.matched)}) ${frame.verdict}${small}`;
}

function percent(matched: number): string {
  return `${((matched / 48) * 100).toFixed(1)} %`;
}

/** PNG, JPEG or WebP by their magic bytes (anything else goes to ffmpeg as a video). */
async function isImage(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const head = new Uint8Array(12);
  const read = (await file.read(head)) ?? 0;
  const starts = (bytes: number[], at = 0) =>
    read >= at + bytes.length && bytes.every((b, i) => head[at + i] === b);
  const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));
  return starts([0x89, ...ascii("PNG\r\n"), 0x1a, 0x0a]) || starts([0xff, 0xd8, 0xff]) ||
    (starts(ascii("RIFF")) && starts(ascii("WEBP"), 8));
}

async function readImage(path: string) {
  // decodeImage resolves FFMPEG_PATH itself for WebP.
  return await decodeImage(await Deno.readFile(path), { maxPixels: MAX_PIXELS });
}

if (import.meta.main) await runCli(main, { failureCode: 2 });
