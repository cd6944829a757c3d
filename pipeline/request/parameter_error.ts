/**
 * The error of a request field: what every surface (HTTP, CLI, config) reports for a value that
 * is out of range, of the wrong type, unknown, or in conflict with another field.
 *
 * @module
 */

import { showValue } from "../config/limits.ts";

/** Machine-readable kind of a {@linkcode ParameterError}; the HTTP body's `error.code`. */
export type ParameterErrorCode = "invalid_parameter" | "unknown_field";

/** Options of {@linkcode ParameterError}. */
export interface ParameterErrorOptions extends ErrorOptions {
  /** Default `invalid_parameter`. */
  readonly code?: ParameterErrorCode;
  /** The whole message, when `field = value problem: allowed …` does not fit. */
  readonly message?: string;
}

/**
 * A request field whose value is not allowed. `field` is the name users type (`steps`,
 * `num_frames`); the message reads `steps = 0 is out of range: allowed 1..200`.
 *
 * @example
 * ```ts
 * import { ParameterError } from "./parameter_error.ts";
 * const error = new ParameterError("steps", 0, "is out of range", "1..200");
 * error.message; // "steps = 0 is out of range: allowed 1..200"
 * ```
 */
export class ParameterError extends RangeError {
  /** The field's name as users type it: `steps`. */
  readonly field: string;
  readonly value: unknown;
  /** The allowed values in words: `1..200`. */
  readonly allowed: string;
  readonly code: ParameterErrorCode;

  constructor(
    field: string,
    value: unknown,
    problem: string,
    allowed: string,
    options: ParameterErrorOptions = {},
  ) {
    super(options.message ?? `${field} = ${showValue(value)} ${problem}: allowed ${allowed}`, {
      cause: options.cause,
    });
    this.name = "ParameterError";
    this.field = field;
    this.value = value;
    this.allowed = allowed;
    this.code = options.code ?? "invalid_parameter";
  }
}
