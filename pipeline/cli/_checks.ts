/**
 * Checks of what a command line names — input files, the output's folder, ffmpeg — made before
 * anything slow starts, each failing with the flag named (`--image: no such file: nope.png`).
 *
 * @module
 */

import { dirname } from "node:path";
import { FfmpegNotFoundError, resolveFfmpegPath } from "../video/mod.ts";
import { UsageError } from "./run_cli.ts";

/** `path` (given as `--flag`) is an existing file (or, with `directory`, folder). */
export async function checkInput(
  flag: string,
  path: string,
  options: { readonly directory?: boolean } = {},
): Promise<void> {
  const kind = options.directory ? "folder" : "file";
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`${flag}: no such ${kind}: ${path}`, { cause: error });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`${flag}: cannot read ${path}: permission denied`, { cause: error });
    }
    throw error;
  }
  if (info.isDirectory !== (options.directory ?? false)) {
    throw new UsageError(
      `${flag}: ${path} is ${options.directory ? "a file" : "a folder"}, not a ${kind}`,
    );
  }
}

/**
 * `--out` can be written: its folder exists and takes a new file; a clip's path is not a folder;
 * a `frames` folder is absent or empty.
 */
export async function checkOutput(
  out: string,
  options: { readonly folder: boolean },
): Promise<void> {
  const parent = dirname(out.replace(/\/+$/, "") || "/");
  await checkInput("--out", parent, { directory: true });
  try {
    const probe = await Deno.makeTempFile({ dir: parent, prefix: ".i2v-write-check-" });
    await Deno.remove(probe);
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`--out: cannot write in ${parent}: permission denied`, { cause: error });
    }
    throw error;
  }
  const existing = await Deno.stat(out).catch(() => undefined);
  if (!existing) return;
  if (!options.folder && existing.isDirectory) {
    throw new UsageError(`--out: ${out} is a folder; name the clip file (or use --format frames)`);
  }
  if (options.folder) {
    const empty = existing.isDirectory && (await Array.fromAsync(Deno.readDir(out))).length === 0;
    if (!empty) throw new UsageError(`--out: ${out} exists; frames go into a new or empty folder`);
  }
}

/**
 * ffmpeg can be started (`FFMPEG_PATH`, else `ffmpeg` from PATH).
 *
 * @throws {FfmpegNotFoundError} saying how to install it
 */
export async function checkFfmpeg(): Promise<void> {
  const path = resolveFfmpegPath();
  try {
    await new Deno.Command(path, { args: ["-version"], stdout: "null", stderr: "null" }).output();
  } catch (cause) {
    throw new FfmpegNotFoundError("ffmpeg", path, { cause });
  }
}
