/**
 * The upload of `POST /v1/generations`, parsed and checked as it streams in, before anything is
 * queued: `multipart/form-data` with a file field `image` and the request's fields as text
 * (declared in `pipeline/request/fields.ts`, checked by `parseRequest` as on every surface). Bad
 * input is refused with the error the table in `errors.ts` maps:
 * 415 for another content type or an image that is not PNG/JPEG/WebP by its magic bytes, 413 for
 * a header announcing more than `maxPixels` (no pixel is decoded here: the route has the whole
 * image checked off the main thread next), 422 naming the field for an unknown, repeated,
 * missing or out-of-range field, 400 `malformed_request` saying what is wrong for a body that is
 * not valid multipart.
 *
 * **Memory**: the body is read once, as a stream (`@remix-run/multipart-parser`), into one array
 * of its `Content-Length` (allocated up front, filled as the bytes come; the network's chunks are
 * garbage at once), and the parts are views of it: the image is not copied, and an upload holds
 * its size once. A body without `Content-Length` (chunked) keeps its chunks until the image part
 * is complete and joins them into one array: twice its size, briefly. An unknown or repeated field
 * stops the reading at once.
 *
 * **Valid multipart is accepted** as RFC 2046 and RFC 7578 write it: a preamble before the first
 * boundary and an epilogue after the last (read and dropped, any length), any bytes in a quoted
 * filename (NUL, UTF-8, escaped quotes) or `filename*=UTF-8''…` — the filename is not used.
 * A text field sent empty means "the default" (what an empty form input sends).
 *
 * Why `@remix-run/multipart-parser`: it parses web `ReadableStream`s as they come (no
 * `node:stream` shim), keeps part bodies as the chunks received (no copy until asked), and takes
 * NUL and UTF-8 in filenames. Busboy, the other candidate, refuses a filename with NUL
 * ("Malformed part header", the bare 400 of old) and silently yields nothing for some malformed
 * bodies. Two gaps of the parser are closed here: it refuses a preamble, and data after the
 * closing boundary when it arrives in a later chunk (the "epilogue over 1 KB" 400 of old).
 *
 * @example
 * ```ts
 * import { parseUpload } from "./multipart.ts";
 * const { request, image } = await parseUpload(c.req.raw, { name: "tiny", sampling }, { maxPixels: 16e6 });
 * ```
 *
 * @module
 */

import { ContentDisposition } from "@remix-run/headers/content-disposition";
import {
  MaxFileSizeExceededError,
  MaxHeaderSizeExceededError,
  MaxPartsExceededError,
  MaxTotalSizeExceededError,
  MultipartParseError,
  MultipartParser,
  type MultipartPart,
} from "@remix-run/multipart-parser";
import type { SamplingDefaults } from "../pipeline/config/mod.ts";
import { assertImageSize, sniffImage } from "../pipeline/image/mod.ts";
import {
  fieldsOn,
  parseRequest,
  REQUEST_FIELDS,
  type RequestContext,
} from "../pipeline/request/mod.ts";
import { HttpError } from "./errors.ts";
import type { JobRequest } from "./jobs/job_queue.ts";

/** Every field the upload may have: the image and the request's HTTP fields. */
export const UPLOAD_FIELDS: readonly string[] = [
  "image",
  ...fieldsOn("http").map((name) => REQUEST_FIELDS[name].key),
];

/** The model requests are validated against. */
export interface UploadModel {
  /** The loaded model's name (`model.json` name); the `model` field must equal it. */
  readonly name: string;
  /** Its sampling defaults (from its config). */
  readonly sampling: SamplingDefaults;
}

/** A checked upload. */
export interface ParsedUpload {
  readonly request: JobRequest;
  /** The image file's bytes, header checked. */
  readonly image: Uint8Array;
}

/** Limits of {@linkcode parseUpload}. */
export interface UploadLimits extends Pick<RequestContext, "maxJobSeconds" | "webhooks"> {
  /** Largest width × height the image's header may announce. */
  readonly maxPixels: number;
  /**
   * Largest part, bytes (default: no limit here; the service reads the body through
   * `bodyLimit`, which bounds the whole body).
   */
  readonly maxBytes?: number;
}

/** The longest header block of one part, bytes. */
const MAX_PART_HEADER_BYTES = 8 * 1024;

/**
 * Parses and checks the multipart body of `request`, reading it once, as it arrives.
 *
 * @throws {HttpError} 400, 413, 415 or 422 as described in the module doc; errors of the body's
 *   stream that are `HttpError`s (`bodyLimit`'s 408 and 413) as they are
 * @throws {ParameterError} for a field unknown or out of range (422 via the error table)
 */
export async function parseUpload(
  request: Request,
  model: UploadModel,
  limits: UploadLimits,
): Promise<ParsedUpload> {
  const type = request.headers.get("Content-Type") ?? "";
  const match = /^multipart\/form-data\s*;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!match) {
    throw new HttpError(
      415,
      "unsupported_content_type",
      `The body must be multipart/form-data with an "image" file, got ${
        type ? JSON.stringify(type) : "no Content-Type"
      }`,
    );
  }
  const boundary = match[1] ?? match[2];
  if (!request.body) throw malformed("the request has no body");

  // 1. Field names: known, once each; the image's bytes, the others as text.
  let image: Uint8Array | undefined;
  const text: Record<string, string> = {};
  const seen = new Set<string>();
  let index = 0;
  const maxBytes = limits.maxBytes ?? Infinity;
  const declared = Number(request.headers.get("Content-Length") ?? NaN);
  // With the body's size known (and within the limit), it is received into one array.
  const into = Number.isSafeInteger(declared) && declared > 0 && declared <= maxBytes
    ? new Uint8Array(declared)
    : undefined;
  for await (const part of readParts(request.body, boundary, maxBytes, into)) {
    index++;
    const { name, isFile } = describePart(part, index);
    if (!UPLOAD_FIELDS.includes(name)) {
      throw new HttpError(422, "unknown_field", `Unknown field ${JSON.stringify(name)}`, {
        field: name,
        allowed: UPLOAD_FIELDS.join(", "),
      });
    }
    if (seen.has(name)) {
      throw new HttpError(422, "duplicate_field", `Field "${name}" is given more than once`, {
        field: name,
      });
    }
    seen.add(name);
    if (name === "image") {
      if (!isFile) {
        throw new HttpError(422, "invalid_parameter", 'Field "image" must be a file upload', {
          field: "image",
        });
      }
      image = contentOf(part);
      continue;
    }
    if (isFile) {
      throw new HttpError(422, "invalid_parameter", `Field "${name}" must be text, not a file`, {
        field: name,
      });
    }
    const value = utf8(part.bytes, name);
    if (value.trim() !== "") text[name] = value.trim();
  }

  // 2. Every parameter, before the image is looked at.
  const parsed = parseRequest(text, {
    surface: "http",
    model: model.name,
    sampling: model.sampling,
    maxJobSeconds: limits.maxJobSeconds,
    webhooks: limits.webhooks,
  });

  // 3. The image: a file, a known format by its magic bytes, a pixel count within the limit.
  if (image === undefined) {
    throw new HttpError(422, "missing_field", 'The "image" file field is required', {
      field: "image",
    });
  }
  assertImageSize(sniffImage(image), limits.maxPixels);

  return { request: parsed, image };
}

/** A part's field name and whether it is a file, from its `Content-Disposition`. */
function describePart(part: MultipartPart, index: number): { name: string; isFile: boolean } {
  let headers: MultipartPart["headers"];
  try {
    headers = part.headers;
  } catch (cause) {
    throw malformed(`the headers of part ${index} are not UTF-8`, cause);
  }
  const header = headers["content-disposition"];
  if (header === undefined) throw malformed(`part ${index} has no Content-Disposition header`);
  const disposition = ContentDisposition.from(header);
  if (disposition.type?.toLowerCase() !== "form-data") {
    throw malformed(
      `part ${index} has Content-Disposition ${JSON.stringify(header)}, not form-data`,
    );
  }
  if (!disposition.name) {
    throw malformed(
      `part ${index} has no field name (Content-Disposition ${JSON.stringify(header)})`,
    );
  }
  return {
    name: disposition.name,
    isFile: disposition.filename !== undefined || disposition.filenameSplat !== undefined,
  };
}

/**
 * The parts of a multipart body as they complete. A preamble before the first boundary and an
 * epilogue after the closing one are read and dropped.
 */
async function* readParts(
  body: ReadableStream<Uint8Array>,
  boundary: string,
  maxBytes: number,
  into?: Uint8Array,
): AsyncGenerator<MultipartPart> {
  const parser = new MultipartParser(boundary, {
    maxHeaderSize: MAX_PART_HEADER_BYTES,
    maxFileSize: maxBytes,
    maxTotalSize: maxBytes,
    // One more than the fields, so that the extra one is reported as unknown or repeated (422).
    maxParts: UPLOAD_FIELDS.length + 1,
  });
  let closed = false;
  let started = false;
  try {
    for await (const chunk of afterPreamble(received(chunks(body), into), boundary)) {
      started = true;
      if (closed || (closed = ended(parser))) continue; // the epilogue
      yield* parser.write(chunk);
    }
    if (!started) throw malformed(`the body has no boundary "--${boundary}"`);
    parser.finish();
  } catch (error) {
    throw parseFailure(error, boundary);
  }
}

/** True once the parser has seen the closing delimiter (its `finish` no longer throws). */
function ended(parser: MultipartParser): boolean {
  try {
    parser.finish();
    return true;
  } catch {
    return false;
  }
}

/** The error the client gets for a parsing failure. */
function parseFailure(error: unknown, boundary: string): unknown {
  if (error instanceof HttpError) return error;
  if (error instanceof MaxHeaderSizeExceededError) {
    return malformed(`a part's headers are longer than ${MAX_PART_HEADER_BYTES} bytes`, error);
  }
  if (error instanceof MaxFileSizeExceededError || error instanceof MaxTotalSizeExceededError) {
    return new HttpError(413, "body_too_large", `The upload is over the limit: ${error.message}`, {
      cause: error,
    });
  }
  if (error instanceof MaxPartsExceededError) {
    return malformed(`more parts than the ${UPLOAD_FIELDS.length} fields`, error);
  }
  if (error instanceof MultipartParseError) {
    return malformed(
      error.message === "Multipart stream not finished"
        ? `the body ends before the closing boundary "--${boundary}--"`
        : error.message,
      error,
    );
  }
  return error;
}

/**
 * `source`'s chunks, copied into `into` as they come (when given) and handed on as views of it:
 * the parts' contents are then views of one array, and the network's chunks garbage at once.
 */
async function* received(
  source: AsyncIterable<Uint8Array>,
  into: Uint8Array | undefined,
): AsyncGenerator<Uint8Array> {
  let filled = 0;
  for await (const chunk of source) {
    if (!into || filled + chunk.length > into.length) {
      // no size given, or more than it said: the chunks as they are
      into = undefined;
      yield chunk;
      continue;
    }
    into.set(chunk, filled);
    yield into.subarray(filled, filled += chunk.length);
  }
}

/**
 * A part's bytes: one view when its chunks lie end to end in one array (received into it), else
 * a copy joining them.
 */
function contentOf(part: MultipartPart): Uint8Array {
  const content = part.content;
  if (content.length === 0) return new Uint8Array(0);
  const first = content[0];
  let end = first.byteOffset + first.length;
  for (const chunk of content.slice(1)) {
    if (chunk.buffer !== first.buffer || chunk.byteOffset !== end) return part.bytes;
    end += chunk.length;
  }
  return new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}

/** The stream's chunks. */
async function* chunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value.length > 0) yield value;
    }
  } finally {
    // Stopped early (a refused field): leave the rest to the response's cleanup.
    reader.releaseLock();
  }
}

/**
 * The body from its first delimiter on: a preamble (RFC 2046 §5.1.1; the parser wants the body to
 * start with the delimiter) is dropped. The delimiter counts at the body's start or after CRLF.
 */
async function* afterPreamble(
  source: AsyncIterable<Uint8Array>,
  boundary: string,
): AsyncGenerator<Uint8Array> {
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  let found = false;
  let carry: Uint8Array = new Uint8Array(0);
  let dropped = 0;
  for await (const chunk of source) {
    if (found) {
      yield chunk;
      continue;
    }
    const data = carry.length === 0 ? chunk : concat(carry, chunk);
    const at = delimiterAt(data, delimiter, dropped === 0);
    if (at >= 0) {
      found = true;
      yield data.subarray(at);
      continue;
    }
    // Keep what may begin a delimiter (and the CRLF before it) for the next chunk.
    const keep = Math.min(data.length, delimiter.length + 1);
    dropped += data.length - keep;
    carry = data.slice(data.length - keep);
  }
}

/** Index of the first delimiter at the start (when `atStart`) or after CRLF; -1 if none. */
function delimiterAt(data: Uint8Array, delimiter: Uint8Array, atStart: boolean): number {
  for (let i = 0; i + delimiter.length <= data.length; i++) {
    if (i === 0 ? !atStart : !(i >= 2 && data[i - 2] === 13 && data[i - 1] === 10)) continue;
    let j = 0;
    while (j < delimiter.length && data[i + j] === delimiter[j]) j++;
    if (j === delimiter.length) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A text field's value; 422 naming the field when its bytes are not UTF-8. */
function utf8(bytes: Uint8Array, field: string): string {
  try {
    return UTF8.decode(bytes);
  } catch (cause) {
    throw new HttpError(422, "invalid_parameter", `Field "${field}" is not UTF-8 text`, {
      field,
      cause,
    });
  }
}

function malformed(problem: string, cause?: unknown): HttpError {
  return new HttpError(400, "malformed_request", `The multipart body is malformed: ${problem}`, {
    cause,
  });
}
