/**
 * Reading a clip's first video stream back with ffprobe: what tests check and the service reports.
 *
 * @module
 */

import { resolveFfprobePath, runFfprobe } from "./ffmpeg.ts";

/** What {@linkcode probeVideo} found in a clip's first video stream. */
export interface VideoProbe {
  /** ffprobe's demuxer name: `mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, `gif`, `png_pipe`, … */
  readonly format: string;
  /** Codec name: `h264`, `vp9`, `gif`, `png`, … */
  readonly codec: string;
  /** Stored width in pixels (even for our mp4s, see `encodeVideo`). */
  readonly width: number;
  /** Stored height in pixels. */
  readonly height: number;
  /** Frames decoded (`-count_frames`), exact rather than the container's claim. */
  readonly frames: number;
  /** Frames per second from `avg_frame_rate` (else `r_frame_rate`), e.g. `7/1` gives 7. */
  readonly fps: number;
  /** Pixel format: `yuv420p` for our mp4 and webm, `bgra` for gif. */
  readonly pixelFormat: string;
  /** Container duration in seconds (stream duration when the container has none); NaN if neither. */
  readonly durationSeconds: number;
}

/**
 * Probes a video file with ffprobe (`FFPROBE_PATH`, else `ffprobe` from PATH). It decodes the
 * whole stream to count frames, which is cheap for SVD clips of 14 or 25 frames.
 *
 * @throws {FfmpegNotFoundError} ffprobe cannot be started
 * @throws {FfmpegError} ffprobe fails, e.g. the file is missing or is not a media file
 * @throws {TypeError} the file has no video stream
 * @throws {SyntaxError} ffprobe's output is not the JSON expected
 *
 * @example
 * ```ts
 * import { encodeVideo } from "./encode_video.ts";
 * import { probeVideo } from "./probe.ts";
 * const frames = Array.from({ length: 25 }, () => new Uint8Array(64 * 36 * 3));
 * await encodeVideo(frames, { width: 64, height: 36, fps: 7, format: "mp4", out: "/tmp/black.mp4" });
 * await probeVideo("/tmp/black.mp4");
 * // { format: "mov,mp4,m4a,3gp,3g2,mj2", codec: "h264", width: 64, height: 36, frames: 25,
 * //   fps: 7, pixelFormat: "yuv420p", durationSeconds: 3.571429 }
 * ```
 * ```
 */
export async function probeVideo(
  path: string,
  options: { readonly ffprobePath?: string } = {},
): Promise<VideoProbe> {
  const json = await runFfprobe(
    [
      ...["-hide_banner", "-loglevel", "error", "-count_frames", "-select_streams", "v:0"],
      ...["-show_entries", `stream=${STREAM_FIELDS}:format=format_name,duration`],
      ...["-of", "json", `file:${path}`],
    ],
    { path: resolveFfprobePath(options.ffprobePath), task: `probing "${path}"` },
  );
  let parsed: FfprobeOutput;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new SyntaxError(`ffprobe printed invalid JSON for "${path}": ${json.slice(0, 200)}`, {
      cause: error,
    });
  }
  const stream = parsed.streams?.[0];
  if (stream === undefined) throw new TypeError(`probeVideo found no video stream in "${path}"`);
  const format = parsed.format ?? {};
  return {
    format: format.format_name ?? "",
    codec: stream.codec_name ?? "",
    width: Number(stream.width),
    height: Number(stream.height),
    frames: Number(stream.nb_read_frames),
    fps: parseRate(stream.avg_frame_rate) ?? parseRate(stream.r_frame_rate) ?? NaN,
    pixelFormat: stream.pix_fmt ?? "",
    durationSeconds: Number(format.duration ?? stream.duration ?? NaN),
  };
}

const STREAM_FIELDS = [
  "codec_name",
  "width",
  "height",
  "pix_fmt",
  "nb_read_frames",
  "avg_frame_rate",
  "r_frame_rate",
  "duration",
].join(",");

/** The part of `ffprobe -of json` that is asked for; ffprobe prints numbers-as-text for some. */
interface FfprobeOutput {
  streams?: {
    codec_name?: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    nb_read_frames?: string;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    duration?: string;
  }[];
  format?: { format_name?: string; duration?: string };
}

/** `"30000/1001"` → 29.97…; `"0/0"` (unknown) and missing → undefined. */
function parseRate(rate: string | undefined): number | undefined {
  const match = /^(\d+)\/(\d+)$/.exec(rate ?? "");
  if (match === null || Number(match[2]) === 0 || Number(match[1]) === 0) return undefined;
  return Number(match[1]) / Number(match[2]);
}
