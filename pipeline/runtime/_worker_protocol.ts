/**
 * The messages between {@linkcode InferenceClient} and the inference worker, and the helpers both
 * sides use to move tensors and errors across. No ONNX Runtime here: the client imports this
 * module on the main thread.
 *
 * @module
 */

import type { GraphName } from "../convert/model_manifest.ts";
import type { Tensor } from "../tensor.ts";
import type { OnnxSessionOptions, Provider } from "./onnx_session.ts";

/** A graph to load: its name and absolute `.onnx` path. */
export interface GraphToLoad {
  readonly name: GraphName;
  readonly path: string;
}

/** An error as it crosses the worker boundary (name, message and stack survive). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly cause?: string;
}

/** Messages from the client to the worker. */
export type WorkerRequest =
  | {
    readonly type: "load";
    readonly graphs: readonly GraphToLoad[];
    readonly provider: Provider;
    readonly threads?: number;
    readonly optimization?: OnnxSessionOptions["optimization"];
    /**
     * Before answering `loaded`, check that the provider computes MultiHeadAttention right in
     * these dtypes (`assertFusedAttention`); empty or absent: no check.
     */
    readonly checkAttention?: readonly ("float32" | "float16")[];
  }
  | {
    readonly type: "run";
    readonly id: number;
    readonly graph: GraphName;
    readonly feeds: Record<string, Tensor>;
  }
  | { readonly type: "release" }
  /** Test hook: throw an uncaught error on the worker's event loop, as a crash would. */
  | { readonly type: "crash"; readonly message: string };

/** Messages from the worker to the client. */
export type WorkerResponse =
  | { readonly type: "loaded"; readonly loadMs: Partial<Record<GraphName, number>> }
  | { readonly type: "loadFailed"; readonly error: SerializedError }
  | {
    readonly type: "result";
    readonly id: number;
    readonly outputs: Record<string, Tensor>;
  }
  | { readonly type: "runFailed"; readonly id: number; readonly error: SerializedError }
  | { readonly type: "released" };

/** Turns any thrown value into a {@linkcode SerializedError}. */
export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  const cause = error.cause === undefined
    ? undefined
    : error.cause instanceof Error
    ? error.cause.message
    : String(error.cause);
  return {
    name: error.name,
    message: error.message,
    ...(error.stack ? { stack: error.stack } : {}),
    ...(cause !== undefined ? { cause } : {}),
  };
}

/**
 * Buffers to transfer for `tensors`, replacing any tensor whose data is a view into a larger (or
 * shared) buffer by a copy of exactly its bytes, so that no unrelated data is detached or cloned.
 */
export function transferable(
  tensors: Record<string, Tensor>,
): [Record<string, Tensor>, ArrayBuffer[]] {
  const out: Record<string, Tensor> = {};
  const buffers = new Set<ArrayBuffer>();
  for (const [name, t] of Object.entries(tensors)) {
    const whole = t.data.buffer instanceof ArrayBuffer && t.data.byteOffset === 0 &&
      t.data.byteLength === t.data.buffer.byteLength && !buffers.has(t.data.buffer);
    const data = whole ? t.data : t.data.slice();
    buffers.add(data.buffer as ArrayBuffer);
    out[name] = { dims: t.dims, data };
  }
  return [out, [...buffers]];
}
