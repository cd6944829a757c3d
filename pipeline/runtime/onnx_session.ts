/**
 * The one module that imports ONNX Runtime. Sessions are loaded by path (ORT memory-maps the
 * external data beside the model) and run on plain {@linkcode Tensor}s; every run checks its feeds
 * first and reports each feed's dims when ORT refuses them.
 *
 * @module
 */

import * as ort from "onnxruntime-node";
import { formatDims, numel, type Tensor } from "../tensor.ts";

/** Execution providers the service can ask for. */
export type Provider = "cpu" | "cuda" | "webgpu";

/** Options of {@linkcode OnnxSession.create}. */
export interface OnnxSessionOptions {
  provider?: Provider;
  /** ORT graph optimisation level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Intra-op threads (default: ORT's choice). */
  threads?: number;
  /**
   * ORT's log level for this session (default: ORT's, "warning"). "verbose" prints, among much
   * else, which execution provider each node was placed on (see `tests/bench/node_placement.ts`).
   * ORT writes its log to the process's stderr.
   */
  logLevel?: "verbose" | "info" | "warning" | "error" | "fatal";
}

const LOG_SEVERITY = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;

/** A loaded ONNX model. */
export class OnnxSession {
  readonly path: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly #session: ort.InferenceSession;

  private constructor(path: string, session: ort.InferenceSession) {
    this.path = path;
    this.#session = session;
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
  }

  /** Loads `path` (an `.onnx` file; its `.onnx.data` must lie beside it). */
  static create(path: string, options: OnnxSessionOptions = {}): Promise<OnnxSession> {
    return OnnxSession.#load(path, path, options);
  }

  /**
   * Loads a model held in memory (every initializer inline, see `encodeOnnxModel`); `name` stands
   * for its path in messages. Writes nothing.
   */
  static fromBytes(
    bytes: Uint8Array,
    name: string,
    options: OnnxSessionOptions = {},
  ): Promise<OnnxSession> {
    return OnnxSession.#load(bytes, name, options);
  }

  static async #load(
    model: string | Uint8Array,
    path: string,
    options: OnnxSessionOptions,
  ): Promise<OnnxSession> {
    const provider = options.provider ?? "cpu";
    try {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: [provider],
        graphOptimizationLevel: options.optimization ?? "all",
        ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
        ...(options.logLevel ? { logSeverityLevel: LOG_SEVERITY[options.logLevel] } : {}),
        ...memoryOptions(provider),
      };
      const session = typeof model === "string"
        ? await ort.InferenceSession.create(model, sessionOptions)
        : await ort.InferenceSession.create(model, sessionOptions);
      return new OnnxSession(path, session);
    } catch (cause) {
      throw new Error(
        `Cannot load ONNX model "${path}" with provider ${provider}: ${message(cause)}`,
        {
          cause,
        },
      );
    }
  }

  /** Runs the model on float32 feeds and returns every output as float32. */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    for (const name of this.inputNames) {
      if (!(name in feeds)) throw new TypeError(`Model "${this.path}" needs input "${name}"`);
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      if (t.data.length !== numel(t.dims)) {
        throw new RangeError(
          `Input "${name}" has ${t.data.length} values for dims ${formatDims(t.dims)}`,
        );
      }
      ortFeeds[name] = new ort.Tensor("float32", t.data, [...t.dims]);
    }
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      results = await this.#session.run(ortFeeds);
    } catch (cause) {
      const described = Object.entries(feeds).map(([n, t]) => `${n}: float32 ${formatDims(t.dims)}`)
        .join(", ");
      throw new Error(`Model "${this.path}" failed on inputs {${described}}: ${message(cause)}`, {
        cause,
      });
    }
    const out: Record<string, Tensor> = {};
    for (const name of this.outputNames) {
      const value = results[name] as ort.Tensor;
      out[name] = { dims: [...value.dims], data: value.data as Float32Array };
    }
    return out;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * Memory settings that make a session's footprint what `pipeline/plan/` predicts (docs/gpu.md).
 *
 * - No memory pattern: with it, every run after the first with the same shapes takes one
 *   contiguous block of the planned peak from the arena; the arena's regions from the first run
 *   rarely hold it, so a second region of that size is reserved (measured on the CPU: +0.7 GiB
 *   of RSS for the tiny UNet at 576×1024, 14 frames) and, on CUDA, kept for good.
 * - CUDA: weights allocated directly on the device, not through the arena, which would round its
 *   regions up to powers of two around them (`session.use_device_allocator_for_initializers`).
 *   The other CUDA arena settings cannot be passed from onnxruntime-node 1.30 (only `deviceId`).
 */
function memoryOptions(provider: Provider): ort.InferenceSession.SessionOptions {
  if (provider !== "cuda") return { enableMemPattern: false };
  return {
    enableMemPattern: false,
    extra: { session: { use_device_allocator_for_initializers: "1" } },
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
