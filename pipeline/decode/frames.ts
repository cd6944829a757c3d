/**
 * From the VAE decoder's output to video frames: sgm's chunked decode plan and its uint8 conversion.
 *
 * @module
 */

import { formatDims, type Tensor } from "../tensor.ts";

const f32 = Math.fround;

/**
 * Converts decoded frames to bytes as sgm's `simple_video_sample.py` does:
 * `clamp((x + 1) / 2, 0, 1) * 255` in float32, then numpy `astype(uint8)`, which **truncates**
 * (diffusers rounds instead, so its frames are up to one level brighter).
 *
 * @param decoded `[T, 3, H, W]` decoder output, about [-1, 1]
 * @returns T buffers, each `[H, W, 3]` RGB bytes, row-major
 *
 * @example
 * ```ts
 * import { tensor } from "../tensor.ts";
 * import { toUint8Frames } from "./frames.ts";
 * const [frame] = toUint8Frames(tensor([1, 3, 1, 1], new Float32Array([-1, 0, 1])));
 * frame; // Uint8Array [0, 127, 255]: 0.5 * 255 = 127.5 truncates to 127
 * ```
 */
export function toUint8Frames(decoded: Tensor): Uint8Array[] {
  const [frames, channels, h, w] = decoded.dims;
  if (decoded.dims.length !== 4 || channels !== 3) {
    throw new RangeError(
      `toUint8Frames needs decoded frames [T, 3, H, W], got ${formatDims(decoded.dims)}`,
    );
  }
  const plane = h * w;
  const result: Uint8Array[] = [];
  for (let t = 0; t < frames; t++) {
    const rgb = new Uint8Array(plane * 3); // [3, H, W] -> [H, W, 3]
    for (let c = 0; c < 3; c++) {
      const base = (t * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const unit = Math.min(1, Math.max(0, f32(f32(decoded.data[base + p] + 1) / 2)));
        rgb[p * 3 + c] = Math.trunc(f32(unit * 255)); // NaN becomes 0, as Uint8Array stores it
      }
    }
    result.push(rgb);
  }
  return result;
}

/**
 * sgm's decode plan (`en_and_decode_n_samples_a_time`): consecutive, non-overlapping chunks of
 * `decodingT` frames, the last one shorter. Each chunk is decoded on its own, and the temporal
 * convolutions zero-pad at its edges, so the chunk size changes the output.
 *
 * @param frames number of frames T
 * @param decodingT frames per chunk (sgm default 14; diffusers decodes all frames at once)
 * @returns `[start, end)` frame ranges in order
 *
 * @example
 * ```ts
 * import { chunkFrames } from "./frames.ts";
 * chunkFrames(25, 14); // [[0, 14], [14, 25]]
 * ```
 */
export function chunkFrames(frames: number, decodingT: number): [start: number, end: number][] {
  if (!Number.isInteger(frames) || frames < 0) {
    throw new RangeError(`chunkFrames needs a whole number of frames >= 0, got ${frames}`);
  }
  if (!Number.isInteger(decodingT) || decodingT < 1) {
    throw new RangeError(`chunkFrames needs decodingT >= 1, got ${decodingT}`);
  }
  const chunks: [number, number][] = [];
  for (let start = 0; start < frames; start += decodingT) {
    chunks.push([start, Math.min(start + decodingT, frames)]);
  }
  return chunks;
}
