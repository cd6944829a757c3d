/**
 * One field's value: read from text (a form field, a CLI flag), checked against the field's zod
 * schema, and its allowed values said in words — the same for every surface.
 *
 * @module
 */

import { z } from "zod";
import { describeLimit, type Limit } from "../config/limits.ts";
import type { FieldDeclaration } from "./fields.ts";

/** The JSON Schema (draft 2020-12) of a field's values, without `$schema`. */
export type JsonSchema = Readonly<Record<string, unknown>>;

const jsonSchemas = new WeakMap<z.ZodType, JsonSchema>();

/** The field's values as JSON Schema: what OpenAPI shows and what the words below are made of. */
export function jsonSchemaOf(field: FieldDeclaration): JsonSchema {
  let schema = jsonSchemas.get(field.schema);
  if (!schema) {
    const { $schema: _, ...rest } = z.toJSONSchema(field.schema) as Record<string, unknown>;
    schema = rest;
    jsonSchemas.set(field.schema, schema);
  }
  return schema;
}

/**
 * The allowed values in words: `1..200`, `64..2048, a multiple of 64`, `linear | triangle`,
 * `true | false`.
 */
export function allowedOf(field: FieldDeclaration): string {
  return describeSchema(jsonSchemaOf(field));
}

function describeSchema(schema: JsonSchema): string {
  if (Array.isArray(schema.enum)) return schema.enum.join(" | ");
  switch (schema.type) {
    case "integer":
    case "number":
      return describeLimit(numberLimit(schema));
    case "boolean":
      return "true | false";
    case "array":
      return `a comma-separated list, each ${describeSchema(schema.items as JsonSchema)}`;
    case "string":
      if (schema.format === "uri") {
        // A pattern on the scheme (`webhook`): say which schemes, not just "a URL".
        const http = typeof schema.pattern === "string" && schema.pattern.startsWith("^https?://");
        return http ? "an http or https URL" : "a URL";
      }
      return `text of ${schema.minLength ?? 0}..${schema.maxLength ?? "any"} characters`;
    default:
      return JSON.stringify(schema);
  }
}

function numberLimit(schema: JsonSchema): Limit {
  const exclusive = typeof schema.exclusiveMinimum === "number";
  const min = (exclusive ? schema.exclusiveMinimum : schema.minimum) as number;
  const max = schema.maximum as number;
  if (schema.type === "integer") {
    return { kind: "integer", min, max, multipleOf: schema.multipleOf as number | undefined };
  }
  return { kind: "number", min, max, exclusiveMin: exclusive };
}

const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;

/**
 * The typed value of `text` for `field`: a decimal number for numeric fields, `true`/`false` for
 * booleans, a list for comma-separated arrays; anything else stays text, for
 * {@linkcode checkValue} to refuse by name.
 */
export function readText(field: FieldDeclaration, text: string): unknown {
  const schema = jsonSchemaOf(field);
  switch (schema.type) {
    case "integer":
    case "number":
      return DECIMAL.test(text) ? Number(text) : text;
    case "boolean":
      return text === "true" ? true : text === "false" ? false : text;
    case "array":
      return text.split(",").map((item) => item.trim()).filter((item) => item !== "");
    default:
      return text;
  }
}

/**
 * What is wrong with `value` for `field` (`is out of range`, `is not an integer`, …), or
 * `undefined` when it is allowed.
 */
export function checkValue(field: FieldDeclaration, value: unknown): string | undefined {
  const result = field.schema.safeParse(value);
  return result.success ? undefined : problemOf(result.error.issues[0]);
}

/** A zod issue in the words of our messages. */
function problemOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      if (issue.expected === "int") return "is not an integer";
      if (issue.expected === "number") return "is not a number";
      if (issue.expected === "string") return "is not text";
      return "is not an allowed value";
    case "too_small":
    case "too_big":
      return issue.origin === "string" ? "has the wrong length" : "is out of range";
    case "not_multiple_of":
      return `is not a multiple of ${issue.divisor}`;
    case "invalid_value":
      return "is not an allowed value";
    case "invalid_format":
      return `is not a valid ${issue.format === "url" ? "URL" : issue.format}`;
    default:
      return `is not allowed (${issue.message})`;
  }
}
