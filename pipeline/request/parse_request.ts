/**
 * A generation request from what a user typed — form fields, CLI flags, JSON — to one checked
 * {@linkcode GenerationRequest}, and back to the API's field names for the status JSON. Every
 * surface goes through {@linkcode parseRequest}, so they accept exactly the same fields and
 * values and refuse the rest with the same `ParameterError`.
 *
 * @module
 */

import type { SamplingDefaults } from "../config/sampling_params.ts";
import { CRF } from "../video/encode_video.ts";
import { allowedOf, checkValue, readText } from "./field_values.ts";
import {
  type ClipFormat,
  declarationOf,
  FIELD_NAMES,
  type FieldName,
  fieldsOn,
  type GenerationRequest,
  REQUEST_FIELDS,
  SAMPLING_NAMES,
  type Surface,
} from "./fields.ts";
import { ParameterError } from "./parameter_error.ts";

/** What a request is checked against. */
export interface RequestContext {
  /** Where the input comes from: which fields it may have. */
  readonly surface: Surface;
  /** The loaded model's name: the `model` field's default and only allowed value. */
  readonly model: string;
  /** The model's sampling defaults (its config): the values of absent sampling fields. */
  readonly sampling: SamplingDefaults;
  /** Draws the seed when neither the request nor the config has one (default: random). */
  readonly drawSeed?: () => number;
  /**
   * The service's `MAX_JOB_SECONDS`: the largest `timeout_seconds`, and its default. Undefined:
   * no limit beyond the declaration's.
   */
  readonly maxJobSeconds?: number;
  /**
   * Whether `webhook` is accepted: `off` (the default: the service has no `WEBHOOK_SECRET`),
   * `https` URLs only, or `http` too (`WEBHOOK_ALLOW_PRIVATE`, for tests on loopback).
   */
  readonly webhooks?: WebhookPolicy;
}

/** Which `webhook` URLs a service accepts; see {@linkcode RequestContext.webhooks}. */
export type WebhookPolicy = "off" | "https" | "http";

/**
 * A rule between fields, checked after each field was checked on its own and the defaults were
 * filled. `given` holds only the fields the user gave, so a rule can blame the one written.
 *
 * @throws {ParameterError} naming the field at fault
 */
export type RequestRule = (
  request: GenerationRequest,
  given: Readonly<Partial<Record<FieldName, unknown>>>,
  context: RequestContext,
) => void;

const MIN_GUIDANCE = REQUEST_FIELDS.minGuidance.schema.minValue;
const MAX_GUIDANCE = REQUEST_FIELDS.maxGuidance.schema.maxValue;

/**
 * The rules between fields, in order. `timeout_seconds` is bounded by the service's
 * `MAX_JOB_SECONDS`; `webhook` needs a service that sends webhooks (and https, unless the service
 * allows http for its tests); `webhook_events` needs a `webhook`. Admission by cost (frames × pixels × steps and the
 * estimated memory of a request against the service's limits, a 422 naming the limit) belongs
 * here as one more rule, with its limits in `RequestContext`.
 */
export const REQUEST_RULES: readonly RequestRule[] = [
  function theLoadedModel(request, given, context) {
    if (given.model !== undefined && request.model !== context.model) {
      throw new ParameterError("model", request.model, "is not the loaded model", context.model);
    }
  },
  function guidanceInOrder({ params }, given) {
    const fault = guidanceOrder(
      params.minGuidance,
      params.maxGuidance,
      given.minGuidance !== undefined,
    );
    if (fault) throw new ParameterError(fault.field, fault.value, fault.problem, fault.allowed);
  },
  function withinMaxJobSeconds({ timeoutSeconds }, _given, { maxJobSeconds }) {
    if (timeoutSeconds === undefined || maxJobSeconds === undefined) return;
    if (timeoutSeconds > maxJobSeconds) {
      throw new ParameterError(
        "timeout_seconds",
        timeoutSeconds,
        "is above the service's MAX_JOB_SECONDS",
        `1..${maxJobSeconds}`,
      );
    }
  },
  function webhookAccepted({ webhook }, given, { webhooks = "off" }) {
    if (webhook === undefined) {
      if (given.webhookEvents !== undefined) {
        throw new ParameterError(
          "webhook_events",
          given.webhookEvents,
          "is given without a webhook",
          "only with webhook",
        );
      }
      return;
    }
    if (webhooks === "off") {
      throw new ParameterError(
        "webhook",
        webhook,
        "is not accepted: this service sends no webhooks (it has no WEBHOOK_SECRET)",
        "no webhook",
      );
    }
    const url = new URL(webhook);
    if (url.protocol !== "https:" && webhooks !== "http") {
      throw new ParameterError("webhook", webhook, "is not an https URL", WEBHOOK_ALLOWED);
    }
    if (url.username !== "" || url.password !== "") {
      throw new ParameterError(
        "webhook",
        webhook,
        "holds a user name or password",
        `${WEBHOOK_ALLOWED} without credentials (the signature authenticates the sender)`,
      );
    }
  },
  function crfForTheFormat({ crf, format }) {
    if (crf === undefined) return;
    if (format === "gif" || crf < CRF[format].min || crf > CRF[format].max) {
      throw crfError(crf, "is out of range", format);
    }
  },
];

/**
 * `crf` refused for `format`: for gif it does not apply (whatever the value); for mp4 and webm
 * the error names the format's range, even when the value is out of every format's (`crf = 99`
 * says `allowed 0..51 for mp4`, as `crf = 60` does).
 */
function crfError(crf: unknown, problem: string, format: ClipFormat): ParameterError {
  if (format === "gif") return new ParameterError("crf", crf, "does not apply to gif", CRF_ALLOWED);
  const { min, max } = CRF[format];
  return new ParameterError("crf", crf, problem, `${min}..${max} for ${format}`);
}

/** A value that breaks a rule: the field to change, its value, the problem, the allowed values. */
export interface RuleFault {
  readonly field: string;
  readonly value: unknown;
  readonly problem: string;
  readonly allowed: string;
}

/**
 * min_guidance ≤ max_guidance, for requests and configs alike. The field written is blamed (with
 * only max_guidance written, max is the one too low; with both, min); `nameOf` names the other
 * field as the surface does (`sampling.max_guidance` in a config).
 */
export function guidanceOrder(
  min: number,
  max: number,
  minWritten: boolean,
  nameOf: (key: string) => string = (key) => key,
): RuleFault | undefined {
  if (min <= max) return undefined;
  return minWritten
    ? {
      field: "min_guidance",
      value: min,
      problem: `is above ${nameOf("max_guidance")} (${max})`,
      allowed: `${MIN_GUIDANCE}..${max}`,
    }
    : {
      field: "max_guidance",
      value: max,
      problem: `is below ${nameOf("min_guidance")} (${min})`,
      allowed: `${min}..${MAX_GUIDANCE}`,
    };
}

/** What `webhook` may be, in words. */
export const WEBHOOK_ALLOWED = "an https URL of a public host";

/** Where `crf` applies, in words (also for the CLI's `--format frames`). */
export const CRF_ALLOWED = "only with format mp4 or webm";

/**
 * Checks `input` — keyed by the names users type (`steps`, `num_frames`); values typed, or text
 * as a form or the command line gives it — and fills the rest: the model's config first, then
 * the declared defaults; the seed is drawn when neither has one. Text is trimmed; empty text,
 * `null` and `undefined` mean "the default".
 *
 * @throws {ParameterError} for a field the surface does not have (`unknown_field`), a value of
 * the wrong type or out of range, or a rule between fields broken (`invalid_parameter`)
 *
 * @example
 * ```ts
 * import { parseRequest } from "./parse_request.ts";
 * const request = parseRequest({ steps: "10" }, { surface: "http", model: "svd_xt", sampling });
 * request.params.numSteps; // 10
 * parseRequest({ steps: "0" }, context); // ParameterError: steps = 0 is out of range: allowed 1..200
 * ```
 */
export function parseRequest(
  input: Readonly<Record<string, unknown>>,
  context: RequestContext,
): GenerationRequest {
  // 1. Each field on its own.
  const given = checkFields(input, context.surface);

  // 2. The defaults: the model's config, then the declaration; `null` is a value drawn per run.
  const fromModel: Partial<Record<FieldName, unknown>> = {
    ...context.sampling,
    model: context.model,
    timeoutSeconds: context.maxJobSeconds,
  };
  const value = (name: FieldName): unknown => {
    const field = declarationOf(name);
    const chosen = given[name] ?? fromModel[name] ?? field.default;
    if (chosen === null) return (context.drawSeed ?? randomSeed)();
    if (chosen === undefined && !field.optional) {
      throw new TypeError(`Request field "${field.key}" has no default`);
    }
    return chosen;
  };
  const request: Record<string, unknown> = {
    params: Object.fromEntries(SAMPLING_NAMES.map((name) => [name, value(name)])),
  };
  for (const name of FIELD_NAMES) {
    if (REQUEST_FIELDS[name].group === "sampling") continue;
    const chosen = value(name);
    if (chosen !== undefined) request[name] = chosen;
  }

  // 3. Between fields.
  const checked = request as GenerationRequest;
  for (const rule of REQUEST_RULES) rule(checked, given, context);
  return checked;
}

/**
 * Checks each field of `input` on its own (names, types, ranges), as {@linkcode parseRequest}
 * does first; what needs the model's defaults (the rules between fields) is left for it. A `crf`
 * out of the declared range is refused here, with its format's range in the error.
 *
 * @returns the fields given, checked and typed, by camelCase name
 * @throws {ParameterError} as `parseRequest`
 */
export function checkFields(
  input: Readonly<Record<string, unknown>>,
  surface: Surface,
): Partial<Record<FieldName, unknown>> {
  const names = fieldsOn(surface);
  const byKey = new Map<string, FieldName>(names.map((name) => [REQUEST_FIELDS[name].key, name]));
  for (const [key, value] of Object.entries(input)) {
    if (!byKey.has(key)) {
      throw new ParameterError(key, value, "is not a field", [...byKey.keys()].join(", "), {
        code: "unknown_field",
        message: `Unknown field "${key}"`,
      });
    }
  }
  const given: Partial<Record<FieldName, unknown>> = {};
  for (const name of names) {
    const field = REQUEST_FIELDS[name];
    let value = input[field.key];
    if (typeof value === "string") {
      value = value.trim() === "" ? undefined : readText(field, value.trim());
    }
    if (value === undefined || value === null) continue;
    const problem = checkValue(field, value);
    if (problem && name === "crf") {
      // The format is declared (so checked) before crf: the error says the range that applies.
      throw crfError(value, problem, (given.format ?? REQUEST_FIELDS.format.default) as ClipFormat);
    }
    if (problem) throw new ParameterError(field.key, value, problem, allowedOf(field));
    given[name] = value;
  }
  return given;
}

/**
 * The request under the API's field names, every default filled (seed included): the status
 * JSON's `params`. Fields left out (`crf` for the encoder's default) are absent.
 */
export function requestJson(
  request: GenerationRequest,
  surface: Surface = "http",
): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const name of fieldsOn(surface)) {
    const value = REQUEST_FIELDS[name].group === "sampling"
      ? request.params[name as keyof GenerationRequest["params"]]
      : request[name as Exclude<FieldName, keyof GenerationRequest["params"]>];
    if (value !== undefined) json[REQUEST_FIELDS[name].key] = value;
  }
  return json;
}

/** A random unsigned 32-bit seed. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
