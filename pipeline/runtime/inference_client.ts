/**
 * The service's handle on its inference process: start it once per model directory, then
 * `run(graph, feeds)` as often as needed while timers, HTTP and SSE keep running.
 *
 * The sessions live in a child process (`inference_process.ts`, started with `deno run`), not in
 * a Worker thread: a native failure in ONNX Runtime — a segfault, an abort, the kernel's OOM
 * killer — then ends that process only. Every pending request rejects with an
 * {@linkcode InferenceWorkerError} (reason "crashed"), the client reports the exit, and the
 * service keeps serving; `InferenceEngine` starts a fresh process for the next job. Feeds and
 * outputs cross as raw float32 bytes over the child's stdin and stdout (`_process_protocol.ts`).
 *
 * @example
 * ```ts
 * import { InferenceClient } from "./pipeline/runtime/inference_client.ts";
 * await using client = await InferenceClient.start({ modelDir: "models/svd_xt", graphs: ["unet"] });
 * client.loadMs.unet; // milliseconds the process spent creating the session
 * const { out } = await client.run("unet", { x, timesteps, context, y, image_only_indicator });
 * ```
 *
 * @module
 */

import type { GraphManifest, GraphName } from "../model_json/mod.ts";
import { formatDims, numel, type Tensor } from "../tensor.ts";
import type {
  CrashKind,
  Frame,
  ProcessRequest,
  ProcessResponse,
  SerializedError,
} from "./_process_protocol.ts";
import { describeExit, type InferenceProcess, spawnInferenceProcess } from "./_spawn_inference.ts";
import { type ModelDirectory, readModelDirectory } from "./model_dir.ts";
import type { OnnxSessionOptions, Provider } from "./onnx_session.ts";
import { missingProviderLibraries } from "./provider_libraries.ts";

/** Why an inference process stopped (or never started). */
export type InferenceWorkerExit = "closed" | "crashed" | "failedToStart";

/**
 * The inference process is gone: it failed to start, crashed (an uncaught error, a signal such as
 * SIGSEGV, SIGABRT or the OOM killer's SIGKILL, a garbled message), or was closed. Every request
 * pending at that moment rejects with this error; `cause` holds what is known of it. Start a new
 * client to continue.
 */
export class InferenceWorkerError extends Error {
  /** What ended the process. */
  readonly reason: InferenceWorkerExit;
  constructor(reason: InferenceWorkerExit, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InferenceWorkerError";
    this.reason = reason;
  }
}

/** Options of {@linkcode InferenceClient.start}. */
export interface InferenceClientOptions {
  /** A converted model directory (with `model.json`). */
  readonly modelDir: string;
  /** Execution provider (default "cpu"). A provider that cannot load fails the start: no fallback. */
  readonly provider?: Provider;
  /** Intra-op threads per session (default: ORT's choice, one per core). */
  readonly threads?: number;
  /** ORT graph optimisation level (default "all"). */
  readonly optimization?: OnnxSessionOptions["optimization"];
  /** Graphs to load (default: every graph in the manifest). */
  readonly graphs?: readonly GraphName[];
  /** Check the sha256 of every file before loading (reads every byte). */
  readonly verify?: boolean;
  /** Called once when the process stops, for whatever reason (see `error.reason`). */
  readonly onExit?: (error: InferenceWorkerError) => void;
}

/** Options of {@linkcode InferenceClient.run}. */
export interface RunOptions {
  /**
   * Hand the feeds' buffers over instead of lending them: the caller's `data` arrays are detached
   * (length 0) at once, and the caller may not touch them again (a fresh batched `x`, not a
   * conditioning tensor reused every step). Without it the feeds are read, not copied, until the
   * returned promise settles: do not change them before.
   */
  readonly transfer?: boolean;
}

/** Memory of the inference process. */
export interface InferenceProcessStats {
  /** Resident set size, bytes. */
  readonly rssBytes: number;
}

interface Pending {
  readonly resolve: (outputs: Record<string, Tensor>) => void;
  readonly reject: (error: Error) => void;
}

/** How long `close()` waits for an idle process to free its sessions and exit. */
const CLOSE_TIMEOUT_MS = 2000;

/** ONNX Runtime sessions of one model directory, loaded once in a child process. */
export class InferenceClient implements AsyncDisposable {
  /** The checked model directory. */
  readonly model: ModelDirectory;
  /** The execution provider the sessions were created with (there is no silent fallback). */
  readonly provider: Provider;
  /** Milliseconds the process spent creating each session. */
  readonly loadMs: Readonly<Partial<Record<GraphName, number>>>;
  /** Resident set size of the process right after loading, bytes. */
  readonly loadedRssBytes: number;
  /** Resolves (never rejects) when the process stops, with the reason. */
  readonly exited: Promise<InferenceWorkerError>;

  readonly #process: InferenceProcess;
  readonly #pending = new Map<number, Pending>();
  readonly #stats = new Map<number, (stats: InferenceProcessStats) => void>();
  readonly #onExit?: (error: InferenceWorkerError) => void;
  #resolveExited!: (error: InferenceWorkerError) => void;
  #nextId = 1;
  #alive = true;
  /** Why the process stopped, once it has: later runs fail with the same reason. */
  #exit?: InferenceWorkerError;
  #closing = false;

  private constructor(
    process: InferenceProcess,
    model: ModelDirectory,
    provider: Provider,
    loaded: Extract<ProcessResponse, { type: "loaded" }>,
    onExit?: (error: InferenceWorkerError) => void,
  ) {
    this.#process = process;
    this.model = model;
    this.provider = provider;
    this.loadMs = loaded.loadMs;
    this.loadedRssBytes = loaded.rssBytes;
    this.#onExit = onExit;
    this.exited = new Promise((resolve) => this.#resolveExited = resolve);
    void this.#receive();
    void process.child.status.then(async (status) => {
      if (this.#closing) return; // close() reports it
      const tail = await process.stderrTail();
      this.#die("crashed", `Inference worker crashed: ${describeExit(process.pid, status)}${tail}`);
    });
  }

  /**
   * Checks `options.modelDir`, starts the inference process and waits until it has loaded every
   * graph once.
   *
   * @throws {ModelDirectoryError} when the directory is incomplete or corrupt.
   * @throws {InferenceWorkerError} (reason "failedToStart") when a session cannot be created, e.g.
   * a provider whose libraries are missing (the message names the provider and the graph), or the
   * process cannot start or dies while loading.
   */
  static async start(options: InferenceClientOptions): Promise<InferenceClient> {
    const provider = options.provider ?? "cpu";
    const model = await readModelDirectory(options.modelDir, {
      verify: options.verify,
      graphs: options.graphs,
    });
    const graphs = Object.values(model.graphs).map((g) => ({ name: g.name, path: g.path }));
    const failed = (message: string, cause: unknown, hint = providerHint(provider)) =>
      new InferenceWorkerError(
        "failedToStart",
        `Cannot start inference for "${model.dir}" on provider "${provider}" (no fallback to another provider): ${message}${hint}`,
        { cause },
      );
    // Known missing before ONNX Runtime is asked (which would print an error of its own).
    const missing = await missingProviderLibraries(provider);
    if (missing !== undefined) throw failed(missing, new Error(missing));
    let process: InferenceProcess;
    try {
      process = spawnInferenceProcess();
    } catch (error) {
      throw failed(`the inference process cannot be started: ${messageOf(error)}`, error);
    }
    try {
      const load: ProcessRequest = {
        type: "load",
        graphs,
        provider,
        threads: options.threads,
        optimization: options.optimization,
        checkAttention: attentionChecks(model, provider),
      };
      const answer = (async () => {
        await process.writer.write(load);
        return await process.reader.next<ProcessResponse>();
      })().catch(() => undefined);
      const exited = process.child.status.then((status) => ({ status }));
      const first = await Promise.race([answer, exited]);
      if (first !== undefined && "status" in first) {
        const tail = await process.stderrTail();
        throw failed(`it died while loading: ${describeExit(process.pid, first.status)}${tail}`, {
          status: first.status,
        });
      }
      const message = first?.message;
      if (message?.type === "loadFailed") {
        // A wrong attention kernel is not a missing library: no install hint for that one.
        const hint = message.error.name === "AttentionFormError" ? "" : providerHint(provider);
        throw failed(message.error.message, reviveError(message.error), hint);
      }
      if (message?.type !== "loaded") {
        const status = await process.child.status;
        const tail = await process.stderrTail();
        throw failed(`it died while loading: ${describeExit(process.pid, status)}${tail}`, {
          status,
        });
      }
      return new InferenceClient(process, model, provider, message, options.onExit);
    } catch (error) {
      process.kill();
      await settle(process);
      throw error;
    }
  }

  /** False once the process has stopped (closed or crashed); start a new client then. */
  get alive(): boolean {
    return this.#alive && !this.#closing;
  }

  /** The loaded graphs. */
  get graphs(): GraphName[] {
    return Object.keys(this.model.graphs) as GraphName[];
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.#pending.size;
  }

  /** The inference process's id (for tests, and for whoever watches its memory). */
  get pid(): number {
    return this.#process.pid;
  }

  /**
   * Runs `graph` on `feeds` in the inference process. Feed names, ranks and dims are checked
   * against `model.json` first; the process answers requests in order and keeps serving after a
   * failed run.
   *
   * @param feeds float32 tensors by input name, e.g. for the UNet `x` [N, 8, h, w],
   * `timesteps` [N], `context` [N, 1, C], `y` [N, 768], `image_only_indicator` [B, T].
   * @returns every output of the graph by name, e.g. `out` [N, 4, h, w].
   * @throws {TypeError | RangeError} for a missing, unknown or misshaped feed (this request only).
   * @throws {InferenceWorkerError} when the process is gone or stops before answering.
   */
  run(
    graph: GraphName,
    feeds: Record<string, Tensor>,
    options: RunOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (!this.alive) return Promise.reject(this.#stoppedError());
    const entry = this.model.graphs[graph];
    if (!entry) {
      return Promise.reject(
        new RangeError(`Graph "${graph}" is not loaded (loaded: ${this.graphs.join(", ")})`),
      );
    }
    try {
      checkFeeds(graph, entry.manifest, feeds);
    } catch (error) {
      return Promise.reject(error);
    }
    const sent = options.transfer ? takeOver(feeds) : feeds;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#send({ type: "run", id, graph }, sent);
    });
  }

  /**
   * The process's memory now (answered in turn, after the runs sent before).
   *
   * @throws {InferenceWorkerError} when the process is gone or stops before answering.
   */
  stats(): Promise<InferenceProcessStats> {
    if (!this.alive) return Promise.reject(this.#stoppedError());
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: () => {}, reject });
      this.#stats.set(id, (stats) => {
        this.#pending.delete(id);
        resolve(stats);
      });
      this.#send({ type: "stats", id });
    });
  }

  /**
   * Stops the process. When idle it first frees its sessions (up to 2 s); otherwise, or after
   * that, it is killed (SIGKILL: a network call in progress ends at once). Requests still pending
   * reject with an {@linkcode InferenceWorkerError} (reason "closed").
   */
  async close(): Promise<void> {
    if (!this.alive) {
      await settle(this.#process);
      return;
    }
    this.#closing = true;
    if (this.#pending.size === 0) {
      this.#send({ type: "release" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#process.child.status,
        new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
    }
    this.#process.kill();
    await settle(this.#process);
    this.#die("closed", `Inference worker for "${this.model.dir}" was closed`);
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Test hook: makes the process die as a native failure would — an uncaught error (`throw`, the
   * default), `exit`, `abort` (SIGABRT from libc's `abort()`) or `segfault` (a read of an invalid
   * address through FFI: SIGSEGV).
   */
  crashForTesting(message = "crash requested by a test", kind: CrashKind = "throw"): void {
    this.#send({ type: "crash", kind, message });
  }

  /**
   * Test hook: holds the process's only thread in a native `sleep(seconds)`, as a long network
   * call does (it then notices neither its stdin nor anything else until the call returns).
   */
  blockForTesting(seconds: number): void {
    this.#send({ type: "block", seconds });
  }

  /** Test hook: makes the process's native code write `text` to its stdout (descriptor 1). */
  printForTesting(text: string): void {
    this.#send({ type: "print", text });
  }

  #send(message: ProcessRequest, tensors?: Record<string, Tensor>): void {
    // A write fails only when the process is gone, which its exit reports.
    this.#process.writer.write(message, tensors).catch(() => {});
  }

  async #receive(): Promise<void> {
    while (true) {
      let frame: Frame<ProcessResponse> | undefined;
      try {
        frame = await this.#process.reader.next<ProcessResponse>();
      } catch (error) {
        if (!this.#alive || this.#closing) return;
        // Something else wrote to its stdout, or a frame was cut: nothing after it can be trusted.
        this.#process.kill();
        this.#die(
          "crashed",
          `Inference worker crashed: it sent an unreadable message (${messageOf(error)})`,
          error,
        );
        return;
      }
      if (!frame) return; // stdout ended: the exit reports why
      const message = frame.message;
      if (message.type === "stats") {
        this.#stats.get(message.id)?.({ rssBytes: message.rssBytes });
        this.#stats.delete(message.id);
        continue;
      }
      if (message.type !== "result" && message.type !== "runFailed") continue;
      const pending = this.#pending.get(message.id);
      if (!pending) continue;
      this.#pending.delete(message.id);
      if (message.type === "result") pending.resolve(frame.tensors);
      else pending.reject(reviveError(message.error));
    }
  }

  /** What a request gets once the process has stopped (a crash between two runs is a crash). */
  #stoppedError(): InferenceWorkerError {
    return this.#exit ??
      new InferenceWorkerError("closed", `Inference worker for "${this.model.dir}" has stopped`);
  }

  #die(reason: InferenceWorkerExit, message: string, cause?: unknown): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#process.kill();
    const error = new InferenceWorkerError(
      reason,
      message,
      cause === undefined ? undefined : { cause },
    );
    this.#exit = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#stats.clear();
    this.#resolveExited(error);
    this.#onExit?.(error);
  }
}

/**
 * Checks `feeds` against the graph's inputs in `model.json`: every input present, no unknown
 * names, float32 data of `numel(dims)` values, the recorded rank, fixed dims equal, and each
 * symbolic dim (`N`, `h`, ...) the same size wherever it appears.
 */
export function checkFeeds(
  graph: GraphName,
  manifest: GraphManifest,
  feeds: Record<string, Tensor>,
): void {
  const problems: string[] = [];
  const expected = new Map(manifest.inputs.map((input) => [input.name, input]));
  for (const name of expected.keys()) if (!(name in feeds)) problems.push(`${name} is missing`);
  for (const name of Object.keys(feeds)) {
    if (!expected.has(name)) problems.push(`${name} is not an input`);
  }
  const symbols = new Map<string, [string, number]>();
  for (const [name, t] of Object.entries(feeds)) {
    const input = expected.get(name);
    if (!input) continue;
    const want = `[${input.dims.join(", ")}]`;
    if (!(t.data instanceof Float32Array)) {
      problems.push(`${name} must hold a Float32Array`);
      continue;
    }
    if (t.data.length !== numel(t.dims)) {
      problems.push(`${name} has ${t.data.length} values for its dims`);
    }
    if (t.dims.length !== input.dims.length) {
      problems.push(`${name} has rank ${t.dims.length}, expected ${want}`);
      continue;
    }
    input.dims.forEach((d, axis) => {
      const got = t.dims[axis];
      if (typeof d === "number") {
        if (got !== d) problems.push(`${name} axis ${axis} is ${got}, expected ${want}`);
        return;
      }
      const seen = symbols.get(d);
      if (!seen) symbols.set(d, [name, got]);
      else if (seen[1] !== got) {
        problems.push(`${name} has ${d} = ${got} but ${seen[0]} has ${d} = ${seen[1]}`);
      }
    });
  }
  if (problems.length === 0) return;
  const described = Object.entries(feeds).map(([name, t]) =>
    `${name}: ${t.data?.constructor?.name ?? typeof t.data} ${formatDims(t.dims)}`
  ).join(", ");
  const ErrorType = problems.some((p) => p.endsWith("missing") || p.endsWith("not an input"))
    ? TypeError
    : RangeError;
  throw new ErrorType(
    `Graph "${graph}" cannot run on {${described}}: ${problems.join("; ")}`,
  );
}

/** An error from the process as a local one of the same name, message and stack. */
function reviveError(error: SerializedError): Error {
  const ErrorType = error.name === "TypeError"
    ? TypeError
    : error.name === "RangeError"
    ? RangeError
    : Error;
  const revived = new ErrorType(
    error.message,
    error.cause === undefined ? undefined : { cause: error.cause },
  );
  revived.name = error.name;
  if (error.stack) revived.stack = error.stack;
  return revived;
}

/**
 * The dtypes in which to probe the provider's MultiHeadAttention before serving `model`: none on
 * the CPU (its kernel is what the golden tests check) or for decomposed attention (plain MatMul and
 * Softmax); otherwise each dtype the model's graphs compute in.
 */
function attentionChecks(model: ModelDirectory, provider: Provider): ("float32" | "float16")[] {
  if (provider === "cpu" || model.manifest.attention !== "fused") return [];
  const dtypes = new Set(
    Object.values(model.graphs).map((g) => g.manifest.dtype === "fp16" ? "float16" : "float32"),
  );
  return [...dtypes].sort().reverse() as ("float32" | "float16")[];
}

/** What a provider needs, appended to start failures of GPU providers. */
function providerHint(provider: Provider): string {
  switch (provider) {
    case "cpu":
      return "";
    case "cuda":
      return ". The CUDA provider needs onnxruntime-node's CUDA libraries " +
        "(libonnxruntime_providers_cuda.so, downloaded by its postinstall from NuGet), CUDA 12 " +
        'and cuDNN 9, and an NVIDIA GPU; run with provider "cpu" where these are absent';
    case "webgpu":
      return ". The WebGPU provider needs a GPU adapter through a Vulkan driver; run with " +
        'provider "cpu" where there is none';
  }
}

/**
 * Feeds whose buffers are taken from the caller: detached from its arrays at once (zero-copy where
 * a feed's array is its whole buffer, a copy of exactly its bytes otherwise).
 */
function takeOver(feeds: Record<string, Tensor>): Record<string, Tensor> {
  const taken = new Set<ArrayBufferLike>();
  return Object.fromEntries(
    Object.entries(feeds).map(([name, t]) => {
      const buffer = t.data.buffer;
      const whole = buffer instanceof ArrayBuffer && t.data.byteOffset === 0 &&
        t.data.byteLength === buffer.byteLength && !taken.has(buffer);
      taken.add(buffer);
      const data = whole ? new Float32Array(buffer.transfer()) : t.data.slice();
      return [name, { dims: [...t.dims], data }];
    }),
  );
}

/** Waits until the process has exited and its pipes are closed (at most a few seconds). */
async function settle(process: InferenceProcess): Promise<void> {
  await process.child.status;
  await process.reader.cancel();
  await process.writer.close();
  await process.stderrTail();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
