/**
 * The upload of `POST /v1/generations`, parsed and checked before anything is queued:
 * `multipart/form-data` with a file field `image` and the request's fields as text (declared in
 * `pipeline/request/fields.ts`, checked by `parseRequest` as on every surface). Bad input is
 * refused with the error the table in `errors.ts` maps:
 * 415 for another content type or an image that is not PNG/JPEG/WebP by its magic bytes, 413 for
 * a header announcing more than `maxPixels` (no pixel is decoded here), 422 naming the field for
 * an unknown, repeated, missing or out-of-range field, 400 for a body that is not valid multipart.
 *
 * A text field sent empty means "the default" (what an empty form input sends).
 *
 * @example
 * ```ts
 * import { parseUpload } from "./multipart.ts";
 * const { request, image } = await parseUpload(c.req.raw, { name: "tiny", sampling }, { maxPixels: 16e6 });
 * ```
 *
 * @module
 */

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

/**
 * Parses and checks the multipart body of `request`.
 *
 * @throws {HttpError} 400, 413, 415 or 422 as described in the module doc
 * @throws {ParameterError} for a field unknown or out of range (422 via the error table)
 */
export async function parseUpload(
  request: Request,
  model: UploadModel,
  limits: { readonly maxPixels: number } & Pick<RequestContext, "maxJobSeconds" | "webhooks">,
): Promise<ParsedUpload> {
  const type = request.headers.get("Content-Type") ?? "";
  const boundary = /^multipart\/form-data\s*;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!boundary) {
    throw new HttpError(
      415,
      "unsupported_content_type",
      `The body must be multipart/form-data with an "image" file, got ${
        type ? JSON.stringify(type) : "no Content-Type"
      }`,
    );
  }
  let form: FormData;
  try {
    const body = new Uint8Array(await request.clone().arrayBuffer());
    // Deno's parser takes a body cut short for an empty form: insist on the closing delimiter.
    if (!hasClosingDelimiter(body, boundary[1] ?? boundary[2])) {
      throw new SyntaxError("the body ends before the closing boundary");
    }
    form = await request.formData();
  } catch (cause) {
    throw new HttpError(
      400,
      "malformed_request",
      `The multipart body could not be parsed${
        cause instanceof SyntaxError ? `: ${cause.message}` : ""
      }`,
      { cause },
    );
  }

  // 1. Field names: known, once each.
  const fields = new Map<string, FormDataEntryValue>();
  for (const [name, value] of form.entries()) {
    if (!UPLOAD_FIELDS.includes(name)) {
      throw new HttpError(422, "unknown_field", `Unknown field "${name}"`, {
        field: name,
        allowed: UPLOAD_FIELDS.join(", "),
      });
    }
    if (fields.has(name)) {
      throw new HttpError(422, "duplicate_field", `Field "${name}" is given more than once`, {
        field: name,
      });
    }
    fields.set(name, value);
  }
  const text: Record<string, string> = {};
  for (const [name, value] of fields) {
    if (name === "image") continue;
    if (typeof value !== "string") {
      throw new HttpError(422, "invalid_parameter", `Field "${name}" must be text, not a file`, {
        field: name,
      });
    }
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
  const image = fields.get("image");
  if (image === undefined) {
    throw new HttpError(422, "missing_field", 'The "image" file field is required', {
      field: "image",
    });
  }
  if (typeof image === "string") {
    throw new HttpError(422, "invalid_parameter", 'Field "image" must be a file upload', {
      field: "image",
    });
  }
  const bytes = new Uint8Array(await image.arrayBuffer());
  assertImageSize(sniffImage(bytes), limits.maxPixels);

  return { request: parsed, image: bytes };
}

/** True when `--boundary--` occurs in the body's last kilobyte (only an epilogue may follow). */
function hasClosingDelimiter(body: Uint8Array, boundary: string): boolean {
  const tail = new TextDecoder("latin1").decode(body.subarray(Math.max(0, body.length - 1024)));
  return tail.includes(`--${boundary}--`);
}
