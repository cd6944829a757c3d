/**
 * The one error the `model.json` reader throws.
 *
 * @module
 */

/** Where and why a `model.json` is bad. */
export interface ModelJsonErrorDetails {
  /** Path of the file as given to the reader. */
  readonly file: string;
  /** 1-based line of the offending key or value. */
  readonly line: number;
  /** Path of the field in the file (`graphs.unet.inputs[3].dims[1]`); null when the file is not JSON. */
  readonly field: string | null;
}

/**
 * A `model.json` that is not JSON, lacks a field, holds a value of the wrong type or out of range,
 * or contradicts itself. The message reads
 * `models/svd_xt/model.json:57: config.unet.channelMult[1] = 3.5 is not an integer: allowed 1..16`.
 */
export class ModelJsonError extends Error implements ModelJsonErrorDetails {
  readonly file: string;
  readonly line: number;
  readonly field: string | null;

  constructor(details: ModelJsonErrorDetails, problem: string, options?: ErrorOptions) {
    super(`${details.file}:${details.line}: ${problem}`, options);
    this.name = "ModelJsonError";
    this.file = details.file;
    this.line = details.line;
    this.field = details.field;
  }
}
