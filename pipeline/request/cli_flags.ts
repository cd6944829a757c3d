/**
 * The request fields as command-line flags: `num_frames` is `--num-frames N`, a boolean that
 * defaults to false is `--keep-running`, one that defaults to true is `--no-watermark`. The
 * options for `node:util`'s `parseArgs`, the parsed flags back to `parseRequest` input, and the
 * help lines, all from the declaration.
 *
 * @module
 */

import { allowedOf, jsonSchemaOf } from "./field_values.ts";
import { declarationOf, type FieldDeclaration, fieldsOn } from "./fields.ts";

/** A `parseArgs` option. */
export type CliOption = { readonly type: "string" } | { readonly type: "boolean" };

/** The flag of `field`, without the dashes: `num-frames`, `no-watermark`. */
function flagOf(field: FieldDeclaration): string {
  const name = field.key.replaceAll("_", "-");
  return isBoolean(field) && field.default === true ? `no-${name}` : name;
}

function isBoolean(field: FieldDeclaration): boolean {
  return jsonSchemaOf(field).type === "boolean";
}

/** The `parseArgs` options of every CLI field. */
export function cliOptions(): Record<string, CliOption> {
  return Object.fromEntries(
    fieldsOn("cli").map((name) => {
      const field = declarationOf(name);
      return [flagOf(field), { type: isBoolean(field) ? "boolean" : "string" } as const];
    }),
  );
}

/**
 * `parseRequest` input from `parseArgs` values: the fields whose flag was given, under their
 * keys (`{ num_frames: "14" }`, `{ watermark: false }` for `--no-watermark`).
 */
export function cliRequestInput(
  values: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const name of fieldsOn("cli")) {
    const field = declarationOf(name);
    const value = values[flagOf(field)];
    if (value === undefined || value === false) continue;
    input[field.key] = isBoolean(field) ? field.default !== true : value;
  }
  return input;
}

/**
 * One help line per CLI field: flag, what it does, allowed values and default. `notes` replace
 * what follows a field's first sentence (`format` on the CLI also writes `frames`).
 */
export function cliHelp(notes: Readonly<Record<string, string>> = {}): string[] {
  const lines: string[] = [];
  for (const name of fieldsOn("cli")) {
    const field = declarationOf(name);
    const flag = `--${flagOf(field)}`;
    const usage = isBoolean(field) ? flag : `${flag} ${metavar(field)}`;
    const sentence = /^.*?(?=\.(\s|$))/.exec(field.description)?.[0] ?? field.description;
    const allowed = isBoolean(field) || usage.includes("|") ? "" : `: ${allowedOf(field)}`;
    const byDefault = field.group === "sampling"
      ? " (default: the model's)"
      : field.default !== undefined && !isBoolean(field)
      ? ` (default ${field.default})`
      : "";
    const negated = flagOf(field).startsWith("no-") ? " (on unless this flag is given)" : "";
    const words = notes[field.key] ?? `${allowed}${byDefault}${negated}`;
    const gap = usage.length < 26 ? " ".repeat(27 - usage.length) : `\n${" ".repeat(29)}`;
    lines.push(`  ${usage}${gap}${sentence}${words}`);
  }
  return lines;
}

function metavar(field: FieldDeclaration): string {
  const schema = jsonSchemaOf(field);
  if (Array.isArray(schema.enum)) return schema.enum.join("|");
  if (schema.type === "integer") return "N";
  if (schema.type === "number") return "X";
  return schema.format === "uri" ? "URL" : "TEXT";
}
