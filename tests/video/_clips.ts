/**
 * Test helpers for video output: synthetic frames, a scratch directory, decoding with ffmpeg.
 *
 * @module
 */

/**
 * A moving gradient: red ramps left to right and drifts 16 levels a frame, green ramps top to
 * bottom, blue steps with time, so every frame and every pixel differ.
 *
 * @returns `count` buffers, each `[height, width, 3]` RGB
 */
export function movingGradient(width: number, height: number, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, t) => {
    const frame = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = (y * width + x) * 3;
        frame[p] = (Math.round((x * 255) / (width - 1)) + t * 16) & 255;
        frame[p + 1] = Math.round((y * 255) / (height - 1));
        frame[p + 2] = (t * 18) & 255;
      }
    }
    return frame;
  });
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withScratchDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "svd-video-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Names in a directory, sorted. */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/**
 * Decodes any input ffmpeg reads (a clip, or an image2 pattern with `inputArgs`) to rgb24 bytes,
 * all frames concatenated: `[T, H, W, 3]`.
 */
export async function decodeToRgb(input: string, inputArgs: string[] = []): Promise<Uint8Array> {
  const { success, stdout, stderr } = await new Deno.Command("ffmpeg", {
    args: [
      ...["-hide_banner", "-loglevel", "error", ...inputArgs, "-i", input],
      ...["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    ],
    stdin: "null",
  }).output();
  if (!success) throw new Error(`decoding "${input}" failed: ${new TextDecoder().decode(stderr)}`);
  return stdout;
}

/** Top-level ISO BMFF box types in file order (`ftyp`, `moov`, `mdat`, …). */
export function topLevelBoxes(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const types: string[] = [];
  for (let offset = 0; offset + 8 <= bytes.length;) {
    let size = view.getUint32(offset);
    types.push(new TextDecoder().decode(bytes.subarray(offset + 4, offset + 8)));
    if (size === 1) size = Number(view.getBigUint64(offset + 8)); // 64-bit largesize
    if (size === 0) break; // box runs to the end of the file
    if (size < 8) throw new Error(`bad box size ${size} at offset ${offset}`);
    offset += size;
  }
  return types;
}
