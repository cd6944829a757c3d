/**
 * Allowed values of one configuration field or run-time parameter, how to check a value against
 * them and how to say them in an error message: the config loader's (which adds file and line),
 * and the words of a request field's allowed values (`pipeline/request/field_values.ts`).
 *
 * @module
 */

/** Allowed values of a numeric or string field. */
export type Limit = IntegerLimit | NumberLimit | ChoiceLimit;

/** An integer in `min..max` (inclusive), optionally one of `oneOf` or a multiple of `multipleOf`. */
export interface IntegerLimit {
  readonly kind: "integer";
  readonly min: number;
  readonly max: number;
  readonly multipleOf?: number;
  readonly oneOf?: readonly number[];
  /** Why, appended to the allowed range in messages. */
  readonly note?: string;
}

/** A finite number in `min..max`; with `exclusiveMin`, strictly greater than `min`. */
export interface NumberLimit {
  readonly kind: "number";
  readonly min: number;
  readonly max: number;
  readonly exclusiveMin?: boolean;
  readonly note?: string;
}

/** One of a few strings. */
export interface ChoiceLimit {
  readonly kind: "choice";
  readonly values: readonly string[];
  readonly note?: string;
}

/**
 * What is wrong with `value` under `limit` ("is out of range", "is not an integer", …), or
 * `undefined` when it is allowed.
 *
 * @example
 * ```ts
 * checkLimit({ kind: "integer", min: 1, max: 200 }, 0); // "is out of range"
 * checkLimit({ kind: "integer", min: 1, max: 200 }, 25); // undefined
 * ```
 */
export function checkLimit(limit: Limit, value: unknown): string | undefined {
  if (limit.kind === "choice") {
    if (typeof value !== "string") return "is not a string";
    return limit.values.includes(value) ? undefined : "is not an allowed value";
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return "is not a number";
  if (limit.kind === "integer") {
    if (!Number.isInteger(value)) return "is not an integer";
    if (value < limit.min || value > limit.max) return "is out of range";
    if (limit.oneOf && !limit.oneOf.includes(value)) return "is not an allowed value";
    if (limit.multipleOf && value % limit.multipleOf !== 0) {
      return `is not a multiple of ${limit.multipleOf}`;
    }
    return undefined;
  }
  const aboveMin = limit.exclusiveMin ? value > limit.min : value >= limit.min;
  return aboveMin && value <= limit.max ? undefined : "is out of range";
}

/**
 * The allowed values of `limit` as words: `1..200`, `64..2048, a multiple of 64`,
 * `linear | triangle`, `greater than 0, at most 10`.
 */
export function describeLimit(limit: Limit): string {
  let text: string;
  if (limit.kind === "choice") {
    text = limit.values.join(" | ");
  } else if (limit.kind === "integer" && limit.oneOf) {
    text = limit.oneOf.join(" | ");
  } else if (limit.kind === "integer") {
    text = limit.min === limit.max ? String(limit.min) : `${limit.min}..${limit.max}`;
    if (limit.multipleOf) text += `, a multiple of ${limit.multipleOf}`;
  } else {
    text = limit.exclusiveMin
      ? `greater than ${limit.min}, at most ${limit.max}`
      : `${limit.min}..${limit.max}`;
  }
  return limit.note ? `${text} (${limit.note})` : text;
}

/** A value as it would be typed: numbers plain, strings quoted, lists in brackets. */
export function showValue(value: unknown): string {
  if (value === undefined) return "(nothing)";
  if (typeof value === "number") return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
