/**
 * Where an `api`-role process gets the model it checks requests against: the model the workers
 * published to Redis (`jobs/published_model.ts`), read at start and every `pollMs`, so that a
 * worker of a new model (or a new GPU, with another default `decoding_t`) is followed without a
 * restart. When the process has a `MODEL_DIR` of its own, the published model must agree with it
 * (name and sampling defaults); otherwise the process does not serve and says why.
 *
 * - `waiting`: no worker has published a model yet (or the stored one cannot be read).
 * - `ready`: requests are checked against the published model.
 * - `mismatch`: the published model disagrees with `MODEL_DIR`.
 *
 * A published model that disappears (Redis restarted without its data) leaves the last one in
 * use until a worker publishes again. Each change is logged once (`model_published`,
 * `model_mismatch`, `model_unreadable`, `model_unpublished`).
 *
 * @module
 */

import type { ModelManifest } from "../pipeline/model_json/mod.ts";
import { StoreUnavailableError } from "./jobs/job_queue.ts";
import {
  modelDisagreement,
  type PublishedModel,
  sameModel,
  uploadModelOf,
} from "./jobs/published_model.ts";
import { errorMessage, type Log } from "./logging.ts";
import type { UploadModel } from "./multipart.ts";

/** What the API serves with; see the module doc. */
export type ApiModelState =
  | { readonly kind: "waiting"; readonly message: string }
  | { readonly kind: "ready"; readonly model: UploadModel; readonly published: PublishedModel }
  | { readonly kind: "mismatch"; readonly message: string; readonly published: PublishedModel };

/** Options of {@linkcode PublishedModelWatch}. */
export interface PublishedModelWatchOptions {
  /** Reads the published model (`RedisJobQueue.publishedModel`). */
  readonly read: () => Promise<PublishedModel | undefined>;
  /** The process's own `MODEL_DIR` model, when it has one. */
  readonly local?: { readonly dir: string; readonly manifest: ModelManifest };
  /** How often the published model is read again, in milliseconds (default 5000). */
  readonly pollMs?: number;
  readonly log: Log;
  /** Called after each change of state. */
  readonly onChange: (state: ApiModelState) => void;
}

const WAITING =
  "No model to check requests against yet: no worker has published its model to Redis " +
  "(a worker publishes it when it starts)";

/** Follows the published model; see the module doc. */
export class PublishedModelWatch {
  readonly #options: PublishedModelWatchOptions;
  #state: ApiModelState = { kind: "waiting", message: WAITING };
  #timer?: ReturnType<typeof setInterval>;
  #polling?: Promise<void>;
  /** The last problem logged, so that each is logged once. */
  #logged?: string;

  constructor(options: PublishedModelWatchOptions) {
    this.#options = options;
  }

  get state(): ApiModelState {
    return this.#state;
  }

  /** Reads the published model now, then every `pollMs`. */
  start(): Promise<void> {
    this.#timer ??= setInterval(() => void this.poll(), this.#options.pollMs ?? 5000);
    return this.poll();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Reads the published model once (one read at a time). */
  poll(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => this.#polling = undefined);
    return this.#polling;
  }

  async #poll(): Promise<void> {
    const { log, local } = this.#options;
    let published: PublishedModel | undefined;
    try {
      published = await this.#options.read();
    } catch (error) {
      if (error instanceof StoreUnavailableError) return; // /readyz says so; the next poll retries
      const message = `the model published in Redis cannot be used: ${errorMessage(error)}`;
      this.#once(message, () => log.error(message, { event: "model_unreadable", error: message }));
      if (this.#state.kind === "waiting") this.#set({ kind: "waiting", message });
      return;
    }
    const current = this.#state.kind === "waiting" ? undefined : this.#state.published;
    if (!published) {
      if (current) {
        const message = `the published model is gone from Redis (restarted without its data?); ` +
          `keeping ${current.manifest.name} until a worker publishes again`;
        this.#once(message, () => log.warning(message, { event: "model_unpublished" }));
      }
      return;
    }
    if (current && sameModel(current, published)) return;
    const disagreement = local ? modelDisagreement(local.manifest, published) : undefined;
    if (disagreement) {
      const message = `The model the workers published (${published.manifest.name}, by ` +
        `${published.publisher}) disagrees with MODEL_DIR ${local!.dir} ` +
        `(${local!.manifest.name}): ${disagreement}; this API serves no requests until they agree`;
      log.error(message, {
        event: "model_mismatch",
        published: published.manifest.name,
        local: local!.manifest.name,
        difference: disagreement,
      });
      this.#set({ kind: "mismatch", message, published });
      return;
    }
    const model = uploadModelOf(published);
    log.info(
      `serving model ${model.name} as published by ${published.publisher}: default decoding_t ` +
        `${published.decodingT} (${published.decodingTSource})`,
      {
        event: "model_published",
        model: model.name,
        publisher: published.publisher,
        decoding_t: published.decodingT,
        ...(local ? { model_dir: local.dir } : {}),
      },
    );
    this.#set({ kind: "ready", model, published });
  }

  #set(state: ApiModelState): void {
    this.#state = state;
    this.#logged = undefined;
    this.#options.onChange(state);
  }

  #once(message: string, write: () => void): void {
    if (this.#logged === message) return;
    this.#logged = message;
    write();
  }
}
