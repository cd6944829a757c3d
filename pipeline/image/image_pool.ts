/**
 * Image preparation off the main thread: a small pool of module Workers (`image_worker.ts`) that
 * run `prepareImage` (validate, decode, size policy, tensor) or `decodeImage` alone (validate),
 * so a 16 Mpx upload never stalls HTTP, SSE or timers.
 *
 * - **Bounded**: at most `workers` run at once, each holding one decoded image; the rest wait in
 *   order. A waiting request holds only a reference to its bytes; the copy handed (transferred)
 *   to a worker is made when it starts, and the tensor comes back transferred, not copied.
 * - **Isolated**: a worker that crashes (an uncaught error) or runs past `timeoutMs` is
 *   terminated; only its request fails ({@linkcode ImageWorkerError}), and the next request gets
 *   a fresh worker.
 * - **Cancellable**: a request's `signal` removes it from the queue, or terminates the worker
 *   running it; it rejects with `GenerationCancelledError`.
 * - **Returns memory**: a worker idle for `idleMs` is terminated.
 *
 * Errors are the ones `prepareImage` throws, rebuilt as the same classes: `ImageTooLargeError`
 * (413), `CorruptImageError` (422), `UnsupportedImageError` (415), `RangeError` for a bad target
 * size; plus {@linkcode ImageWorkerError} when the worker itself failed.
 *
 * @example
 * ```ts
 * import { ImagePool } from "./image_pool.ts";
 * const pool = new ImagePool({ workers: 2 });
 * const bytes = Deno.readFileSync("tests/fixtures/tiny/input.png");
 * // at the door: is the upload a whole image within the limit? (the full decode, off-thread)
 * const info = await pool.validate(bytes, { maxPixels: 16e6 }); // { format: "png", width: 128, height: 64 }
 * // in the job: the model's input tensor
 * const prepared = await pool.prepare(bytes, {
 *   width: 1024,
 *   height: 576,
 *   policy: "cover",
 *   maxPixels: 16e6,
 * });
 * prepared.tensor.dims; // [1, 3, 576, 1024]
 * await pool.close();
 * ```
 *
 * @module
 */

import { GenerationCancelledError } from "../errors.ts";
import {
  deserializeError,
  type ImageInfo,
  type ImageWorkerRequest,
  type ImageWorkerResponse,
} from "./_image_worker_protocol.ts";
import type { PreparedImage, PrepareImageOptions } from "./prepare_image.ts";

export type { ImageInfo } from "./_image_worker_protocol.ts";

/** Why a request failed without an answer from its worker. */
export type ImageWorkerFailure = "crashed" | "timedOut" | "closed";

/**
 * The image worker failed the request itself: it crashed, ran past the pool's `timeoutMs`, or
 * the pool was closed. Says nothing about the image being valid; an HTTP service answers 503.
 *
 * @example
 * ```ts
 * import { ImageWorkerError } from "./image_pool.ts";
 * new ImageWorkerError("timedOut", "Image preparation took longer than 60000 ms").reason; // "timedOut"
 * ```
 */
export class ImageWorkerError extends Error {
  readonly reason: ImageWorkerFailure;
  constructor(reason: ImageWorkerFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageWorkerError";
    this.reason = reason;
  }
}

/** Options of {@linkcode ImagePool}. */
export interface ImagePoolOptions {
  /** Workers at most, hence images being decoded at once; default {@linkcode defaultImageWorkers}. */
  readonly workers?: number;
  /** A request running longer fails with {@linkcode ImageWorkerError} "timedOut"; default 60 s. */
  readonly timeoutMs?: number;
  /** A worker idle this long is terminated, returning its memory; default 30 s. */
  readonly idleMs?: number;
}

/** Per-request options: cancellation. */
export interface ImageRequestOptions {
  /** Aborting removes the request from the queue or terminates its worker. */
  readonly signal?: AbortSignal;
}

/** Options of {@linkcode ImagePool.validate}. */
export interface ValidateImageOptions extends ImageRequestOptions {
  readonly maxPixels: number;
  /** ffmpeg for WebP; default `FFMPEG_PATH`, then `ffmpeg` from PATH. */
  readonly ffmpegPath?: string;
}

/** What the pool counts, for metrics and tests. */
export interface ImagePoolStats {
  /** Workers alive (busy or idle). */
  readonly workers: number;
  /** Requests running. */
  readonly running: number;
  /** Requests waiting for a worker. */
  readonly queued: number;
}

/**
 * One worker per core but one, at most 2: decoding is one thread's work, and inference needs the
 * other cores. A busy worker holds one image: about 10 bytes a pixel for PNG, 29 for a
 * progressive JPEG (`deno task bench image-prep`), so ~0.5 GiB for a 16 Mpx upload at most.
 */
export function defaultImageWorkers(): number {
  return Math.max(1, Math.min(2, (navigator.hardwareConcurrency ?? 2) - 1));
}

type Payload =
  | { readonly type: "prepare"; readonly bytes: Uint8Array; readonly options: PrepareImageOptions }
  | {
    readonly type: "validate";
    readonly bytes: Uint8Array;
    readonly options: ValidateImageOptions;
  }
  | { readonly type: "crash" | "hang" };

interface Request {
  readonly id: number;
  readonly payload: Payload;
  readonly signal?: AbortSignal;
  readonly resolve: (value: PreparedImage | ImageInfo) => void;
  readonly reject: (error: unknown) => void;
  onAbort?: () => void;
  slot?: Slot;
  timer?: ReturnType<typeof setTimeout>;
}

interface Slot {
  readonly worker: Worker;
  request?: Request;
  idleTimer?: ReturnType<typeof setTimeout>;
}

/** A pool of image workers; see the module doc. Call {@linkcode ImagePool.close} when done. */
export class ImagePool {
  readonly #maxWorkers: number;
  readonly #timeoutMs: number;
  readonly #idleMs: number;
  readonly #slots = new Set<Slot>();
  readonly #queue: Request[] = [];
  #nextId = 1;
  #closed = false;

  constructor(options: ImagePoolOptions = {}) {
    const workers = options.workers ?? defaultImageWorkers();
    const timeoutMs = options.timeoutMs ?? 60_000;
    const idleMs = options.idleMs ?? 30_000;
    if (!(Number.isInteger(workers) && workers >= 1)) {
      throw new RangeError(`workers must be a positive integer, got ${workers}`);
    }
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
    if (!(idleMs >= 0)) throw new RangeError(`idleMs must be ≥ 0, got ${idleMs}`);
    this.#maxWorkers = workers;
    this.#timeoutMs = timeoutMs;
    this.#idleMs = idleMs;
  }

  /**
   * `prepareImage` in a worker: validates and decodes `bytes`, applies the size policy, returns
   * the `[1, 3, H, W]` tensor in [-1, 1]. `bytes` is copied when a worker takes the request;
   * the caller's array is left as it is.
   *
   * @throws {ImageTooLargeError | CorruptImageError | UnsupportedImageError} for the image
   * @throws {RangeError} for a target size that is not a positive multiple of 64
   * @throws {ImageWorkerError} when the worker crashed, timed out, or the pool was closed
   * @throws {GenerationCancelledError} when `options.signal` aborted
   */
  prepare(
    bytes: Uint8Array,
    options: PrepareImageOptions & ImageRequestOptions,
  ): Promise<PreparedImage> {
    return this.#submit({ type: "prepare", bytes, options }, options.signal) as Promise<
      PreparedImage
    >;
  }

  /**
   * `decodeImage` in a worker, keeping only the answer: resolves when `bytes` is a whole PNG,
   * JPEG or WebP within `maxPixels` (every byte checked, every pixel decoded), with its format
   * and size. What an HTTP service calls before it accepts an upload.
   *
   * @throws as {@linkcode ImagePool.prepare}, without the `RangeError`
   */
  validate(bytes: Uint8Array, options: ValidateImageOptions): Promise<ImageInfo> {
    return this.#submit({ type: "validate", bytes, options }, options.signal) as Promise<
      ImageInfo
    >;
  }

  /** Test hook: a request whose worker crashes ("crash") or never answers ("hang"). */
  failForTesting(type: "crash" | "hang", options: ImageRequestOptions = {}): Promise<unknown> {
    return this.#submit({ type }, options.signal);
  }

  /** Workers, running and queued requests now. */
  get stats(): ImagePoolStats {
    let running = 0;
    for (const slot of this.#slots) if (slot.request) running++;
    return { workers: this.#slots.size, running, queued: this.#queue.length };
  }

  /**
   * Terminates every worker. Running and queued requests reject with
   * {@linkcode ImageWorkerError} "closed", as does every later call.
   */
  close(): Promise<void> {
    this.#closed = true;
    const closed = () => new ImageWorkerError("closed", "The image pool is closed");
    for (const request of this.#queue.splice(0)) this.#settle(request, closed());
    for (const slot of [...this.#slots]) {
      if (slot.request) this.#settle(slot.request, closed());
      this.#retire(slot);
    }
    return Promise.resolve();
  }

  #submit(payload: Payload, signal: AbortSignal | undefined): Promise<PreparedImage | ImageInfo> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new ImageWorkerError("closed", "The image pool is closed"));
        return;
      }
      if (signal?.aborted) {
        reject(cancelled(signal));
        return;
      }
      const request: Request = { id: this.#nextId++, payload, signal, resolve, reject };
      if (signal) {
        request.onAbort = () => {
          const queued = this.#queue.indexOf(request);
          if (queued >= 0) this.#queue.splice(queued, 1);
          const slot = request.slot;
          this.#settle(request, cancelled(signal));
          if (slot) {
            this.#retire(slot); // the only way to stop synchronous decoding
            this.#dispatch();
          }
        };
        signal.addEventListener("abort", request.onAbort, { once: true });
      }
      this.#queue.push(request);
      this.#dispatch();
    });
  }

  /** Hands queued requests to idle workers, starting workers up to the limit. */
  #dispatch(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      let slot = [...this.#slots].find((s) => !s.request);
      if (!slot) {
        if (this.#slots.size >= this.#maxWorkers) return;
        slot = this.#spawn();
      }
      this.#start(slot, this.#queue.shift()!);
    }
  }

  #start(slot: Slot, request: Request): void {
    clearTimeout(slot.idleTimer);
    slot.request = request;
    request.slot = slot;
    request.timer = setTimeout(() => {
      this.#settle(
        request,
        new ImageWorkerError(
          "timedOut",
          `Image preparation took longer than ${this.#timeoutMs} ms; its worker was stopped`,
        ),
      );
      this.#retire(slot);
      this.#dispatch();
    }, this.#timeoutMs);
    const { payload } = request;
    if (payload.type !== "prepare" && payload.type !== "validate") {
      slot.worker.postMessage({ type: payload.type, id: request.id } satisfies ImageWorkerRequest);
      return;
    }
    // the worker's own copy, transferred: the caller's bytes stay usable
    const bytes = payload.bytes.slice();
    const { signal: _signal, ...options } = payload.options;
    slot.worker.postMessage(
      { type: payload.type, id: request.id, bytes, options } as ImageWorkerRequest,
      [bytes.buffer],
    );
  }

  #spawn(): Slot {
    const worker = new Worker(new URL("./image_worker.ts", import.meta.url), {
      type: "module",
      name: "image",
    });
    const slot: Slot = { worker };
    worker.onmessage = (event: MessageEvent<ImageWorkerResponse>) => this.#answer(slot, event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault(); // a crash of the worker is not a crash of this process
      this.#fail(slot, `Image worker crashed: ${event.message}`, event.error ?? event);
    };
    worker.onmessageerror = (event: MessageEvent) =>
      this.#fail(slot, "Image worker sent a message that cannot be read", event);
    this.#slots.add(slot);
    return slot;
  }

  #answer(slot: Slot, response: ImageWorkerResponse): void {
    const request = slot.request;
    if (!request || request.id !== response.id) return; // settled already (timed out, cancelled)
    slot.request = undefined;
    if (response.type === "prepared") this.#settle(request, undefined, response.image);
    else if (response.type === "validated") this.#settle(request, undefined, response.info);
    else this.#settle(request, deserializeError(response.error));
    this.#idle(slot);
    this.#dispatch();
  }

  #fail(slot: Slot, message: string, cause: unknown): void {
    if (slot.request) {
      this.#settle(slot.request, new ImageWorkerError("crashed", message, { cause }));
    }
    this.#retire(slot);
    this.#dispatch();
  }

  #idle(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    const timer = setTimeout(() => {
      if (!slot.request) this.#retire(slot);
    }, this.#idleMs);
    Deno.unrefTimer(timer);
    slot.idleTimer = timer;
  }

  /** Terminates a worker and forgets it (a request it was running must be settled first). */
  #retire(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    slot.request = undefined;
    slot.worker.terminate();
    this.#slots.delete(slot);
  }

  #settle(request: Request, error?: unknown, value?: PreparedImage | ImageInfo): void {
    clearTimeout(request.timer);
    if (request.onAbort) request.signal?.removeEventListener("abort", request.onAbort);
    if (request.slot?.request === request) request.slot.request = undefined;
    request.slot = undefined;
    if (error !== undefined) request.reject(error);
    else request.resolve(value!);
  }
}

function cancelled(signal: AbortSignal): GenerationCancelledError {
  return new GenerationCancelledError("Image preparation cancelled", { cause: signal.reason });
}
