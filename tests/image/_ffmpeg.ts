/**
 * Test images made with ffmpeg in a temporary folder (tests need `--allow-run=ffmpeg` plus read
 * and write access to the temp folder).
 *
 * @module
 */

/** Runs ffmpeg quietly with `args`, failing with its stderr. */
export async function ffmpeg(args: readonly string[], stdin?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("ffmpeg", {
    args: ["-hide_banner", "-loglevel", "error", "-y", ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const { success, stdout, stderr } = await output;
  if (!success) {
    throw new Error(`ffmpeg ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return stdout;
}

/**
 * One frame of lavfi `source` (default: the 96×64 test card) written as `file` (its extension
 * picks the format) with extra output `options`; returns the file's bytes.
 */
export async function makeImage(
  file: string,
  options: readonly string[] = [],
  source = "testsrc=size=96x64",
): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "svd_image_test_" });
  try {
    const path = `${dir}/${file}`;
    await ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", "1", ...options, path]);
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** ffmpeg's own decode of an image file's bytes to raw pixels of `pixelFormat`. */
export function ffmpegDecode(
  bytes: Uint8Array,
  pixelFormat: string,
  options: readonly string[] = [],
): Promise<Uint8Array> {
  return ffmpeg(
    ["-i", "pipe:0", "-frames:v", "1", ...options, "-f", "rawvideo", "-pix_fmt", pixelFormat, "-"],
    bytes,
  );
}

/** Permissions of a test that makes images with ffmpeg. */
export const FFMPEG_PERMISSIONS: Deno.PermissionOptionsObject = {
  run: ["ffmpeg"],
  read: true,
  write: true,
};
