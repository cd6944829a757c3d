/**
 * Keeps one inference client warm for a long-running service: started once (the warm load), handed
 * to every job, and replaced when its process dies — in the background right after a crash, or at
 * the latest by the next {@linkcode InferenceEngine.acquire}. A job that was running on the dead
 * process fails on its own (its pending `run` rejects with `InferenceWorkerError`); the engine only
 * makes sure the next job gets a live one.
 *
 * Memory: ONNX Runtime's CPU arena keeps the peak of the largest run for the life of a session
 * (onnxruntime-node can neither shrink it nor is it faster without it: docs/gpu.md), so a job run
 * through {@linkcode InferenceEngine.use} that the caller deems large and that grew the inference
 * process's resident memory by more than {@linkcode RECYCLE_GROWTH} is followed by a fresh process:
 * the old one is closed once no job uses it, which returns all of its memory at once, and the next
 * job waits for the replacement to load.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "../runtime/mod.ts";
 * import { InferenceEngine } from "./inference_engine.ts";
 * const engine = new InferenceEngine(() => InferenceClient.start({ modelDir, provider: "cpu" }));
 * await engine.acquire(); // warm load; `engine.ready` is true from here on
 * ```
 *
 * @module
 */

import type { NetworkRunner } from "../generate.ts";

/** What the engine needs of a client (`InferenceClient` has it all). */
export interface EngineClient extends NetworkRunner {
  /** False once the process has stopped. */
  readonly alive: boolean;
  /** Resolves when the process stops, with why (`reason` "crashed", "closed", …). */
  readonly exited: Promise<{ readonly reason: string; readonly message: string }>;
  close(): Promise<void>;
  /** The process's resident memory (without it, large jobs are never followed by a recycle). */
  stats?(): Promise<{ readonly rssBytes: number }>;
}

/** Lifecycle notices, for the service's log. */
export type EngineNotice =
  | { readonly type: "loaded"; readonly ms: number; readonly restart: boolean }
  | { readonly type: "worker_stopped"; readonly reason: string; readonly message: string }
  | { readonly type: "load_failed"; readonly message: string }
  | {
    readonly type: "recycling";
    /** Resident memory of the process before and after the large job that grew it. */
    readonly rssBeforeBytes: number;
    readonly rssAfterBytes: number;
  };

/** Options of {@linkcode InferenceEngine.use}. */
export interface UseOptions {
  /**
   * Asked when the job has ended (done or failed): was it large enough that the memory it left
   * in the process should be returned? Only then is the process's memory compared.
   */
  readonly large?: () => boolean;
}

/**
 * Growth of the inference process's resident memory over a large job, as a fraction of what it
 * was before, above which the process is recycled: the bound on idle memory after a large
 * job (20 %). Below 64 MiB of growth nothing is recycled.
 */
export const RECYCLE_GROWTH = 0.2;
const RECYCLE_FLOOR_BYTES = 64 * 1024 ** 2;

/** One warm client, restarted after a crash; see the module doc. */
export class InferenceEngine<C extends EngineClient = EngineClient> {
  readonly #start: () => Promise<C>;
  readonly #notify: (notice: EngineNotice) => void;
  #current?: C;
  #starting?: Promise<C>;
  #loads = 0;
  #closed = false;
  /** The last start failed (cleared by the next that succeeds). */
  #failed = false;
  /** Jobs running in `use`, per client. */
  readonly #users = new Map<C, number>();
  /** A client to be closed once its last job ends; `acquire` waits for its replacement. */
  #retiring?: { readonly client: C; readonly done: Promise<void>; readonly resolve: () => void };

  /**
   * @param start starts a fresh client and resolves once its sessions are loaded
   * @param notify receives lifecycle notices (loaded, worker stopped, load failed)
   */
  constructor(start: () => Promise<C>, notify: (notice: EngineNotice) => void = () => {}) {
    this.#start = start;
    this.#notify = notify;
  }

  /**
   * What `/readyz` reports: a client has loaded and the engine can serve — its client is alive, or
   * its replacement after a crash or a recycle is starting (jobs wait for it, as for a busy slot:
   * a load balancer need not take the instance out for those seconds). False before the first
   * load, after a failed start (until one succeeds) and once closed.
   */
  get ready(): boolean {
    if (this.#closed || this.#loads === 0 || this.#failed) return false;
    return this.#current?.alive === true || this.#starting !== undefined ||
      this.#retiring !== undefined;
  }

  /** The live client, if any (no start). */
  get current(): C | undefined {
    return this.#current?.alive ? this.#current : undefined;
  }

  /**
   * The live client; starts one (once, however many callers wait) when there is none or the last
   * one died.
   *
   * @throws whatever the start function throws (e.g. `InferenceWorkerError` "failedToStart");
   * the next call tries again.
   */
  acquire(): Promise<C> {
    if (this.#closed) return Promise.reject(new Error("The inference engine is closed"));
    if (this.#retiring) return this.#retiring.done.then(() => this.acquire());
    if (this.#current?.alive) return Promise.resolve(this.#current);
    this.#starting ??= this.#load().finally(() => this.#starting = undefined);
    return this.#starting;
  }

  /**
   * Runs `job` on the live client (see {@linkcode acquire}). When `options.large()` says yes
   * after the job and the process's resident memory grew by more than {@linkcode RECYCLE_GROWTH}
   * during it, the process is replaced as soon as no other job uses it.
   */
  async use<T>(job: (client: C) => Promise<T>, options: UseOptions = {}): Promise<T> {
    const client = await this.acquire();
    this.#users.set(client, (this.#users.get(client) ?? 0) + 1);
    const measure = options.large && client.stats
      ? () => client.stats!().then((s) => s.rssBytes, () => undefined)
      : undefined;
    const before = measure ? await measure() : undefined;
    try {
      return await job(client);
    } finally {
      let after: number | undefined;
      if (before !== undefined && client.alive && options.large!()) after = await measure!();
      const users = this.#users.get(client)! - 1;
      if (users === 0) this.#users.delete(client);
      else this.#users.set(client, users);
      if (
        after !== undefined && after > before! * (1 + RECYCLE_GROWTH) &&
        after - before! > RECYCLE_FLOOR_BYTES && this.#current === client && !this.#retiring
      ) {
        this.#notify({ type: "recycling", rssBeforeBytes: before!, rssAfterBytes: after });
        let resolve!: () => void;
        const done = new Promise<void>((r) => resolve = r);
        this.#retiring = { client, done, resolve };
      }
      // In the background: the job's result need not wait for the old process to exit.
      if (this.#retiring?.client === client && users === 0) void this.#retire();
    }
  }

  /** Closes the retiring client and warms its replacement; waiting `acquire`s then go on. */
  async #retire(): Promise<void> {
    const retiring = this.#retiring!;
    if (this.#current === retiring.client) this.#current = undefined;
    await retiring.client.close().catch(() => {});
    this.#retiring = undefined;
    retiring.resolve();
    if (!this.#closed) this.acquire().catch(() => {});
  }

  /** Closes the client; `acquire` fails from here on. */
  async close(): Promise<void> {
    this.#closed = true;
    const starting = this.#starting;
    await this.#current?.close();
    if (starting) await starting.then((client) => client.close(), () => {});
  }

  async #load(): Promise<C> {
    const started = performance.now();
    let client: C;
    try {
      client = await this.#start();
    } catch (error) {
      this.#failed = true;
      this.#notify({ type: "load_failed", message: messageOf(error) });
      throw error;
    }
    this.#failed = false;
    if (this.#closed) {
      await client.close();
      throw new Error("The inference engine was closed while loading");
    }
    this.#current = client;
    this.#notify({
      type: "loaded",
      ms: Math.round(performance.now() - started),
      restart: this.#loads++ > 0,
    });
    client.exited.then((exit) => {
      if (this.#closed || this.#retiring?.client === client) return;
      this.#notify({ type: "worker_stopped", reason: exit.reason, message: exit.message });
      // Warm the replacement now rather than in the next job; a failure is retried by acquire().
      if (this.#current === client) this.acquire().catch(() => {});
    });
    return client;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
