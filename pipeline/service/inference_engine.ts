/**
 * Keeps one inference client warm for a long-running service: started once (the warm load), handed
 * to every job, and replaced when its process dies — in the background right after a crash, or at
 * the latest by the next {@linkcode InferenceEngine.acquire}. A job that was running on the dead
 * process fails on its own (its pending `run` rejects with `InferenceWorkerError`); the engine only
 * makes sure the next job gets a live one.
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
  /** False once the worker has stopped. */
  readonly alive: boolean;
  /** Resolves when the worker stops, with why (`reason` "crashed", "closed", …). */
  readonly exited: Promise<{ readonly reason: string; readonly message: string }>;
  close(): Promise<void>;
}

/** Lifecycle notices, for the service's log. */
export type EngineNotice =
  | { readonly type: "loaded"; readonly ms: number; readonly restart: boolean }
  | { readonly type: "worker_stopped"; readonly reason: string; readonly message: string }
  | { readonly type: "load_failed"; readonly message: string };

/** One warm client, restarted after a crash; see the module doc. */
export class InferenceEngine<C extends EngineClient = EngineClient> {
  readonly #start: () => Promise<C>;
  readonly #notify: (notice: EngineNotice) => void;
  #current?: C;
  #starting?: Promise<C>;
  #loads = 0;
  #closed = false;

  /**
   * @param start starts a fresh client and resolves once its sessions are loaded
   * @param notify receives lifecycle notices (loaded, worker stopped, load failed)
   */
  constructor(start: () => Promise<C>, notify: (notice: EngineNotice) => void = () => {}) {
    this.#start = start;
    this.#notify = notify;
  }

  /** True while a loaded client is alive (what `/readyz` reports). */
  get ready(): boolean {
    return !this.#closed && this.#current !== undefined && this.#current.alive;
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
    if (this.#current?.alive) return Promise.resolve(this.#current);
    this.#starting ??= this.#load().finally(() => this.#starting = undefined);
    return this.#starting;
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
      this.#notify({ type: "load_failed", message: messageOf(error) });
      throw error;
    }
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
      if (this.#closed) return;
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
