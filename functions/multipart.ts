/**
 * The upload of `POST /v1/generations`, parsed and checked before anything is queued:
 * `multipart/form-data` with a file field `image` and optional text fields (see
 * {@linkcode UPLOAD_FIELDS}). Bad input is refused with the error the table in `errors.ts` maps:
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

import {
  ParameterError,
  parseSamplingOverrides,
  resolveSamplingParams,
  SAMPLING_LIMITS,
  type SamplingDefaults,
} from "../pipeline/config/mod.ts";
import { assertImageSize, sniffImage } from "../pipeline/image/mod.ts";
import { SIZE_POLICIES, type SizePolicy } from "../pipeline/image/size_policy.ts";
import { CLIP_FORMATS, type ClipFormat } from "../pipeline/service/video_job.ts";
import { CRF } from "../pipeline/video/mod.ts";
import { HttpError } from "./errors.ts";
import type { JobRequest } from "./jobs/job_queue.ts";

/** Sampling fields, by the names users type (`steps`, `num_frames`, …). */
export const SAMPLING_FIELDS: readonly string[] = Object.values(SAMPLING_LIMITS).map((l) => l.key);

/** Every field the upload may have. */
export const UPLOAD_FIELDS: readonly string[] = [
  "image",
  "model",
  ...SAMPLING_FIELDS,
  "format",
  "size",
  "preview",
  "keep_running",
  "crf",
];

/** Allowed values of the non-sampling choice fields. */
export const UPLOAD_CHOICES = {
  format: CLIP_FORMATS,
  size: SIZE_POLICIES,
  preview: ["latent", "none"],
  keep_running: ["true", "false"],
} as const;

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
 * @throws {ParameterError} for a sampling field out of range (422 via the error table)
 */
export async function parseUpload(
  request: Request,
  model: UploadModel,
  limits: { readonly maxPixels: number },
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
  if (text.model !== undefined && text.model !== model.name) {
    throw new ParameterError("model", text.model, "is not the loaded model", model.name);
  }
  const format = choice("format", text.format ?? "mp4", UPLOAD_CHOICES.format) as ClipFormat;
  const size = choice("size", text.size ?? "cover", UPLOAD_CHOICES.size) as SizePolicy;
  const preview = choice("preview", text.preview ?? "latent", UPLOAD_CHOICES.preview);
  const keepRunning = choice(
    "keep_running",
    text.keep_running ?? "false",
    UPLOAD_CHOICES.keep_running,
  );
  const crf = text.crf === undefined ? undefined : crfValue(text.crf, format);
  const sampling: Record<string, string> = {};
  for (const key of SAMPLING_FIELDS) if (text[key] !== undefined) sampling[key] = text[key];
  const params = resolveSamplingParams(parseSamplingOverrides(sampling), model.sampling);

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

  return {
    request: {
      model: model.name,
      params,
      format,
      size,
      preview: preview as "latent" | "none",
      keepRunning: keepRunning === "true",
      ...(crf === undefined ? {} : { crf }),
    },
    image: bytes,
  };
}

/** True when `--boundary--` occurs in the body's last kilobyte (only an epilogue may follow). */
function hasClosingDelimiter(body: Uint8Array, boundary: string): boolean {
  const tail = new TextDecoder("latin1").decode(body.subarray(Math.max(0, body.length - 1024)));
  return tail.includes(`--${boundary}--`);
}

function choice(field: string, value: string, allowed: readonly string[]): string {
  if (!allowed.includes(value)) {
    const note = field === "format" && value === "frames" ? " (frames is CLI-only)" : "";
    throw new ParameterError(field, value, "is not an allowed value", allowed.join(" | ") + note);
  }
  return value;
}

function crfValue(raw: string, format: ClipFormat): number {
  if (format === "gif") {
    throw new ParameterError("crf", raw, "does not apply to gif", "only with format mp4 or webm");
  }
  const { min, max } = CRF[format];
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value)) {
    throw new ParameterError("crf", raw, "is not an integer", `${min}..${max} for ${format}`);
  }
  if (value < min || value > max) {
    throw new ParameterError("crf", value, "is out of range", `${min}..${max} for ${format}`);
  }
  return value;
}
