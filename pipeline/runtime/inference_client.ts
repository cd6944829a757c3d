/**
 * The main thread's handle on the inference worker: start it once per model directory, then
 * `run(graph, feeds)` as often as needed while timers, HTTP and SSE keep running.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "./pipeline/runtime/inference_client.ts";
 * await using client = await InferenceClient.start({ modelDir: "models/svd_xt", graphs: ["unet"] });
 * client.loadMs.unet; // milliseconds the worker spent creating the session
 * const { out } = await client.run("unet", { x, timesteps, context, y, image_only_indicator });
 * ```
 *
 * @module
 */

import type { GraphManifest, GraphName } from "../convert/model_manifest.ts";
import { formatDims, numel, type Tensor } from "../tensor.ts";
import {
  type SerializedError,
  transferable,
  type WorkerRequest,
  type WorkerResponse,
} from "./_worker_protocol.ts";
import { type ModelDirectory, readModelDirectory } from "./model_dir.ts";
import type { OnnxSessionOptions, Provider } from "./onnx_session.ts";

/** Why an inference worker stopped (or never started). */
export type InferenceWorkerExit = "closed" | "crashed" | "failedToStart";

/**
 * The inference worker is gone: it failed to start, crashed (an uncaught error), or was closed.
 * Every request pending at that moment rejects with this error; `cause` holds the worker's error.
 * Start a new client to continue.
 */
export class InferenceWorkerError extends Error {
  /** What ended the worker. */
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
  /** Called once when the worker stops, for whatever reason (see `error.reason`). */
  readonly onExit?: (error: InferenceWorkerError) => void;
}

/** Options of {@linkcode InferenceClient.run}. */
export interface RunOptions {
  /**
   * Hand the feeds' buffers to the worker instead of copying them: no copy, but the caller's
   * `data` arrays are detached (length 0) afterwards. Only for feeds the caller will not read
   * again (a fresh batched `x`, not a conditioning tensor reused every step).
   */
  readonly transfer?: boolean;
}

interface Pending {
  readonly resolve: (outputs: Record<string, Tensor>) => void;
  readonly reject: (error: Error) => void;
}

const CLOSE_TIMEOUT_MS = 2000;

/** ONNX Runtime sessions of one model directory, loaded once in a Worker. */
export class InferenceClient implements AsyncDisposable {
  /** The checked model directory. */
  readonly model: ModelDirectory;
  /** The execution provider the sessions were created with (there is no silent fallback). */
  readonly provider: Provider;
  /** Milliseconds the worker spent creating each session. */
  readonly loadMs: Readonly<Partial<Record<GraphName, number>>>;
  /** Resolves (never rejects) when the worker stops, with the reason. */
  readonly exited: Promise<InferenceWorkerError>;

  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #onExit?: (error: InferenceWorkerError) => void;
  #resolveExited!: (error: InferenceWorkerError) => void;
  #released?: () => void;
  #nextId = 1;
  #alive = true;
  /** Why the worker stopped, once it has: later runs fail with the same reason. */
  #exit?: InferenceWorkerError;
  #closing = false;

  private constructor(
    worker: Worker,
    model: ModelDirectory,
    provider: Provider,
    loadMs: Partial<Record<GraphName, number>>,
    onExit?: (error: InferenceWorkerError) => void,
  ) {
    this.#worker = worker;
    this.model = model;
    this.provider = provider;
    this.loadMs = loadMs;
    this.#onExit = onExit;
    this.exited = new Promise((resolve) => this.#resolveExited = resolve);
    worker.onmessage = (event: MessageEvent<WorkerResponse>) => this.#receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#die("crashed", `Inference worker crashed: ${event.message}`, event.error ?? event);
    };
    worker.onmessageerror = (event) => {
      this.#die("crashed", "Inference worker sent a message that cannot be read", event);
    };
  }

  /**
   * Checks `options.modelDir`, starts the worker and waits until it has loaded every graph once.
   *
   * @throws {ModelDirectoryError} when the directory is incomplete or corrupt.
   * @throws {InferenceWorkerError} (reason "failedToStart") when a session cannot be created, e.g.
   * a provider whose libraries are missing; the message names the provider and the graph.
   */
  static async start(options: InferenceClientOptions): Promise<InferenceClient> {
    const provider = options.provider ?? "cpu";
    const model = await readModelDirectory(options.modelDir, {
      verify: options.verify,
      graphs: options.graphs,
    });
    const graphs = Object.values(model.graphs).map((g) => ({ name: g.name, path: g.path }));
    const worker = new Worker(new URL("./inference_worker.ts", import.meta.url), {
      type: "module",
      name: `inference ${model.dir}`,
    });
    const failed = (message: string, hint: string, cause: unknown) =>
      new InferenceWorkerError(
        "failedToStart",
        `Cannot start inference for "${model.dir}" on provider "${provider}" (no fallback to another provider): ${message}${hint}`,
        { cause },
      );
    try {
      const loadMs = await new Promise<Partial<Record<GraphName, number>>>((resolve, reject) => {
        worker.onmessage = ({ data }: MessageEvent<WorkerResponse>) => {
          if (data.type === "loaded") resolve(data.loadMs);
          else if (data.type === "loadFailed") {
            // A wrong attention kernel is not a missing library: no install hint for that one.
            const hint = data.error.name === "AttentionFormError" ? "" : providerHint(provider);
            reject(failed(data.error.message, hint, reviveError(data.error)));
          }
        };
        worker.onerror = (event) => {
          event.preventDefault();
          reject(
            failed(
              `the worker died while loading: ${event.message}`,
              providerHint(provider),
              event.error ?? event,
            ),
          );
        };
        const load: WorkerRequest = {
          type: "load",
          graphs,
          provider,
          threads: options.threads,
          optimization: options.optimization,
          checkAttention: attentionChecks(model, provider),
        };
        worker.postMessage(load);
      });
      return new InferenceClient(worker, model, provider, loadMs, options.onExit);
    } catch (error) {
      worker.terminate();
      throw error;
    }
  }

  /** False once the worker has stopped (closed or crashed); start a new client then. */
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

  /**
   * Runs `graph` on `feeds` in the worker. Feed names, ranks and dims are checked against
   * `model.json` first; the worker answers requests in order and keeps serving after a failed run.
   *
   * @param feeds float32 tensors by input name, e.g. for the UNet `x` [N, 8, h, w],
   * `timesteps` [N], `context` [N, 1, C], `y` [N, 768], `image_only_indicator` [B, T].
   * @returns every output of the graph by name, e.g. `out` [N, 4, h, w].
   * @throws {TypeError | RangeError} for a missing, unknown or misshaped feed (this request only).
   * @throws {InferenceWorkerError} when the worker is gone or stops before answering.
   */
  run(
    graph: GraphName,
    feeds: Record<string, Tensor>,
    options: RunOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (!this.alive) {
      // A run after the worker died reports why it died (a crash between two runs is a crash).
      return Promise.reject(
        this.#exit ??
          new InferenceWorkerError(
            "closed",
            `Inference worker for "${this.model.dir}" has stopped`,
          ),
      );
    }
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
    // Without `transfer`, copy each feed once (exactly its bytes) and transfer the copy.
    const [sent, buffers] = transferable(
      options.transfer ? feeds : Object.fromEntries(
        Object.entries(feeds).map((
          [name, t],
        ) => [name, { dims: [...t.dims], data: t.data.slice() }]),
      ),
    );
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const request: WorkerRequest = { type: "run", id, graph, feeds: sent };
      this.#worker.postMessage(request, buffers);
    });
  }

  /**
   * Stops the worker. When idle it first frees its sessions (up to 2 s); requests still pending
   * reject with an {@linkcode InferenceWorkerError} (reason "closed"). A native call already
   * running keeps its threads busy until it returns: V8 cannot interrupt native code.
   */
  async close(): Promise<void> {
    if (!this.alive) return;
    this.#closing = true;
    if (this.#pending.size === 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.#released = resolve;
          this.#worker.postMessage({ type: "release" } satisfies WorkerRequest);
        }),
        new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
    }
    this.#die("closed", `Inference worker for "${this.model.dir}" was closed`);
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Test hook: makes the worker throw an uncaught error, as a crash would. */
  crashForTesting(message = "crash requested by a test"): void {
    this.#worker.postMessage({ type: "crash", message } satisfies WorkerRequest);
  }

  #receive(message: WorkerResponse): void {
    if (message.type === "released") {
      this.#released?.();
      return;
    }
    if (message.type !== "result" && message.type !== "runFailed") return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (message.type === "result") pending.resolve(message.outputs);
    else pending.reject(reviveError(message.error));
  }

  #die(reason: InferenceWorkerExit, message: string, cause?: unknown): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#worker.terminate();
    const error = new InferenceWorkerError(
      reason,
      message,
      cause === undefined ? undefined : { cause },
    );
    this.#exit = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#released?.();
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

/** An error from the worker as a local one of the same name, message and stack. */
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

/** What a provider needs, appended to start failures of GPU providers. */
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
