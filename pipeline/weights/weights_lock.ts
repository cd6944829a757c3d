/**
 * `weights.lock`: the published checkpoints this project converts, with where to get each one
 * and what its bytes must hash to.
 *
 * Format (JSON, so it needs no parser dependency):
 *
 * ```jsonc
 * {
 *   "$comment": ["free text, ignored"],
 *   "version": 1,
 *   "checkpoints": [
 *     {
 *       "name": "svd_xt",                  // [a-z0-9_]+, unique; what `deno task weights` takes
 *       "repo": "stabilityai/…",            // optional: the Hugging Face repository
 *       "url": "https://huggingface.co/…/resolve/main/svd_xt.safetensors",
 *                                           // or file://…, or a path relative to the lock file
 *       "file": "svd_xt.safetensors",       // file name under the models folder (no slashes)
 *       "bytes": 9559625980,                // or "unknown"
 *       "sha256": "b2652c…",                // 64 lowercase hex digits, or "unknown"
 *       "config": "configs/svd_xt.yaml",    // relative to the lock file
 *       "license": "…",
 *       "gated": true,                      // needs HF_TOKEN (sent as Authorization: Bearer)
 *       "provenance": { "bytes": "where the size comes from", "sha256": "where the hash comes from" },
 *       "note": "optional free text"
 *     }
 *   ]
 * }
 * ```
 *
 * A value is `"unknown"` when no public record gives it; such a file can only be downloaded
 * unverified, and the downloader prints the sha256 to pin.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { SafetensorsFile } from "../safetensors/reader.ts";
import type { DownloadOptions } from "./download.ts";

/** One published checkpoint. */
export interface LockEntry {
  readonly name: string;
  readonly repo?: string;
  readonly url: string;
  readonly file: string;
  readonly bytes: number | "unknown";
  readonly sha256: string | "unknown";
  readonly config: string;
  readonly license: string;
  readonly gated: boolean;
  readonly provenance: { readonly bytes: string; readonly sha256: string };
  readonly note?: string;
}

/** A parsed, validated lock file. */
export interface WeightsLock {
  /** Path the lock was read from; relative `url` and `config` values are resolved against its folder. */
  readonly path: string;
  readonly version: 1;
  readonly checkpoints: readonly LockEntry[];
}

const ENTRY_FIELDS = new Set([
  "name",
  "repo",
  "url",
  "file",
  "bytes",
  "sha256",
  "config",
  "license",
  "gated",
  "provenance",
  "note",
]);

/**
 * Reads and validates a lock file.
 *
 * @throws {SyntaxError} when the file is not JSON or a field is invalid (the message names the
 * entry and the field).
 */
export async function readWeightsLock(path = "weights.lock"): Promise<WeightsLock> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read weights lock "${path}": ${error instanceof Error ? error.message : error}`,
      {
        cause: error,
      },
    );
  }
  return parseWeightsLock(text, path);
}

/** Parses and validates lock-file text; `path` is used for messages and relative paths. */
export function parseWeightsLock(text: string, path = "weights.lock"): WeightsLock {
  const fail = (what: string): never => {
    throw new SyntaxError(`Cannot read weights lock "${path}": ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new SyntaxError(
      `Cannot read weights lock "${path}": not valid JSON (${(cause as Error).message})`,
      {
        cause,
      },
    );
  }
  if (!isRecord(raw)) return fail("the top level must be an object");
  for (const key of Object.keys(raw)) {
    if (!["$comment", "version", "checkpoints"].includes(key)) {
      fail(`unknown top-level field "${key}"`);
    }
  }
  if (raw.version !== 1) fail(`"version" must be 1, got ${JSON.stringify(raw.version)}`);
  if (!Array.isArray(raw.checkpoints) || raw.checkpoints.length === 0) {
    fail(`"checkpoints" must be a non-empty array`);
  }
  const checkpoints = (raw.checkpoints as unknown[]).map((item, i) => parseEntry(item, i, fail));
  const seen = new Set<string>();
  for (const entry of checkpoints) {
    if (seen.has(entry.name)) fail(`checkpoint name "${entry.name}" appears twice`);
    seen.add(entry.name);
  }
  return { path, version: 1, checkpoints };
}

function parseEntry(item: unknown, index: number, fail: (what: string) => never): LockEntry {
  if (!isRecord(item)) return fail(`checkpoints[${index}] must be an object`);
  const label = typeof item.name === "string"
    ? `checkpoint "${item.name}"`
    : `checkpoints[${index}]`;
  const bad = (field: string, rule: string): never =>
    fail(`${label} field "${field}" must be ${rule}, got ${JSON.stringify(item[field])}`);
  for (const key of Object.keys(item)) {
    if (!ENTRY_FIELDS.has(key)) fail(`${label} has unknown field "${key}"`);
  }
  const text = (field: string): string =>
    typeof item[field] === "string" && (item[field] as string).trim() !== ""
      ? item[field] as string
      : bad(field, "a non-empty string");

  const name = text("name");
  if (!/^[a-z0-9_]+$/.test(name)) bad("name", "lowercase letters, digits and _");
  const repo = item.repo === undefined ? undefined : text("repo");
  const url = text("url");
  const file = text("file");
  if (/[/\\]/.test(file) || file === "." || file === "..") {
    bad("file", "a file name without folders");
  }
  const bytes = item.bytes;
  if (
    bytes !== "unknown" && !(typeof bytes === "number" && Number.isSafeInteger(bytes) && bytes > 0)
  ) {
    bad("bytes", `a positive integer or "unknown"`);
  }
  const sha256 = item.sha256;
  if (sha256 !== "unknown" && !(typeof sha256 === "string" && /^[0-9a-f]{64}$/.test(sha256))) {
    bad("sha256", `64 lowercase hex digits or "unknown"`);
  }
  const config = text("config");
  const license = text("license");
  if (typeof item.gated !== "boolean") bad("gated", "true or false");
  const provenance = item.provenance;
  if (
    !isRecord(provenance) || typeof provenance.bytes !== "string" ||
    provenance.bytes.trim() === "" ||
    typeof provenance.sha256 !== "string" || provenance.sha256.trim() === ""
  ) {
    bad("provenance", `an object with non-empty "bytes" and "sha256" strings`);
  }
  const note = item.note === undefined ? undefined : text("note");
  return {
    name,
    repo,
    url,
    file,
    bytes: bytes as number | "unknown",
    sha256: sha256 as string,
    config,
    license,
    gated: item.gated as boolean,
    provenance: {
      bytes: (provenance as Record<string, string>).bytes,
      sha256: (provenance as Record<string, string>).sha256,
    },
    note,
  };
}

/** Names of the checkpoints in `lock`, in file order. */
export function lockNames(lock: WeightsLock): string[] {
  return lock.checkpoints.map((entry) => entry.name);
}

/**
 * The entry called `name`.
 *
 * @throws {RangeError} listing the valid names when there is none.
 */
export function lockEntry(lock: WeightsLock, name: string): LockEntry {
  const entry = lock.checkpoints.find((e) => e.name === name);
  if (!entry) {
    throw new RangeError(
      `Unknown checkpoint "${name}" in weights lock "${lock.path}"; valid names: ${
        lockNames(lock).join(", ")
      }`,
    );
  }
  return entry;
}

/** Everything `downloadVerified` needs for one lock entry, plus where its config lives. */
export interface DownloadPlan
  extends Pick<DownloadOptions, "url" | "destination" | "sha256" | "bytes" | "headers" | "check"> {
  readonly entry: LockEntry;
  /** The entry's config path, resolved against the lock file's folder. */
  readonly config: string;
}

/**
 * Plans the download of checkpoint `name` into `modelsDir/<file>`. The Hugging Face token
 * (`hfToken`, default the `HF_TOKEN` environment variable) is only attached to requests to
 * huggingface.co. The plan checks that the file is a readable safetensors file before accepting
 * it, which matters most for unverified downloads.
 *
 * @example
 * ```ts
 * import { downloadVerified } from "./download.ts";
 * import { readWeightsLock, resolveDownloadPlan } from "./weights_lock.ts";
 * const plan = resolveDownloadPlan(await readWeightsLock(), "svd_xt", "models");
 * await downloadVerified({ ...plan, onProgress: (done, total) => console.log(done, total) });
 * ```
 */
export function resolveDownloadPlan(
  lock: WeightsLock,
  name: string,
  modelsDir = "models",
  options: { readonly hfToken?: string } = {},
): DownloadPlan {
  const entry = lockEntry(lock, name);
  const base = dirname(lock.path);
  const remote = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry.url) || /^file:/i.test(entry.url);
  const url = remote || isAbsolute(entry.url) ? entry.url : join(base, entry.url);
  const token = "hfToken" in options ? options.hfToken : envToken();
  return {
    entry,
    url,
    destination: join(modelsDir, entry.file),
    sha256: entry.sha256,
    bytes: entry.bytes,
    headers: huggingFaceHeaders(url, token),
    check: assertSafetensors,
    config: isAbsolute(entry.config) ? entry.config : join(base, entry.config),
  };
}

/** `Authorization: Bearer <token>` for https://huggingface.co URLs when a token is given; else none. */
export function huggingFaceHeaders(url: string, token: string | undefined): Record<string, string> {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return {};
  }
  const isHub = host === "huggingface.co" || host.endsWith(".huggingface.co") || host === "hf.co";
  return isHub && token ? { Authorization: `Bearer ${token}` } : {};
}

/** Rejects a file whose safetensors header does not parse or does not fit the file. */
export async function assertSafetensors(path: string): Promise<void> {
  using _file = await SafetensorsFile.open(path);
}

function envToken(): string | undefined {
  try {
    return Deno.env.get("HF_TOKEN") || undefined;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
