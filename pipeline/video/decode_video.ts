/**
 * Reading a clip's frames back as RGB bytes through ffmpeg, one frame at a time (what the
 * watermark detector reads).
 *
 * @module
 */

import { ffmpegFrames, resolveFfmpegPath, resolveFfprobePath, runFfprobe } from "./ffmpeg.ts";

/** Options of {@linkcode readVideoFrames}. */
export interface ReadVideoFramesOptions {
  /** ffmpeg executable; defaults to `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
  /** ffprobe executable; defaults to `FFPROBE_PATH`, then `ffprobe` from PATH. */
  readonly ffprobePath?: string;
  readonly signal?: AbortSignal;
}

/** A clip being read: its stored size and its frames in order. */
export interface VideoFrames {
  readonly width: number;
  readonly height: number;
  /** `[height, width, 3]` RGB bytes per frame. */
  readonly frames: AsyncIterable<Uint8Array>;
}

/**
 * Opens the first video stream of `path` and decodes it to RGB frames at its stored size, every
 * frame exactly once (`-fps_mode passthrough`), without applying rotation metadata. YUV is
 * converted with the matrix and range the stream is tagged with (our clips: BT.709, limited
 * range), with accurate rounding and full-resolution chroma interpolation: the watermark lives in
 * the chroma, and the default fast path would blur and bias it.
 *
 * @throws {FfmpegNotFoundError} ffmpeg or ffprobe cannot be started
 * @throws {FfmpegError} the file is missing, not a media file, or decoding fails
 * @throws {TypeError} the file has no video stream
 *
 * @example
 * ```ts
 * import { readVideoFrames } from "./decode_video.ts";
 * const clip = await readVideoFrames("out.mp4");
 * for await (const frame of clip.frames) frame.length; // clip.width * clip.height * 3
 * ```
 */
export async function readVideoFrames(
  path: string,
  options: ReadVideoFramesOptions = {},
): Promise<VideoFrames> {
  const text = await runFfprobe(
    [
      ...["-hide_banner", "-loglevel", "error", "-select_streams", "v:0"],
      ...["-show_entries", "stream=width,height", "-of", "json", `file:${path}`],
    ],
    { path: resolveFfprobePath(options.ffprobePath), task: `probing "${path}"` },
  );
  const stream = (JSON.parse(text) as { streams?: { width?: number; height?: number }[] })
    .streams?.[0];
  if (!stream?.width || !stream.height) {
    throw new TypeError(`"${path}" has no video stream`);
  }
  const { width, height } = stream as { width: number; height: number };
  const args = [
    ...["-hide_banner", "-nostdin", "-loglevel", "error", "-noautorotate", "-i", `file:${path}`],
    ...["-map", "0:v:0", "-fps_mode", "passthrough"],
    ...["-sws_flags", "bicubic+accurate_rnd+full_chroma_int"],
    ...["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
  ];
  return {
    width,
    height,
    frames: ffmpegFrames(args, {
      path: resolveFfmpegPath(options.ffmpegPath),
      task: `decoding "${path}"`,
      frameBytes: width * height * 3,
      signal: options.signal,
    }),
  };
}
