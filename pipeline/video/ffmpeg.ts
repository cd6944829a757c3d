/**
 * Locating and running ffmpeg and ffprobe, and turning their failures into two domain errors.
 * Every spawn of either tool resolves its path here (`FFMPEG_PATH`, `FFPROBE_PATH`); the one
 * spawn elsewhere, WebP decoding in `pipeline/image/webp_decode.ts`, uses
 * {@linkcode resolveFfmpegPath} too.
 *
 * @module
 */

import { GenerationCancelledError } from "../errors.ts";

/** The two tools this module runs. */
export type FfmpegTool = "ffmpeg" | "ffprobe";

/** How many bytes of a tool's stderr an {@linkcode FfmpegError} keeps: the end, where the reason is. */
export const STDERR_TAIL_BYTES = 4096;

/**
 * ffmpeg or ffprobe could not be started: there is no such executable (or it is not executable)
 * at the path tried. `cause` holds Deno's spawn error.
 *
 * @example
 * ```ts
 * import { FfmpegNotFoundError } from "./ffmpeg.ts";
 * new FfmpegNotFoundError("ffmpeg", "/opt/ffmpeg").message;
 * // 'ffmpeg not found at "/opt/ffmpeg": install it (apt-get install ffmpeg) or set FFMPEG_PATH'
 * ```
 */
export class FfmpegNotFoundError extends Error {
  /** Which tool was missing. */
  readonly tool: FfmpegTool;
  /** The path (or bare name, looked up in PATH) that was tried. */
  readonly path: string;

  constructor(tool: FfmpegTool, path: string, options?: ErrorOptions) {
    const notExecutable = options?.cause instanceof Deno.errors.PermissionDenied;
    super(
      `${tool} ${notExecutable ? "is not executable" : "not found"} at "${path}": ` +
        `install it (apt-get install ffmpeg) or set ${envVarOf(tool)}`,
      options,
    );
    this.name = "FfmpegNotFoundError";
    this.tool = tool;
    this.path = path;
  }
}

/**
 * ffmpeg or ffprobe ran and failed. The message ends with the tail of its stderr, which is where
 * ffmpeg says why.
 *
 * @example
 * ```ts
 * import { FfmpegError } from "./ffmpeg.ts";
 * const error = new FfmpegError("ffmpeg", 1, "Unrecognized option 'bogus'.", 'encoding "clip.mp4"');
 * error.message; // "ffmpeg exited with code 1 while encoding \"clip.mp4\": Unrecognized option 'bogus'."
 * error.exitCode; // 1
 * ```
 */
export class FfmpegError extends Error {
  /** Which tool failed. */
  readonly tool: FfmpegTool;
  /** The tool's exit code (128 + signal number when a signal killed it). */
  readonly exitCode: number;
  /** The last {@linkcode STDERR_TAIL_BYTES} bytes of its stderr, trimmed. */
  readonly stderrTail: string;

  /**
   * @param task what the tool was doing, for the message (`encoding "clip.mp4"`)
   */
  constructor(
    tool: FfmpegTool,
    exitCode: number,
    stderrTail: string,
    task: string,
    options?: ErrorOptions,
  ) {
    const tail = stderrTail.trim();
    super(
      `${tool} exited with code ${exitCode} while ${task}: ${tail === "" ? "(no stderr)" : tail}`,
      options,
    );
    this.name = "FfmpegError";
    this.tool = tool;
    this.exitCode = exitCode;
    this.stderrTail = tail;
  }
}

/**
 * ffmpeg ran longer than it was given and was killed (SIGKILL): a hung encoder must not hold a
 * generation slot for ever. Its `exitCode` is what the kill left (137), `stderrTail` what it had
 * said.
 *
 * @example
 * ```ts
 * import { FfmpegTimeoutError } from "./ffmpeg.ts";
 * new FfmpegTimeoutError(90_000, "", 'encoding 25 frames as mp4 to "clip.mp4"').message;
 * // 'ffmpeg did not finish encoding 25 frames as mp4 to "clip.mp4" within 90 s and was killed'
 * ```
 */
export class FfmpegTimeoutError extends FfmpegError {
  /** The time it was given, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, stderrTail: string, task: string, options?: ErrorOptions) {
    super("ffmpeg", 137, stderrTail, task, options);
    const tail = stderrTail.trim();
    this.message = `ffmpeg did not finish ${task} within ${formatSeconds(timeoutMs)} and was ` +
      `killed${tail === "" ? "" : `: ${tail}`}`;
    this.name = "FfmpegTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The time an encode of `frames` frames of `width` × `height` is given before ffmpeg is killed:
 * 60 s plus 2 µs per pixel of every frame. Measured on 2 shared cores, the slowest format (GIF,
 * its palette pass) takes about 0.24 µs a pixel-frame (25 frames of 1024×576 in 3.5 s) and x264
 * 0.05 µs: the allowance is 8× the slowest plus a minute, 90 s for SVD-XT's clip, 10 min for 64
 * frames of 2048².
 */
export function encodeTimeoutMs(frames: number, width: number, height: number): number {
  return Math.round(60_000 + frames * width * height * 0.002);
}

/**
 * The ffmpeg executable to run: the explicit path if given, else `FFMPEG_PATH`, else `ffmpeg`
 * from PATH. Without env permission the variable is skipped rather than prompted for.
 *
 * @example
 * ```ts
 * import { resolveFfmpegPath } from "./ffmpeg.ts";
 * resolveFfmpegPath("/usr/local/bin/ffmpeg"); // "/usr/local/bin/ffmpeg"
 * resolveFfmpegPath(); // Deno.env.get("FFMPEG_PATH") ?? "ffmpeg"
 * ```
 */
export function resolveFfmpegPath(explicit?: string): string {
  return resolveToolPath("ffmpeg", explicit);
}

/**
 * The ffprobe executable to run: the explicit path if given, else `FFPROBE_PATH`, else `ffprobe`
 * from PATH.
 *
 * @example
 * ```ts
 * import { resolveFfprobePath } from "./ffmpeg.ts";
 * resolveFfprobePath(); // Deno.env.get("FFPROBE_PATH") ?? "ffprobe"
 * ```
 */
export function resolveFfprobePath(explicit?: string): string {
  return resolveToolPath("ffprobe", explicit);
}

/** Options of {@linkcode runFfmpeg}. */
export interface RunFfmpegOptions {
  /** Executable to run (already resolved, see {@linkcode resolveFfmpegPath}). */
  readonly path: string;
  /** Chunks written to ffmpeg's stdin in order, each after the previous one was taken. */
  readonly input: readonly Uint8Array[];
  /** What ffmpeg is doing, for error messages (`encoding "clip.mp4"`). */
  readonly task: string;
  /** Kills ffmpeg (SIGKILL) when it fires. */
  readonly signal?: AbortSignal;
  /** Kills ffmpeg (SIGKILL) when it runs longer than this, in milliseconds (default: no limit). */
  readonly timeoutMs?: number;
}

/**
 * Runs ffmpeg with `args`, piping `input` to its stdin with backpressure (one chunk in flight)
 * while keeping the tail of its stderr. Resolves when ffmpeg exits with 0.
 *
 * @throws {FfmpegNotFoundError} the executable cannot be started
 * @throws {FfmpegError} ffmpeg exits with another code, or stops reading its input early
 * @throws {FfmpegTimeoutError} ffmpeg ran past `timeoutMs` and was killed
 * @throws {GenerationCancelledError} `signal` fired (before or during the run); `cause` is its reason
 *
 * @example
 * ```ts
 * import { runFfmpeg } from "./ffmpeg.ts";
 * const black = new Uint8Array(4 * 4 * 3);
 * await runFfmpeg(
 *   ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "4x4", "-i", "pipe:0", "-f", "null", "-"],
 *   { path: "ffmpeg", input: [black, black], task: "checking two frames" },
 * );
 * ```
 */
export async function runFfmpeg(args: readonly string[], options: RunFfmpegOptions): Promise<void> {
  const { path, input, task, signal, timeoutMs } = options;
  throwIfCancelled(signal, task);
  const child = spawn("ffmpeg", path, args, "piped");
  const stderrTail = readTail(child.stderr);
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  signal?.addEventListener("abort", kill, { once: true });
  let timedOut = false;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  try {
    const writeError = await writeAll(child.stdin, input, signal);
    const status = await child.status;
    // A killed ffmpeg's children (a wrapper script's) may keep stderr open: wait only a moment.
    const tail = timedOut ? await within(stderrTail, 1000, "") : await stderrTail;
    throwIfCancelled(signal, task);
    if (timedOut) throw new FfmpegTimeoutError(timeoutMs!, tail, task);
    if (!status.success) throw new FfmpegError("ffmpeg", status.code, tail, task);
    if (writeError !== undefined) {
      // ffmpeg exited 0 without reading all frames: the output would be short.
      throw new FfmpegError("ffmpeg", status.code, tail || "stopped reading its input", task, {
        cause: writeError,
      });
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
  }
}

/**
 * Runs ffprobe with `args` and returns its stdout as text.
 *
 * @throws {FfmpegNotFoundError} the executable cannot be started
 * @throws {FfmpegError} ffprobe exits with a code other than 0
 *
 * @example
 * ```ts
 * import { runFfprobe } from "./ffmpeg.ts";
 * const version = await runFfprobe(["-version"], { path: "ffprobe", task: "reading its version" });
 * version.startsWith("ffprobe version"); // true
 * ```
 */
export async function runFfprobe(
  args: readonly string[],
  options: { readonly path: string; readonly task: string },
): Promise<string> {
  const child = spawn("ffprobe", options.path, args, "null");
  const [output, tail] = await Promise.all([
    new Response(child.stdout).text(),
    readTail(child.stderr),
  ]);
  const status = await child.status;
  if (!status.success) throw new FfmpegError("ffprobe", status.code, tail, options.task);
  return output;
}

/** Options of {@linkcode ffmpegFrames}. */
export interface FfmpegFramesOptions {
  /** Executable to run (already resolved, see {@linkcode resolveFfmpegPath}). */
  readonly path: string;
  /** What ffmpeg is doing, for error messages (`decoding "clip.mp4"`). */
  readonly task: string;
  /** Bytes per frame of the raw output (width × height × 3 for rgb24). */
  readonly frameBytes: number;
  /** Kills ffmpeg (SIGKILL) when it fires. */
  readonly signal?: AbortSignal;
}

/**
 * Runs ffmpeg with `args` (no stdin; raw frames written to `pipe:1`) and yields its stdout one
 * frame of `frameBytes` at a time, so a long video never sits in memory whole. Stopping the
 * iteration early kills ffmpeg.
 *
 * @throws {FfmpegNotFoundError} the executable cannot be started
 * @throws {FfmpegError} ffmpeg exits with a code other than 0, or its output ends mid-frame
 * @throws {GenerationCancelledError} `signal` fired (before or during the run)
 *
 * @example
 * ```ts
 * import { ffmpegFrames } from "./ffmpeg.ts";
 * const args = ["-f", "lavfi", "-i", "color=red:s=2x2:r=5:d=0.4", "-f", "rawvideo",
 *   "-pix_fmt", "rgb24", "pipe:1"];
 * for await (const frame of ffmpegFrames(args, { path: "ffmpeg", task: "red", frameBytes: 12 })) {
 *   frame; // Uint8Array [255, 0, 0, 255, 0, 0, …], twice
 * }
 * ```
 */
export async function* ffmpegFrames(
  args: readonly string[],
  options: FfmpegFramesOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const { path, task, frameBytes, signal } = options;
  if (!Number.isInteger(frameBytes) || frameBytes < 1) {
    throw new RangeError(`ffmpegFrames needs frameBytes >= 1, got ${frameBytes}`);
  }
  throwIfCancelled(signal, task);
  const child = spawn("ffmpeg", path, args, "null");
  const stderrTail = readTail(child.stderr);
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  signal?.addEventListener("abort", kill, { once: true });
  let finished = false;
  try {
    let frame = new Uint8Array(frameBytes);
    let filled = 0;
    for await (const chunk of child.stdout) {
      for (let offset = 0; offset < chunk.length;) {
        const take = Math.min(frameBytes - filled, chunk.length - offset);
        frame.set(chunk.subarray(offset, offset + take), filled);
        [filled, offset] = [filled + take, offset + take];
        if (filled === frameBytes) {
          yield frame;
          [frame, filled] = [new Uint8Array(frameBytes), 0];
        }
      }
    }
    const status = await child.status;
    const tail = await stderrTail;
    throwIfCancelled(signal, task);
    if (!status.success) throw new FfmpegError("ffmpeg", status.code, tail, task);
    if (filled !== 0) {
      throw new FfmpegError("ffmpeg", status.code, tail || "output ended mid-frame", task);
    }
    finished = true;
  } finally {
    signal?.removeEventListener("abort", kill);
    if (!finished) {
      kill(); // the caller stopped early or something failed: ffmpeg must not linger
      await child.status;
      await stderrTail.catch(() => {});
    }
  }
}

function resolveToolPath(tool: FfmpegTool, explicit: string | undefined): string {
  if (explicit !== undefined && explicit !== "") return explicit;
  let fromEnv: string | undefined;
  try {
    fromEnv = Deno.env.get(envVarOf(tool));
  } catch {
    // no env permission: use the default rather than fail
  }
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : tool;
}

function envVarOf(tool: FfmpegTool): string {
  return tool === "ffmpeg" ? "FFMPEG_PATH" : "FFPROBE_PATH";
}

function spawn(
  tool: FfmpegTool,
  path: string,
  args: readonly string[],
  stdin: "piped" | "null",
): Deno.ChildProcess {
  try {
    return new Deno.Command(path, {
      args: [...args],
      stdin,
      stdout: stdin === "piped" ? "null" : "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      throw new FfmpegNotFoundError(tool, path, { cause: error });
    }
    throw error;
  }
}

/** Writes every chunk, awaiting each; returns the write error instead of throwing it. */
async function writeAll(
  stdin: WritableStream<Uint8Array>,
  chunks: readonly Uint8Array[],
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const writer = stdin.getWriter();
  try {
    for (const chunk of chunks) {
      if (signal?.aborted) throw signal.reason;
      await writer.write(chunk); // resolves once the pipe took it: backpressure
    }
    await writer.close(); // EOF: ffmpeg flushes and finalizes the file
    return undefined;
  } catch (error) {
    await writer.abort(error).catch(() => {}); // closes the pipe so ffmpeg stops waiting
    return error;
  }
}

/** Drains a stream, keeping only its last {@linkcode STDERR_TAIL_BYTES} bytes, as text. */
async function readTail(stream: ReadableStream<Uint8Array>): Promise<string> {
  let kept: Uint8Array[] = [];
  let keptBytes = 0;
  for await (const chunk of stream) {
    kept.push(chunk);
    keptBytes += chunk.length;
    if (keptBytes > 2 * STDERR_TAIL_BYTES) {
      const all = concat(kept, keptBytes);
      kept = [all.slice(all.length - STDERR_TAIL_BYTES)];
      keptBytes = STDERR_TAIL_BYTES;
    }
  }
  const all = concat(kept, keptBytes);
  return new TextDecoder().decode(all.subarray(Math.max(0, all.length - STDERR_TAIL_BYTES)));
}

function concat(chunks: readonly Uint8Array[], bytes: number): Uint8Array {
  const all = new Uint8Array(bytes);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/** `promise`'s value, or `fallback` when it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<T>((resolve) => timer = setTimeout(() => resolve(fallback), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

function throwIfCancelled(signal: AbortSignal | undefined, task: string): void {
  if (signal?.aborted) {
    throw new GenerationCancelledError(`Cancelled while ${task}`, { cause: signal.reason });
  }
}
