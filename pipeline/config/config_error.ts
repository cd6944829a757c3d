/**
 * The one error the config loader throws.
 *
 * @module
 */

import { showValue } from "./limits.ts";

/** Where and why a config file is bad. */
export interface ConfigErrorDetails {
  /** Path of the file as given to the loader. */
  readonly file: string;
  /** 1-based line of the offending key or value. */
  readonly line: number;
  /** Dotted path in the file (`sampling.steps`, `model.unet.channel_mult[2]`); null for YAML syntax errors. */
  readonly field: string | null;
  /** The allowed values in words (`1..200`); empty when not applicable. */
  readonly allowed: string;
}

/**
 * A config file that is not valid YAML, or whose values are of the wrong type, out of range,
 * inconsistent with each other, or under unknown keys. The message reads
 * `configs/svd.yaml:31: sampling.steps = 0 is out of range: allowed 1..200`.
 */
export class ConfigError extends Error implements ConfigErrorDetails {
  readonly file: string;
  readonly line: number;
  readonly field: string | null;
  readonly allowed: string;

  constructor(details: ConfigErrorDetails, problem: string, options?: ErrorOptions) {
    super(`${details.file}:${details.line}: ${problem}`, options);
    this.name = "ConfigError";
    this.file = details.file;
    this.line = details.line;
    this.field = details.field;
    this.allowed = details.allowed;
  }

  /** `field = value problem: allowed …`, the message of a bad value. */
  static badValue(
    where: Omit<ConfigErrorDetails, "allowed">,
    value: unknown,
    problem: string,
    allowed: string,
  ): ConfigError {
    return new ConfigError(
      { ...where, allowed },
      `${where.field} = ${showValue(value)} ${problem}: allowed ${allowed}`,
    );
  }
}
