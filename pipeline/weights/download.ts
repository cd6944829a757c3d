/**
 * Verified, resumable download of one large file (an SVD checkpoint is 4.8–9.6 GB).
 *
 * The bytes go to `<destination>.partial` while a sha256 is computed on the fly; only when the
 * byte count and the sha256 match is the file renamed to `destination`, so `destination` is
 * either absent or complete and verified. An interrupted download keeps its `.partial` and the
 * next call resumes it with `Range: bytes=N-` (hashing the kept bytes first); a file that fails
 * verification is deleted, since a corrupt file is not worth resuming.
 *
 * The source is an `http(s)://` URL, a `file://` URL or a plain path (local copies go through
 * the same hashing and checks).
 *
 * @example
 * ```ts
 * import { downloadVerified } from "./download.ts";
 * const result = await downloadVerified({
 *   url: "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/resolve/main/svd_xt.safetensors",
 *   destination: "models/svd_xt.safetensors",
 *   sha256: "b2652c23d64a1da5f14d55011b9b6dce55f2e72e395719f1cd1f8a079b00a451",
 *   bytes: 9_559_625_980,
 *   headers: { Authorization: `Bearer ${Deno.env.get("HF_TOKEN")}` },
 * });
 * result.resumedFrom; // bytes reused from an earlier, interrupted run
 * ```
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** Why a download failed; lets a CLI give the right hint. */
export type DownloadFailure =
  /** No sha256 is pinned and `allowUnverified` was not given. */
  | "unverified"
  /** The local source cannot be read, or the URL scheme is not supported. */
  | "source"
  /** The server answered with an error status or an unusable range. */
  | "http"
  /** The connection broke; the `.partial` is kept for the next run. */
  | "interrupted"
  /** The body ended early; the `.partial` is kept for the next run. */
  | "truncated"
  /** The source is larger or smaller than the pinned byte count. */
  | "size"
  /** The bytes do not hash to the pinned sha256; the `.partial` was deleted. */
  | "sha256"
  /** The `check` hook rejected the file (e.g. not a safetensors file); the `.partial` was deleted. */
  | "invalid"
  /** `destination` already exists and does not match the pins; it is left untouched. */
  | "exists";

/** A download that did not produce a verified file. `cause` holds the underlying error. */
export class DownloadError extends Error {
  readonly kind: DownloadFailure;
  constructor(kind: DownloadFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DownloadError";
    this.kind = kind;
  }
}

/** What to download and what it must hash to. */
export interface DownloadOptions {
  /** `https://…`, `http://…`, `file://…` or a plain file path. */
  readonly url: string;
  /** Final path; the file only appears there once verified. Parent folders are created. */
  readonly destination: string;
  /** Expected sha256 (64 hex digits), or `"unknown"` (then `allowUnverified` is required). */
  readonly sha256: string | "unknown";
  /** Expected size in bytes, or `"unknown"`. */
  readonly bytes: number | "unknown";
  /** Extra request headers, e.g. `Authorization: Bearer <HF_TOKEN>` for gated repositories. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Called after every chunk with the bytes on disk so far and the total when known. */
  readonly onProgress?: (done: number, total: number | undefined) => void;
  /** Aborting stops the transfer and rejects with the signal's reason; the `.partial` is kept. */
  readonly signal?: AbortSignal;
  /** Download even though `sha256` is `"unknown"`; the computed sha256 is logged for pinning. */
  readonly allowUnverified?: boolean;
  /** `fetch` to use (tests); default the global one. */
  readonly fetch?: typeof fetch;
  /** Extra check of the complete `.partial` before it is renamed (e.g. a safetensors header). */
  readonly check?: (path: string) => Promise<void>;
  /** Where the "pin this sha256" notice goes; default `console.error`. */
  readonly log?: (line: string) => void;
}

/** A verified (or, with `allowUnverified`, hashed) file at `path`. */
export interface DownloadResult {
  readonly path: string;
  /** sha256 of the file, lowercase hex. */
  readonly sha256: string;
  readonly bytes: number;
  /** Bytes that were already on disk and not transferred (a resumed `.partial`, or all of an
   * existing `destination`); 0 for a fresh download. */
  readonly resumedFrom: number;
  /** Whether `sha256` was checked against a pinned value. */
  readonly verified: boolean;
  /** Whether `destination` already existed and was only checked. */
  readonly reused: boolean;
}

/** Pins after validation: undefined where the caller said "unknown". */
interface Pins {
  readonly sha256: string | undefined;
  readonly bytes: number | undefined;
}

/** Bytes to append to the `.partial`, from offset `start`. */
interface SourceBody {
  readonly start: number;
  readonly total: number | undefined;
  readonly chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  cancel(): Promise<void>;
}

const CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Downloads `options.url` to `options.destination`, resuming an earlier `.partial`, and returns
 * only once the file's size and sha256 match the pins. If `destination` already exists it is
 * checked, not downloaded again.
 *
 * @throws {DownloadError} on any failure to produce a verified file (see `kind`).
 * @throws {TypeError} on malformed options.
 */
export async function downloadVerified(options: DownloadOptions): Promise<DownloadResult> {
  const pins = validateOptions(options);
  const name = basename(options.destination);
  options.signal?.throwIfAborted();
  if (!pins.sha256 && !options.allowUnverified) {
    throw new DownloadError(
      "unverified",
      `Cannot download "${name}": its sha256 is "unknown", so the file cannot be verified; ` +
        "allow an unverified download to fetch it and print the sha256 to pin",
    );
  }
  if (await exists(options.destination)) return await checkExisting(options, pins, name);
  await Deno.mkdir(dirname(options.destination), { recursive: true });

  const partial = `${options.destination}.partial`;
  let offset = (await exists(partial)) ? (await Deno.stat(partial)).size : 0;
  // A .partial longer than the whole file is garbage, not a prefix.
  if (pins.bytes !== undefined && offset > pins.bytes) offset = await removeFile(partial);
  const body = await openSource(options, pins, name, partial, offset);
  return await receive(options, pins, name, partial, body);
}

/** Streams `body` into the `.partial`, verifies it and renames it to `destination`. */
async function receive(
  options: DownloadOptions,
  pins: Pins,
  name: string,
  partial: string,
  body: SourceBody,
): Promise<DownloadResult> {
  const total = body.total ?? pins.bytes;
  if (pins.bytes !== undefined && body.total !== undefined && body.total !== pins.bytes) {
    await body.cancel();
    throw new DownloadError(
      "size",
      `Cannot download "${name}" from ${options.url}: the source has ${body.total} bytes, expected ${pins.bytes}`,
    );
  }
  const hash = createHash("sha256");
  let done = body.start;
  try {
    // Resuming: the kept bytes must be hashed before the new ones.
    if (body.start > 0) await hashFilePrefix(partial, body.start, hash, options.signal);
    using file = await Deno.open(partial, { write: true, create: true });
    await file.truncate(body.start);
    await file.seek(body.start, Deno.SeekMode.Start);
    options.onProgress?.(done, total);
    try {
      for await (const chunk of body.chunks) {
        if (pins.bytes !== undefined && done + chunk.length > pins.bytes) {
          throw new DownloadError(
            "size",
            `Cannot verify "${name}": the source sent more than the expected ${pins.bytes} bytes`,
          );
        }
        hash.update(chunk);
        await writeAll(file, chunk);
        done += chunk.length;
        options.onProgress?.(done, total);
      }
    } catch (error) {
      if (error instanceof DownloadError) throw error;
      if (options.signal?.aborted) throw options.signal.reason;
      throw new DownloadError(
        "interrupted",
        `Cannot download "${name}" from ${options.url}: transfer failed after ${done} of ${
          total ?? "?"
        } bytes (${errorText(error)}); kept "${partial}", run again to resume`,
        { cause: error },
      );
    }
    await file.syncData();
  } catch (error) {
    await body.cancel().catch(() => {});
    if (error instanceof DownloadError && error.kind === "size") await removeFile(partial);
    throw error;
  }

  if (total !== undefined && done < total) {
    throw new DownloadError(
      "truncated",
      `Cannot verify "${name}": truncated: got ${done} of ${total} bytes; kept "${partial}", run again to resume`,
    );
  }
  const sha256 = hash.digest("hex");
  if (pins.sha256 && sha256 !== pins.sha256) {
    await removeFile(partial);
    throw new DownloadError(
      "sha256",
      `Cannot verify "${name}": sha256 mismatch: expected ${pins.sha256}, got ${sha256} (deleted the download)`,
    );
  }
  await runCheck(options, name, partial, true);
  await Deno.rename(partial, options.destination);
  if (!pins.sha256) logUnpinned(options, name, sha256, done);
  return {
    path: options.destination,
    sha256,
    bytes: done,
    resumedFrom: body.start,
    verified: pins.sha256 !== undefined,
    reused: false,
  };
}

/** An existing `destination` is accepted only if it matches the pins; it is never modified. */
async function checkExisting(
  options: DownloadOptions,
  pins: Pins,
  name: string,
): Promise<DownloadResult> {
  const path = options.destination;
  const size = (await Deno.stat(path)).size;
  const stale = `"${path}" already exists`;
  const advice = "delete it to download again";
  if (pins.bytes !== undefined && size !== pins.bytes) {
    throw new DownloadError(
      "exists",
      `Cannot download "${name}": ${stale} with ${size} bytes, expected ${pins.bytes}; ${advice}`,
    );
  }
  const hash = createHash("sha256");
  await hashFilePrefix(path, size, hash, options.signal);
  const sha256 = hash.digest("hex");
  if (pins.sha256 && sha256 !== pins.sha256) {
    throw new DownloadError(
      "exists",
      `Cannot download "${name}": ${stale} but its sha256 is ${sha256}, expected ${pins.sha256}; ${advice}`,
    );
  }
  await runCheck(options, name, path, false);
  if (!pins.sha256) logUnpinned(options, name, sha256, size);
  return {
    path,
    sha256,
    bytes: size,
    resumedFrom: size,
    verified: pins.sha256 !== undefined,
    reused: true,
  };
}

async function runCheck(
  options: DownloadOptions,
  name: string,
  path: string,
  owned: boolean,
): Promise<void> {
  if (!options.check) return;
  try {
    await options.check(path);
  } catch (error) {
    if (owned) await removeFile(path);
    throw new DownloadError("invalid", `Cannot verify "${name}": ${errorText(error)}`, {
      cause: error,
    });
  }
}

function logUnpinned(options: DownloadOptions, name: string, sha256: string, bytes: number): void {
  (options.log ?? console.error)(
    `"${name}" was not verified (no sha256 pinned): sha256 ${sha256}, ${bytes} bytes; pin these in weights.lock`,
  );
}

/** Opens the source at byte `offset` (a remote server may restart it at 0). */
function openSource(
  options: DownloadOptions,
  pins: Pins,
  name: string,
  partial: string,
  offset: number,
): Promise<SourceBody> {
  // Nothing left to fetch: a complete .partial from a run that stopped before the rename.
  if (pins.bytes !== undefined && offset === pins.bytes && offset > 0) {
    return Promise.resolve(emptyBody(offset));
  }
  const path = localPath(options.url);
  if (path !== undefined) return openLocal(path, name, offset, options.signal);
  if (/^https?:\/\//i.test(options.url)) return openHttp(options, name, partial, offset);
  throw new DownloadError("source", `Cannot download "${name}": unsupported URL "${options.url}"`);
}

/** Plain paths and `file://` URLs are local; anything with another `scheme://` is not. */
function localPath(url: string): string | undefined {
  if (/^file:/i.test(url)) return fileURLToPath(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return undefined;
  return url;
}

async function openLocal(
  path: string,
  name: string,
  offset: number,
  signal?: AbortSignal,
): Promise<SourceBody> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (error) {
    const message = `Cannot download "${name}": cannot read "${path}": ${errorText(error)}`;
    throw new DownloadError("source", message, { cause: error });
  }
  const start = offset <= size ? offset : 0;
  const chunks = (async function* () {
    using file = await Deno.open(path, { read: true });
    await file.seek(start, Deno.SeekMode.Start);
    // Reusing the buffer is safe: the consumer is done with a chunk before it asks for the next.
    const buffer = new Uint8Array(CHUNK_BYTES);
    while (true) {
      signal?.throwIfAborted();
      const n = await file.read(buffer);
      if (n === null) return;
      yield buffer.subarray(0, n);
    }
  })();
  return { start, total: size, chunks, cancel: async () => void (await chunks.return(undefined)) };
}

async function openHttp(
  options: DownloadOptions,
  name: string,
  partial: string,
  offset: number,
): Promise<SourceBody> {
  const { url, signal } = options;
  const headers = new Headers(options.headers);
  // Compression would make Content-Length and Range refer to other bytes than the file's.
  headers.set("Accept-Encoding", "identity");
  if (offset > 0) headers.set("Range", `bytes=${offset}-`);
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, { headers, signal, redirect: "follow" });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    const message = `Cannot download "${name}" from ${url}: ${errorText(error)}`;
    throw new DownloadError("interrupted", message, { cause: error });
  }
  const cancel = async () => void (await response.body?.cancel().catch(() => {}));
  const body = response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });

  if (response.status === 206) {
    const range = parseContentRange(response.headers.get("Content-Range"));
    if (!range || range.start !== offset) {
      await cancel();
      throw new DownloadError(
        "http",
        `Cannot download "${name}" from ${url}: asked for bytes ${offset}- but got Content-Range "${
          response.headers.get("Content-Range")
        }"`,
      );
    }
    return { start: offset, total: range.total, chunks: body, cancel };
  }
  if (response.status === 200) {
    // Either a fresh download, or a server that ignores Range: both start over at byte 0.
    return { start: 0, total: contentLength(response), chunks: body, cancel };
  }
  if (response.status === 416 && offset > 0) {
    await cancel();
    const range = parseContentRange(response.headers.get("Content-Range"));
    // A total equal to the offset means the .partial already holds the whole file.
    if (range?.total === undefined || range.total === offset) return emptyBody(offset);
    await removeFile(partial);
    return await openHttp(options, name, partial, 0);
  }
  await cancel();
  throw new DownloadError(
    "http",
    `Cannot download "${name}" from ${url}: HTTP ${response.status} ${response.statusText}${
      response.status === 401 || response.status === 403 ? gatedHint(options.headers) : ""
    }`,
  );
}

function gatedHint(headers: Readonly<Record<string, string>> | undefined): string {
  const sentToken = Object.keys(headers ?? {}).some((k) => k.toLowerCase() === "authorization");
  return sentToken
    ? " (the token was refused: check HF_TOKEN and that its account accepted the model's license)"
    : " (the repository is gated: accept its license on huggingface.co and set HF_TOKEN)";
}

function emptyBody(offset: number): SourceBody {
  return { start: offset, total: offset, chunks: [], cancel: () => Promise.resolve() };
}

// Content-Range is "bytes START-END/TOTAL", or "bytes *" + "/TOTAL" in a 416; TOTAL may be "*".
function parseContentRange(value: string | null): { start?: number; total?: number } | undefined {
  const match = value?.match(/^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i);
  if (!match) return undefined;
  return {
    start: match[1] === undefined ? undefined : Number(match[1]),
    total: match[2] === "*" ? undefined : Number(match[2]),
  };
}

function contentLength(response: Response): number | undefined {
  const value = response.headers.get("Content-Length");
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Feeds the first `length` bytes of `path` into `hash`. */
async function hashFilePrefix(
  path: string,
  length: number,
  hash: Hash,
  signal?: AbortSignal,
): Promise<void> {
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(CHUNK_BYTES);
  let left = length;
  while (left > 0) {
    signal?.throwIfAborted();
    const n = await file.read(buffer.subarray(0, Math.min(left, buffer.length)));
    if (n === null) throw new Error(`"${path}" ended after ${length - left} of ${length} bytes`);
    hash.update(buffer.subarray(0, n));
    left -= n;
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

function validateOptions(options: DownloadOptions): Pins {
  if (typeof options.url !== "string" || options.url === "") {
    throw new TypeError(`url must be a non-empty string, got ${JSON.stringify(options.url)}`);
  }
  if (typeof options.destination !== "string" || options.destination === "") {
    throw new TypeError(
      `destination must be a non-empty string, got ${JSON.stringify(options.destination)}`,
    );
  }
  const { sha256, bytes } = options;
  if (sha256 !== "unknown" && !/^[0-9a-f]{64}$/i.test(sha256)) {
    throw new TypeError(`sha256 must be 64 hex digits or "unknown", got "${sha256}"`);
  }
  if (bytes !== "unknown" && !(Number.isSafeInteger(bytes) && bytes >= 0)) {
    throw new TypeError(
      `bytes must be a non-negative integer or "unknown", got ${JSON.stringify(bytes)}`,
    );
  }
  return {
    sha256: sha256 === "unknown" ? undefined : sha256.toLowerCase(),
    bytes: bytes === "unknown" ? undefined : bytes,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Deletes `path` if present; returns 0 (the new offset) for convenience. */
async function removeFile(path: string): Promise<0> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return 0;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
