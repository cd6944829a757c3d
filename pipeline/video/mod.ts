/**
 * Video output: frames to mp4, webm, gif or PNGs through ffmpeg, and ffprobe to read clips back.
 *
 * @module
 */
export * from "./encode_video.ts";
export * from "./ffmpeg.ts";
export * from "./probe.ts";
export * from "./decode_video.ts";
