/**
 * The model the workers of a Redis deployment serve, as they publish it to Redis (`<prefix>:model`,
 * {@linkcode RedisJobQueue.publishModel}) so that `api`-role processes — which load no model and
 * need no model directory — check requests against it and fill them with its defaults, including
 * the default `decoding_t` the worker's GPU memory plan chose (`serviceDecodingT` in `main.ts`).
 *
 * What is stored is the worker's `model.json` (as the converter writes it) and that `decoding_t`,
 * so the API checks the published model by the model.json reader's own rules. An API that has a
 * `MODEL_DIR` of its own compares it with the published model ({@linkcode modelDisagreement}): the
 * same name and sampling defaults, `decoding_t` aside (the worker's GPU decides that one).
 *
 * A worker publishes at start, replacing what was there (the newest worker's model is the
 * deployment's), then every minute only if none is published (a Redis that lost its data). The key
 * has no expiry: workers scaled to zero leave it for the API.
 *
 * @module
 */

import type { SamplingDefaults } from "../../pipeline/config/mod.ts";
import { checkFields } from "../../pipeline/request/mod.ts";
import {
  formatModelJson,
  type ModelManifest,
  parseModelJson,
} from "../../pipeline/model_json/mod.ts";
import { errorMessage, type Log } from "../logging.ts";
import type { UploadModel } from "../multipart.ts";

/** The model a worker serves, as published. */
export interface PublishedModel {
  /** The worker's `model.json`. */
  readonly manifest: ModelManifest;
  /** The default `decoding_t` the worker chose (its GPU memory plan, or the model's default). */
  readonly decodingT: number;
  /** How the worker chose it, in words (for logs). */
  readonly decodingTSource: string;
  /** Who published it (host and process), for logs. */
  readonly publisher: string;
  /** When, in milliseconds since the epoch. */
  readonly publishedAt: number;
}

/** The stored JSON of `model`. */
export function encodePublishedModel(model: PublishedModel): string {
  return JSON.stringify({
    modelJson: formatModelJson(model.manifest),
    decodingT: model.decodingT,
    decodingTSource: model.decodingTSource,
    publisher: model.publisher,
    publishedAt: model.publishedAt,
  });
}

/**
 * The published model in `text`, checked: its `model.json` by the reader's rules, `decoding_t`
 * against its allowed range.
 *
 * @param where names the stored value in messages (`Redis key svd:model`).
 * @throws {SyntaxError} for a value that is not a published model.
 * @throws {ModelJsonError} for a `model.json` the reader refuses.
 */
export function decodePublishedModel(text: string, where: string): PublishedModel {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new SyntaxError(`${where} is not a published model: not JSON`, { cause });
  }
  const field = (name: string, kind: "text" | "number") => {
    const got = value?.[name];
    if (kind === "text" ? typeof got !== "string" : typeof got !== "number") {
      throw new SyntaxError(`${where} is not a published model: "${name}" is not a ${kind}`);
    }
    return got as never;
  };
  const publisher: string = field("publisher", "text");
  const manifest = parseModelJson(
    field("modelJson", "text"),
    `${where} (model.json published by ${publisher})`,
  );
  const decodingT: number = field("decodingT", "number");
  try {
    checkFields({ decoding_t: decodingT }, "config"); // the request declaration's range
  } catch (cause) {
    throw new SyntaxError(`${where}: ${errorMessage(cause)}`, { cause });
  }
  return {
    manifest,
    decodingT,
    decodingTSource: field("decodingTSource", "text"),
    publisher,
    publishedAt: field("publishedAt", "number"),
  };
}

/** What requests are checked against and filled from: the name and the defaults, `decoding_t` the worker's. */
export function uploadModelOf(model: PublishedModel): UploadModel {
  return {
    name: model.manifest.name,
    sampling: { ...model.manifest.config.sampling, decodingT: model.decodingT },
  };
}

/** True when `a` and `b` give requests the same name and defaults (publisher and time aside). */
export function sameModel(a: PublishedModel, b: PublishedModel): boolean {
  return a.decodingT === b.decodingT && modelDisagreement(a.manifest, b) === undefined;
}

/**
 * How the model of an API's own `MODEL_DIR` (`local`) differs from the published one, in words;
 * undefined when they agree: the same name and sampling defaults (`decoding_t` aside).
 */
export function modelDisagreement(
  local: ModelManifest,
  published: PublishedModel,
): string | undefined {
  const differences: string[] = [];
  if (local.name !== published.manifest.name) {
    differences.push(`name "${local.name}" vs "${published.manifest.name}"`);
  }
  const mine = local.config.sampling;
  const theirs = published.manifest.config.sampling;
  for (const key of Object.keys(mine) as (keyof SamplingDefaults)[]) {
    if (key === "decodingT") continue;
    if (mine[key] !== theirs[key]) {
      differences.push(
        `sampling.${key} ${JSON.stringify(mine[key])} vs ${JSON.stringify(theirs[key])}`,
      );
    }
  }
  return differences.length === 0 ? undefined : differences.join(", ");
}

/** Where {@linkcode keepModelPublished} publishes (`RedisJobQueue`). */
export interface ModelPublisher {
  publishModel(model: PublishedModel, options: { replace: boolean }): Promise<boolean>;
}

/** How often a worker checks that its model is still published, by default: a minute. */
export const REPUBLISH_MS = 60_000;

/**
 * Publishes `model` now, replacing what was published (tried again every 2 s while Redis cannot
 * be reached), then every `intervalMs` stores it again only if none is published (Redis lost its
 * data). Call `stop()` on shutdown.
 */
export function keepModelPublished(
  target: ModelPublisher,
  model: PublishedModel,
  log: Log,
  intervalMs = REPUBLISH_MS,
): { stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let published = false;
  const publish = async () => {
    timer = undefined;
    try {
      const stored = await target.publishModel(model, { replace: !published });
      if (stored) {
        log.info(
          `published model ${model.manifest.name} for the API processes: default decoding_t ` +
            `${model.decodingT}`,
          { event: "model_published", model: model.manifest.name, decoding_t: model.decodingT },
        );
      }
      published = true;
    } catch (error) {
      if (!published) {
        log.warning(`cannot publish the model yet (retrying): ${errorMessage(error)}`, {
          event: "model_publish_failed",
          error: errorMessage(error),
        });
      }
    }
    if (!stopped) timer = setTimeout(publish, published ? intervalMs : 2000);
  };
  void publish();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
