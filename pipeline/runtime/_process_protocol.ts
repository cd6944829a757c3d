/**
 * The messages between {@linkcode InferenceClient} and its inference process, and how they travel
 * over a pipe (the child's stdin and stdout). No ONNX Runtime here: the client imports this
 * module in the service's process.
 *
 * One message is one frame:
 *
 * | bytes | what |
 * |---|---|
 * | 0..4 | magic `SVD1` (catches anything else that wrote to the pipe) |
 * | 4..8 | header length H, uint32 little-endian |
 * | 8..16 | body length B, float64 little-endian (a body may pass 4 GiB) |
 * | 16.. | the header, H bytes of UTF-8 JSON (type, ids, names, dims, errors), zero-padded to 8 |
 * | then | the body: each tensor of the header's `tensors` in order, `numel(dims)` float32 values |
 *
 * Tensors never go through JSON: their bytes are written from the caller's `Float32Array`s and
 * read into one buffer, of which each output is a view. Both ends run on the same machine, so
 * float32 values travel in its byte order.
 *
 * @module
 */

import type { GraphName } from "../model_json/mod.ts";
import { numel, type Tensor } from "../tensor.ts";
import type { OnnxSessionOptions, Provider } from "./onnx_session.ts";

/** A graph to load: its name and absolute `.onnx` path. */
export interface GraphToLoad {
  readonly name: GraphName;
  readonly path: string;
}

/** An error as it crosses the process boundary (name, message and stack survive). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly cause?: string;
}

/** How a test asks the inference process to die (see `InferenceClient.crashForTesting`). */
export type CrashKind = "throw" | "exit" | "abort" | "segfault";

/** The names and dims of a message's tensors, in body order. */
export interface TensorHeader {
  readonly name: string;
  readonly dims: readonly number[];
}

/** Messages from the client to the inference process (tensors travel in the body). */
export type ProcessRequest =
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
  | { readonly type: "run"; readonly id: number; readonly graph: GraphName }
  | { readonly type: "stats"; readonly id: number }
  | { readonly type: "release" }
  /** Test hook: die as a crash would (an uncaught error, an exit, abort(), a segfault). */
  | { readonly type: "crash"; readonly kind: CrashKind; readonly message: string }
  /** Test hook: hold the process's thread in native code for `seconds`, as a long network call does. */
  | { readonly type: "block"; readonly seconds: number }
  /** Test hook: write `text` to file descriptor 1 from native code, as ONNX Runtime may. */
  | { readonly type: "print"; readonly text: string };

/** Messages from the inference process to the client. */
export type ProcessResponse =
  | {
    readonly type: "loaded";
    readonly loadMs: Partial<Record<GraphName, number>>;
    readonly rssBytes: number;
  }
  | { readonly type: "loadFailed"; readonly error: SerializedError }
  | { readonly type: "result"; readonly id: number }
  | { readonly type: "runFailed"; readonly id: number; readonly error: SerializedError }
  | { readonly type: "stats"; readonly id: number; readonly rssBytes: number }
  | { readonly type: "released" };

/** A message and its tensors. */
export interface Frame<M> {
  readonly message: M;
  readonly tensors: Record<string, Tensor>;
}

/** The first four bytes of every frame: "SVD1". */
export const FRAME_MAGIC = 0x31445653;
const PREFIX_BYTES = 16;
/** Headers are small (names, dims, an error's stack); anything larger is not ours. */
const MAX_HEADER_BYTES = 1 << 20;

/** The stream ended or held something that is not a frame. */
export class FrameError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameError";
  }
}

/**
 * The chunks of one frame: a prefix with the header, then each tensor's bytes as a view of its
 * own data (no copy). Write them in order.
 */
export function encodeFrame<M>(message: M, tensors: Record<string, Tensor> = {}): Uint8Array[] {
  const entries = Object.entries(tensors);
  const header = new TextEncoder().encode(JSON.stringify({
    message,
    tensors: entries.map(([name, t]): TensorHeader => ({ name, dims: t.dims })),
  }));
  let bodyBytes = 0;
  for (const [name, t] of entries) {
    if (t.data.length !== numel(t.dims)) {
      throw new RangeError(`Tensor "${name}" has ${t.data.length} values for dims [${t.dims}]`);
    }
    bodyBytes += t.data.byteLength;
  }
  const headerPadded = Math.ceil(header.length / 8) * 8;
  const prefix = new Uint8Array(PREFIX_BYTES + headerPadded);
  const view = new DataView(prefix.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint32(4, header.length, true);
  view.setFloat64(8, bodyBytes, true);
  prefix.set(header, PREFIX_BYTES);
  return [
    prefix,
    ...entries.map(([, t]) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
}

/**
 * Reads frames from a byte stream. With a BYOB reader (pipes of `Deno.Command`, `Deno.stdin`)
 * each body is read straight into the buffer its tensors are views of.
 */
export class FrameReader {
  readonly #byob?: ReadableStreamBYOBReader;
  readonly #reader?: ReadableStreamDefaultReader<Uint8Array>;
  /** Bytes read past the last frame (default reader only). */
  #left: Uint8Array = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    try {
      this.#byob = stream.getReader({ mode: "byob" });
    } catch {
      this.#reader = stream.getReader();
    }
  }

  /**
   * The next frame, or undefined at a clean end of the stream (between frames).
   *
   * @throws {FrameError} the stream ended inside a frame or held something else
   */
  async next<M>(): Promise<Frame<M> | undefined> {
    const prefix = await this.#fill(new Uint8Array(PREFIX_BYTES), true);
    if (prefix === undefined) return undefined;
    const view = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES);
    const magic = view.getUint32(0, true);
    const headerBytes = view.getUint32(4, true);
    const bodyBytes = view.getFloat64(8, true);
    if (magic !== FRAME_MAGIC) {
      const text = new TextDecoder().decode(prefix).replace(/[^\x20-\x7e]/g, ".");
      throw new FrameError(`Not a frame (it starts with "${text}")`);
    }
    if (
      headerBytes > MAX_HEADER_BYTES || !Number.isSafeInteger(bodyBytes) || bodyBytes < 0 ||
      bodyBytes % 4 !== 0
    ) {
      throw new FrameError(`A frame with a header of ${headerBytes} and a body of ${bodyBytes}`);
    }
    const padded = Math.ceil(headerBytes / 8) * 8;
    const headerRaw = (await this.#fill(new Uint8Array(padded), false))!;
    let header: { message: M; tensors: TensorHeader[] };
    try {
      header = JSON.parse(new TextDecoder().decode(headerRaw.subarray(0, headerBytes)));
    } catch (cause) {
      throw new FrameError("A frame header is not JSON", { cause });
    }
    const body = (await this.#fill(new Uint8Array(bodyBytes), false))!;
    const tensors: Record<string, Tensor> = {};
    let offset = 0;
    for (const { name, dims } of header.tensors) {
      const n = numel(dims);
      if (offset + n * 4 > bodyBytes) throw new FrameError(`Tensor "${name}" overruns its frame`);
      tensors[name] = { dims, data: new Float32Array(body.buffer, body.byteOffset + offset, n) };
      offset += n * 4;
    }
    if (offset !== bodyBytes) {
      throw new FrameError(`A frame body of ${bodyBytes} bytes holds ${offset} bytes of tensors`);
    }
    return { message: header.message, tensors };
  }

  /** Stops reading (the stream is cancelled). */
  async cancel(): Promise<void> {
    await (this.#byob ?? this.#reader)!.cancel().catch(() => {});
  }

  /**
   * Fills `target` from the stream. Undefined when the stream ends before the first byte and
   * `endOk`; a FrameError when it ends anywhere else.
   */
  async #fill(target: Uint8Array, endOk: boolean): Promise<Uint8Array | undefined> {
    let buffer = target;
    const length = target.length;
    let filled = 0;
    if (this.#reader) {
      const take = Math.min(this.#left.length, buffer.length);
      buffer.set(this.#left.subarray(0, take));
      this.#left = this.#left.subarray(take);
      filled = take;
    }
    while (filled < length) {
      if (this.#byob) {
        const { value, done } = await this.#byob.read(
          new Uint8Array(buffer.buffer, buffer.byteOffset + filled, length - filled),
        );
        if (value) {
          // The read detached the buffer and returns it under a new handle.
          buffer = new Uint8Array(value.buffer, value.byteOffset - filled, length);
          filled += value.length;
        }
        if (done) break;
      } else {
        const { value, done } = await this.#reader!.read();
        if (done) break;
        const take = Math.min(value.length, length - filled);
        buffer.set(value.subarray(0, take), filled);
        filled += take;
        if (take < value.length) this.#left = value.subarray(take);
      }
    }
    if (filled === length) return buffer;
    if (filled === 0 && endOk) return undefined;
    throw new FrameError(`The stream ended inside a frame (${filled} of ${length} bytes)`);
  }
}

/** Writes frames in order, one at a time, whoever calls. */
export class FrameWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #last: Promise<void> = Promise.resolve();

  constructor(stream: WritableStream<Uint8Array>) {
    this.#writer = stream.getWriter();
  }

  /**
   * Queues one frame; resolves when all of its bytes were taken by the stream.
   *
   * @throws what the stream throws (the reader has gone)
   */
  write<M>(message: M, tensors: Record<string, Tensor> = {}): Promise<void> {
    const chunks = encodeFrame(message, tensors);
    const done = this.#last.then(async () => {
      for (const chunk of chunks) if (chunk.length > 0) await this.#writer.write(chunk);
    });
    this.#last = done.catch(() => {});
    return done;
  }

  /** Closes the stream after the queued frames. */
  async close(): Promise<void> {
    await this.#last;
    await this.#writer.close().catch(() => {});
  }
}

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
