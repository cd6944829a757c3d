/**
 * The generation request: its fields declared once (`fields.ts`), read and checked the same way
 * from every surface (`parseRequest`), and said back under the API's names (`requestJson`).
 *
 * @example
 * ```ts
 * import { parseRequest } from "./pipeline/request/mod.ts";
 * const request = parseRequest({ steps: "20" }, { surface: "cli", model: config.name, sampling: config.sampling });
 * ```
 *
 * @module
 */

export { cliHelp, cliOptions, cliRequestInput } from "./cli_flags.ts";
export { allowedOf, checkValue, jsonSchemaOf, readText } from "./field_values.ts";
export {
  type ClipFormat,
  declarationOf,
  DEFAULT_WEBHOOK_EVENTS,
  FIELD_NAMES,
  type FieldDeclaration,
  type FieldName,
  fieldsOn,
  type FieldValue,
  type GenerationRequest,
  type GuiderKind,
  MAX_TIMEOUT_SECONDS,
  type PreviewMode,
  REQUEST_FIELDS,
  SAMPLING_NAMES,
  type SamplingParams,
  type Surface,
  WEBHOOK_EVENTS,
  type WebhookEvent,
} from "./fields.ts";
export { ParameterError, type ParameterErrorCode } from "./parameter_error.ts";
export {
  checkFields,
  CRF_ALLOWED,
  guidanceOrder,
  parseRequest,
  randomSeed,
  REQUEST_RULES,
  type RequestContext,
  requestJson,
  type RequestRule,
  type RuleFault,
  WEBHOOK_ALLOWED,
  type WebhookPolicy,
} from "./parse_request.ts";
