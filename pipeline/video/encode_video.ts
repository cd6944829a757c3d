/**
 * Writes generated frames as a clip (mp4, webm, gif) or a folder of PNGs, through ffmpeg.
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { encodeTimeoutMs, resolveFfmpegPath, runFfmpeg } from "./ffmpeg.ts";

/** What {@linkcode encodeVideo} can write. */
export type VideoFormat = "mp4" | "webm" | "gif" | "frames";

/** The formats, in the order they are documented. */
export const VIDEO_FORMATS: readonly VideoFormat[] = ["mp4", "webm", "gif", "frames"];

/**
 * Frame rates accepted, in frames per second. SVD is conditioned on 5..30 fps; 60 is the most a
 * player shows, and GIF cannot do better than 50 (2 cs per frame).
 */
export const FPS_RANGE = { min: 1, max: 60 } as const;

/**
 * Default and allowed CRF per codec. Lower is better quality and bigger files.
 *
 * - mp4 (x264): 18, x264's "visually lossless" point. An SVD clip is 14 or 25 frames, so even at
 *   18 it is a few hundred KB at 1024×576; there is no reason to show compression artefacts on
 *   top of the model's own.
 * - webm (VP9): 24 in constant-quality mode (`-b:v 0`). VP9's scale runs to 63; Google's VOD
 *   guidance (31..33 around 720p) targets streaming sizes. On a 25-frame 1024×576 test clip, 24
 *   gave 40.5 dB PSNR at 160 KB against x264 CRF 18's 42.4 dB at 360 KB (31: 39.7 dB, 95 KB).
 *
 * x264 runs `-preset medium`: on that clip it took 0.68 s against 0.41 s for `veryfast`, for a
 * file 23% smaller and 0.8 dB better; next to minutes of sampling, the encode is free.
 */
export const CRF = {
  mp4: { default: 18, min: 0, max: 51 },
  webm: { default: 24, min: 0, max: 63 },
} as const;

/** Options of {@linkcode encodeVideo}. */
export interface EncodeVideoOptions {
  /** Frame width in pixels, >= 2. */
  readonly width: number;
  /** Frame height in pixels, >= 2. */
  readonly height: number;
  /** Frames per second, in {@linkcode FPS_RANGE}; may be fractional (`7.5`). */
  readonly fps: number;
  /** Container and codec; `frames` writes `frame_000.png`, `frame_001.png`, … into a directory. */
  readonly format: VideoFormat;
  /**
   * Destination. A file for mp4/webm/gif (replaced if it exists; the extension is not checked,
   * the format is); a directory for `frames` (a path ending in `/` or without extension, which
   * must not exist or be empty).
   */
  readonly out: string;
  /** Constant-rate factor for mp4 (0..51, default 18) and webm (0..63, default 24); ignored otherwise. */
  readonly crf?: number;
  /** Stops the encode: ffmpeg is killed, nothing is left behind, `GenerationCancelledError` is thrown. */
  readonly signal?: AbortSignal;
  /** ffmpeg executable; defaults to `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
  /**
   * ffmpeg is killed (and `FfmpegTimeoutError` thrown) after this many milliseconds; default
   * scaled to the clip: `encodeTimeoutMs(frames, width, height)`.
   */
  readonly timeoutMs?: number;
}

/** What {@linkcode encodeVideo} wrote. */
export interface EncodedVideo {
  /** The file, or for `frames` the directory (without a trailing slash). */
  readonly path: string;
  /** Size of the file, or for `frames` the sum of the PNG sizes. */
  readonly bytes: number;
  readonly format: VideoFormat;
  /** Number of frames written. */
  readonly frames: number;
  /** The frame rate asked for (see {@linkcode encodeVideo} for GIF's rounding). */
  readonly fps: number;
}

/**
 * Encodes RGB frames with ffmpeg, which reads them from stdin as `rawvideo rgb24` at exactly
 * `fps` (`-framerate` on the input, `-r` on the output, so no frame is dropped or repeated).
 *
 * - **mp4**: H.264 (libx264, `-preset medium`, CRF 18 by default), yuv420p with BT.709 matrix
 *   and tags, `-movflags +faststart` so the index comes first and browsers play while loading.
 *   yuv420p needs even sizes: odd widths or heights get one black column or row on the right or
 *   bottom (`pad=ceil(iw/2)*2:ceil(ih/2)*2`), so 127×71 is stored as 128×72. Padding keeps every
 *   pixel as generated, where scaling would resample the whole frame.
 * - **webm**: VP9 (libvpx-vp9) in constant quality (`-b:v 0 -crf 24`), yuv420p, `-row-mt 1`,
 *   `-deadline good -cpu-used 4` (about 3× faster than the default `-cpu-used 1` for a barely
 *   visible loss). VP9 stores odd sizes as they are.
 * - **gif**: one 256-colour palette for the whole clip (`split`, `palettegen` on a 1/4-scale
 *   copy, `paletteuse` with Bayer dither, in one filtergraph), looping forever. GIF delays are whole centiseconds; ffmpeg rounds each frame's
 *   timestamp, so at 7 fps the delays alternate 14 and 15 cs (100/7 ≈ 14.29) and the clip keeps
 *   7 fps on average. ffprobe then reports `7/1` fps and a duration up to 1 cs per frame off
 *   (2.01 s for 14 frames). Rates above 50 fps play at 50 at best.
 * - **frames**: lossless PNGs `frame_000.png` … (at least 3 digits, more for 1000+ frames),
 *   numbered from 0, decoding to exactly the input pixels.
 *
 * ffmpeg gets a time scaled to the clip (`timeoutMs`): a hung encoder is killed rather than
 * holding its caller for ever.
 *
 * Nothing half-written is ever visible at `out`: ffmpeg writes `<out>.partial.<ext>` (or a hidden
 * temporary directory beside `out` for `frames`), which is renamed on success and removed on any
 * failure or cancellation.
 *
 * @param frames T buffers, each `[H, W, 3]` RGB bytes, row-major (what `toUint8Frames` returns)
 * @throws {RangeError} no frames, a frame of the wrong size (its index is named), sizes, fps or
 *   crf out of range, an unknown format, or a `frames` destination with a file extension
 * @throws {Deno.errors.AlreadyExists} `frames` destination exists and is not an empty directory
 * @throws {FfmpegNotFoundError} ffmpeg cannot be started
 * @throws {FfmpegError} ffmpeg failed; the message carries its exit code and stderr tail
 * @throws {FfmpegTimeoutError} ffmpeg hung past `timeoutMs` and was killed
 * @throws {GenerationCancelledError} `signal` fired; `cause` is its reason
 *
 * @example
 * ```ts
 * import { encodeVideo } from "./encode_video.ts";
 * const frames = Array.from({ length: 14 }, (_, t) => new Uint8Array(64 * 32 * 3).fill(t * 18));
 * const clip = await encodeVideo(frames, {
 *   width: 64, height: 32, fps: 7, format: "mp4", out: "/tmp/fade.mp4",
 * });
 * clip; // { path: "/tmp/fade.mp4", bytes: …, format: "mp4", frames: 14, fps: 7 }
 * ```
 */
export async function encodeVideo(
  frames: readonly Uint8Array[],
  options: EncodeVideoOptions,
): Promise<EncodedVideo> {
  checkOptions(frames, options);
  const { format, fps, signal } = options;
  const ffmpegPath = resolveFfmpegPath(options.ffmpegPath);
  const out = options.out.replace(/(?<=.)\/+$/, "");
  const task = `encoding ${frames.length} frames as ${format} to "${out}"`;
  const timeoutMs = options.timeoutMs ??
    encodeTimeoutMs(frames.length, options.width, options.height);
  const input = [
    ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y"],
    ...["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${options.width}x${options.height}`],
    ...["-framerate", String(fps), "-i", "pipe:0"],
  ];

  if (format === "frames") {
    await checkFramesDestination(out);
    // mkdir rather than makeTempDir: the directory is kept, so it gets the umask's mode, not 0700.
    const partial = join(dirname(out), `.${basename(out)}.partial-${crypto.randomUUID()}`);
    await Deno.mkdir(partial);
    const pattern = `frame_%0${Math.max(3, String(frames.length - 1).length)}d.png`;
    const args = [...input, "-pix_fmt", "rgb24", "-f", "image2", "-start_number", "0"];
    try {
      await runFfmpeg([...args, `file:${join(partial, pattern)}`], {
        path: ffmpegPath,
        input: frames,
        task,
        signal,
        timeoutMs,
      });
      const bytes = await directoryBytes(partial);
      await Deno.rename(partial, out);
      return { path: out, bytes, format, frames: frames.length, fps };
    } catch (error) {
      await Deno.remove(partial, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  const partial = `${out}.partial.${format}`;
  const output = ["-r", String(fps), "-f", format, `file:${partial}`]; // file: even for "a:b.mp4"
  const args = [...input, ...codecArgs(format, options.crf), ...output];
  try {
    await runFfmpeg(args, { path: ffmpegPath, input: frames, task, signal, timeoutMs });
    const { size } = await Deno.stat(partial);
    await Deno.rename(partial, out);
    return { path: out, bytes: size, format, frames: frames.length, fps };
  } catch (error) {
    await Deno.remove(partial).catch(() => {});
    throw error;
  }
}

/** Output options per format; input is rgb24. */
function codecArgs(format: "mp4" | "webm" | "gif", crf: number | undefined): string[] {
  // swscale converts RGB with BT.601 unless told; players assume BT.709 for untagged HD video,
  // so convert with BT.709 and say so in the stream.
  const toYuv = "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p";
  const bt709 = [
    ...["-colorspace", "bt709", "-color_primaries", "bt709"],
    ...["-color_trc", "bt709", "-color_range", "tv"],
  ];
  switch (format) {
    case "mp4":
      return [
        ...["-vf", `pad=ceil(iw/2)*2:ceil(ih/2)*2,${toYuv}`, "-pix_fmt", "yuv420p", ...bt709],
        ...["-c:v", "libx264", "-preset", "medium", "-crf", String(crf ?? CRF.mp4.default)],
        ...["-movflags", "+faststart"],
      ];
    case "webm":
      return [
        ...["-vf", toYuv, "-pix_fmt", "yuv420p", ...bt709],
        ...["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", String(crf ?? CRF.webm.default)],
        ...["-row-mt", "1", "-deadline", "good", "-cpu-used", "4"],
      ];
    case "gif": {
      // One palette for the clip, from every 4th pixel each way: palettegen sorts every distinct
      // colour, which takes 13 s for 25 frames of 1024×576 in full, 3.5 s subsampled, for the
      // same PSNR. Ordered (Bayer) dither stays still from frame to frame, where error diffusion
      // crawls, and makes files half the size of the default sierra2_4a.
      const palette = "split[a][b];[a]scale=ceil(iw/4):ceil(ih/4):flags=neighbor,palettegen[p];" +
        "[b][p]paletteuse=dither=bayer:bayer_scale=5";
      return ["-filter_complex", palette, "-loop", "0"];
    }
  }
}

function checkOptions(frames: readonly Uint8Array[], options: EncodeVideoOptions): void {
  const { width, height, fps, format, crf, out } = options;
  if (!VIDEO_FORMATS.includes(format)) {
    throw new RangeError(
      `encodeVideo format must be one of ${VIDEO_FORMATS.join(", ")}, got "${format}"`,
    );
  }
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(value) || value < 2) {
      throw new RangeError(`encodeVideo ${name} must be a whole number >= 2, got ${value}`);
    }
  }
  if (!Number.isFinite(fps) || fps < FPS_RANGE.min || fps > FPS_RANGE.max) {
    throw new RangeError(
      `encodeVideo fps must be in ${FPS_RANGE.min}..${FPS_RANGE.max}, got ${fps}`,
    );
  }
  if (crf !== undefined && (format === "mp4" || format === "webm")) {
    const { min, max } = CRF[format];
    if (!Number.isInteger(crf) || crf < min || crf > max) {
      throw new RangeError(`encodeVideo crf for ${format} must be in ${min}..${max}, got ${crf}`);
    }
  }
  if (out === "") throw new RangeError(`encodeVideo needs an output path, got ""`);
  if (format === "frames" && !out.endsWith("/") && extname(out) !== "") {
    throw new RangeError(
      `encodeVideo format "frames" writes a directory, but out "${out}" has a file extension`,
    );
  }
  if (frames.length === 0) throw new RangeError("encodeVideo needs at least one frame, got 0");
  const expected = width * height * 3;
  frames.forEach((frame, index) => {
    if (frame.length !== expected) {
      throw new RangeError(
        `encodeVideo frame ${index} has ${frame.length} bytes, expected ${expected} ` +
          `(${height}×${width}×3 RGB)`,
      );
    }
  });
}

/** A `frames` destination may be absent or an empty directory, never something to clobber. */
async function checkFramesDestination(out: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(out);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (info.isDirectory) {
    for await (const _ of Deno.readDir(out)) {
      throw new Deno.errors.AlreadyExists(
        `encodeVideo cannot write frames to "${out}": the directory is not empty`,
      );
    }
    return;
  }
  throw new Deno.errors.AlreadyExists(
    `encodeVideo cannot write frames to "${out}": it exists and is not a directory`,
  );
}

async function directoryBytes(dir: string): Promise<number> {
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    bytes += (await Deno.stat(join(dir, entry.name))).size;
  }
  return bytes;
}
