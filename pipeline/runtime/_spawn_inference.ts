/**
 * Starting the inference process (`inference_process.ts`) as a `deno run` child with the least
 * permissions it needs, and the plumbing around it: frames over its stdin and stdout, its stderr
 * passed through to ours while the tail is kept for crash reports, and how it ended in words.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { FrameReader, FrameWriter } from "./_process_protocol.ts";

/** The process's entry module and the project's config (import map, npm packages, unstable flags). */
const ENTRY = new URL("./inference_process.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);
/** How much of the process's stderr a crash report keeps: the end, where the reason is. */
const STDERR_TAIL_BYTES = 2048;

/** A started inference process. */
export interface InferenceProcess {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  /** Frames from its stdout. */
  readonly reader: FrameReader;
  /** Frames to its stdin. */
  readonly writer: FrameWriter;
  /** The last bytes of its stderr once it has ended (waits at most 1 s), as `: <text>` or "". */
  stderrTail(): Promise<string>;
  /** SIGKILL, if it still runs. */
  kill(): void;
}

/**
 * Starts the inference process: `deno run --allow-read --allow-ffi --allow-env` (reading the model
 * and the npm packages, loading ONNX Runtime's addon, and ORT's and CUDA's variables), no network,
 * no writes, no subprocesses. Its environment is ours (so `LD_LIBRARY_PATH`, `CUDA_VISIBLE_DEVICES`
 * and `ORT_*` reach it) plus our PID, which it uses to die with us. It runs under the project's
 * `deno.json`, or the one `SVD_DENO_CONFIG` names (with `--cached-only` when
 * `SVD_DENO_CACHED_ONLY=1`): the GPU benchmark's host has only `bench/gpu/deno.json`'s packages.
 *
 * Call it on the main thread: on Linux the child is killed when the thread that started it ends.
 */
export function spawnInferenceProcess(): InferenceProcess {
  const env: Record<string, string> = { SVD_INFERENCE_PARENT_PID: String(Deno.pid) };
  // The project's config unless the process runs under another (the GPU bench's bench/gpu/deno.json
  // with its own onnxruntime-node): SVD_DENO_CONFIG, and SVD_DENO_CACHED_ONLY=1 for an offline host.
  const config = Deno.env.get("SVD_DENO_CONFIG") || fileURLToPath(CONFIG);
  const cachedOnly = Deno.env.get("SVD_DENO_CACHED_ONLY") === "1";
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--config=${config}`,
      ...(cachedOnly ? ["--cached-only"] : []),
      "--allow-read",
      "--allow-ffi",
      "--allow-env",
      fileURLToPath(ENTRY),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  const tail = passStderrThrough(child.stderr);
  return {
    child,
    pid: child.pid,
    reader: new FrameReader(child.stdout),
    writer: new FrameWriter(child.stdin),
    async stderrTail() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const text = await Promise.race([
        tail.done,
        new Promise<void>((resolve) => timer = setTimeout(resolve, 1000)),
      ]).then(() => tail.text());
      clearTimeout(timer);
      return text === "" ? "" : `: ${text}`;
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    },
  };
}

/** How a child process ended, in words: `was killed by SIGKILL (…)`, `exited with code 1`. */
export function describeExit(pid: number, status: Deno.CommandStatus): string {
  if (status.signal === null) return `the inference process ${pid} exited with code ${status.code}`;
  const why = status.signal === "SIGKILL"
    ? " (the kernel's out-of-memory killer, or someone, killed it)"
    : status.signal === "SIGSEGV"
    ? " (a segmentation fault in native code)"
    : status.signal === "SIGABRT"
    ? " (native code aborted)"
    : "";
  return `the inference process ${pid} was killed by ${status.signal}${why}`;
}

/** Copies `stream` to our stderr as it comes, keeping its last bytes. */
function passStderrThrough(
  stream: ReadableStream<Uint8Array>,
): { done: Promise<void>; text: () => string } {
  let kept = new Uint8Array(0);
  let truncated = false;
  const done = (async () => {
    try {
      for await (const chunk of stream) {
        for (let written = 0; written < chunk.length;) {
          written += await Deno.stderr.write(chunk.subarray(written));
        }
        const joined = new Uint8Array(kept.length + chunk.length);
        joined.set(kept);
        joined.set(chunk, kept.length);
        truncated ||= joined.length > STDERR_TAIL_BYTES;
        kept = joined.length > STDERR_TAIL_BYTES
          ? joined.slice(joined.length - STDERR_TAIL_BYTES)
          : joined;
      }
    } catch {
      // our stderr or the pipe broke: what was kept is all there is
    }
  })();
  return {
    done,
    text: () => {
      // Without the colours Deno's error printer may add, and whole lines only.
      // deno-lint-ignore no-control-regex
      let text = new TextDecoder().decode(kept).replace(/\x1b\[[0-9;]*m/g, "");
      if (truncated) text = text.slice(text.indexOf("\n") + 1);
      return text.trim();
    },
  };
}
