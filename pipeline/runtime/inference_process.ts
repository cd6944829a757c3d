/**
 * The inference process: a `deno run` child that owns every ONNX Runtime session of one model
 * directory and answers the frames of `_process_protocol.ts` on its stdin and stdout. Sessions
 * live here rather than in the service's process so that a native failure — a segfault or abort
 * in ONNX Runtime, the kernel's OOM killer — ends this process and fails one job, while the HTTP
 * server keeps serving and the next job gets a fresh process; and so that the memory ONNX Runtime
 * keeps after a large job goes back to the system with the process.
 *
 * Started by `InferenceClient.start` (with `--allow-read --allow-ffi --allow-env`), imported by
 * no module. Protocol, in order:
 *
 * 1. client → `load` (absolute graph paths, provider, threads, attention dtypes to check);
 *    process → `loaded` (per-graph load times, its RSS) or `loadFailed` (a session that cannot be
 *    created, or an `AttentionFormError` when the provider computes the model's fused attention
 *    wrongly).
 * 2. client → `run` (request id, graph; the feeds as tensors); process → `result` (the outputs as
 *    tensors) or `runFailed` with the same id. Requests are answered in order; a failed run
 *    leaves the process serving.
 * 3. client → `stats`; process → `stats` with its resident set size.
 * 4. client → `release`; the process frees its sessions, answers `released` and exits. It also
 *    exits when its stdin ends (the client is gone) and, on Linux, is killed by the kernel when the
 *    process that started it dies (`PR_SET_PDEATHSIG`), even in the middle of a network call. It
 *    ignores SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole process group): the service
 *    decides when it ends.
 *
 * stdout carries only frames: `console.log` and friends are sent to stderr here, and native code
 * that prints to file descriptor 1 (ONNX Runtime does, in places) reaches stderr too
 * (`_stdio_pipes.ts`).
 *
 * @module
 */

import type { GraphName } from "../model_json/mod.ts";
import {
  type CrashKind,
  FrameReader,
  FrameWriter,
  type ProcessRequest,
  type ProcessResponse,
  serializeError,
} from "./_process_protocol.ts";
import { protocolStdout } from "./_stdio_pipes.ts";
import { assertFusedAttention } from "./attention_check.ts";
import { OnnxSession } from "./onnx_session.ts";

if (import.meta.main) await serve();

async function serve(): Promise<void> {
  // Anything printed must not land between frames.
  console.log = console.error;
  console.info = console.error;
  console.debug = console.error;
  dieWithParent();
  // Frames go out on a private copy of stdout: what native code prints goes to stderr.
  const output = protocolStdout();
  // Ctrl-C in a terminal signals the whole process group: the service drains and then closes
  // this process, which must not die under a running job first. It dies with its parent anyway.
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => {});
  const reader = new FrameReader(Deno.stdin.readable);
  const writer = new FrameWriter(output);
  const sessions = new Map<GraphName, OnnxSession>();
  const send = (message: ProcessResponse, tensors = {}) => writer.write(message, tensors);
  while (true) {
    const frame = await reader.next<ProcessRequest>();
    if (!frame) break; // stdin ended: the client is gone
    const request = frame.message;
    switch (request.type) {
      case "load":
        try {
          const loadMs = await load(request, sessions);
          await send({ type: "loaded", loadMs, rssBytes: Deno.memoryUsage().rss });
        } catch (error) {
          await releaseAll(sessions);
          await send({ type: "loadFailed", error: serializeError(error) });
        }
        break;
      case "run": {
        const session = sessions.get(request.graph);
        let outputs;
        try {
          if (!session) throw new RangeError(`Graph "${request.graph}" is not loaded`);
          outputs = await session.run(frame.tensors);
        } catch (error) {
          await send({ type: "runFailed", id: request.id, error: serializeError(error) });
          break;
        }
        await send({ type: "result", id: request.id }, outputs);
        break;
      }
      case "stats":
        await send({ type: "stats", id: request.id, rssBytes: Deno.memoryUsage().rss });
        break;
      case "release":
        await releaseAll(sessions);
        await send({ type: "released" });
        await writer.close();
        Deno.exit(0);
        break;
      case "crash":
        crash(request.kind, request.message);
        break;
      case "print": {
        // As native code printing to stdout does (ONNX Runtime's std::cout).
        using libc = libcSymbols({
          write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
        });
        const bytes = new TextEncoder().encode(request.text);
        libc.symbols.write(1, bytes, BigInt(bytes.length));
        break;
      }
      case "block": {
        using libc = libcSymbols({ sleep: { parameters: ["u32"], result: "u32" } });
        libc.symbols.sleep(request.seconds);
        break;
      }
    }
  }
  await releaseAll(sessions);
  Deno.exit(0);
}

/** Loads each graph once, in order, timing each, then probes fused attention where asked. */
async function load(
  request: Extract<ProcessRequest, { type: "load" }>,
  sessions: Map<GraphName, OnnxSession>,
): Promise<Partial<Record<GraphName, number>>> {
  const loadMs: Partial<Record<GraphName, number>> = {};
  for (const graph of request.graphs) {
    const started = performance.now();
    const session = await OnnxSession.create(graph.path, {
      provider: request.provider,
      threads: request.threads,
      optimization: request.optimization,
    });
    sessions.set(graph.name, session);
    loadMs[graph.name] = performance.now() - started;
  }
  await assertFusedAttention(request.provider, request.checkAttention ?? []);
  return loadMs;
}

async function releaseAll(sessions: Map<GraphName, OnnxSession>): Promise<void> {
  for (const session of sessions.values()) await session.release().catch(() => {});
  sessions.clear();
}

/**
 * On Linux, asks the kernel to SIGKILL this process when its parent dies (`prctl`
 * `PR_SET_PDEATHSIG`): stdin's end is noticed only between network calls, and a UNet call on a
 * CPU can take minutes. If the parent died before the request took effect, exits at once.
 */
function dieWithParent(): void {
  if (Deno.build.os !== "linux") return;
  const parent = Number(Deno.env.get("SVD_INFERENCE_PARENT_PID"));
  try {
    using libc = libcSymbols({ prctl: { parameters: ["i32", "u64"], result: "i32" } });
    const PR_SET_PDEATHSIG = 1;
    const SIGKILL = 9;
    libc.symbols.prctl(PR_SET_PDEATHSIG, BigInt(SIGKILL));
  } catch (error) {
    console.error(`inference process: cannot tie its life to its parent's: ${error}`);
  }
  if (Number.isInteger(parent) && Deno.ppid !== parent) Deno.exit(1);
}

/** Test hook: dies the way `kind` says. */
function crash(kind: CrashKind, message: string): never {
  console.error(`inference process: crashing on request (${kind}): ${message}`);
  switch (kind) {
    case "exit":
      Deno.exit(70);
      break;
    case "abort": {
      using libc = libcSymbols({ abort: { parameters: [], result: "void" } });
      libc.symbols.abort();
      break;
    }
    case "segfault": {
      // A read of address 8: the kernel sends SIGSEGV, as for a bad pointer in native code.
      const bad = Deno.UnsafePointer.create(8n);
      new Deno.UnsafePointerView(bad!).getUint32();
      break;
    }
  }
  // "throw", and the fallback of the others: an uncaught error ends the process with code 1.
  throw new Error(message);
}

function libcSymbols<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> & Disposable {
  const library = Deno.dlopen(
    Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6",
    symbols,
  );
  return Object.assign(library, { [Symbol.dispose]: () => library.close() });
}
