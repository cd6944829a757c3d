/**
 * Reads `model.json` and checks all of it before anyone relies on it: the envelope against
 * {@linkcode MODEL_JSON_SCHEMA}, the embedded config through the config loader's own rules, and
 * that the UNet's `y` input is as wide as the config's micro-conditioning vector. A bad file is
 * reported with its path, the line and the field:
 * `models/svd_xt/model.json:12: graphs.unet.data = "../x" is not a file name inside the directory`.
 *
 * @example
 * ```ts
 * import { readModelJson } from "./pipeline/model_json/mod.ts";
 * const manifest = await readModelJson("models/svd_xt/model.json");
 * manifest.config.sampling.numFrames; // 25
 * ```
 *
 * @module
 */

import type { z } from "zod";
import {
  ConfigError,
  parseEmbeddedConfig,
  showValue,
  type YamlPath,
  YamlSource,
} from "../config/mod.ts";
import { ModelJsonError } from "./model_json_error.ts";
import { MODEL_JSON_SCHEMA, type ModelManifest } from "./schema.ts";

/**
 * Reads and checks the `model.json` at `path`.
 *
 * @throws {ModelJsonError} naming file, line and field for anything but a valid manifest.
 * @throws {Deno.errors.NotFound} when the file does not exist (and other I/O errors as they come).
 */
export async function readModelJson(path: string): Promise<ModelManifest> {
  return parseModelJson(await Deno.readTextFile(path), path);
}

/**
 * Checks `text` as the `model.json` at `file` (used in messages).
 *
 * @throws {ModelJsonError} as {@linkcode readModelJson}.
 */
export function parseModelJson(text: string, file: string): ModelManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ModelJsonError(
      { file, line: jsonErrorLine(text, cause), field: null },
      `not valid JSON (${messageOf(cause)}): truncated or edited?`,
      { cause },
    );
  }
  // JSON is YAML: the YAML parser gives every key's line (and refuses duplicate keys).
  const source = fromConfigError(() => YamlSource.parse(text, file));
  const parsed = MODEL_JSON_SCHEMA.safeParse(value);
  if (!parsed.success) throw issueError(parsed.error.issues[0], source);
  const config = fromConfigError(() => parseEmbeddedConfig(source, ["config"]));
  const { config: _, ...envelope } = parsed.data;
  const manifest: ModelManifest = { ...envelope, config };
  checkVectorWidth(manifest, source);
  return manifest;
}

/** The UNet's `y` is fed the micro-conditioning vector built from `config`: their widths agree. */
function checkVectorWidth(manifest: ModelManifest, source: YamlSource): void {
  const inputs = manifest.graphs.unet?.inputs ?? [];
  const index = inputs.findIndex((input) => input.name === "y");
  if (index < 0) return;
  const width = inputs[index].dims[1];
  const expected = manifest.config.unet.admInChannels;
  if (width !== expected) {
    const path = ["graphs", "unet", "inputs", index, "dims", 1];
    throw new ModelJsonError(
      { file: source.file, line: source.lineOf(path), field: fieldName(path) },
      `${fieldName(path)} = ${showValue(width)} differs from config.unet.admInChannels ` +
        `(${expected}), the width of the micro-conditioning vector fed to it`,
    );
  }
}

/** The first zod issue as a `ModelJsonError` at its line, quoting the value. */
function issueError(issue: z.core.$ZodIssue, source: YamlSource): ModelJsonError {
  const path: (string | number)[] = issue.path.filter((p) => typeof p !== "symbol");
  if (issue.code === "unrecognized_keys") path.push(issue.keys[0]);
  const field = fieldName(path);
  const value = source.get(path);
  let problem: string;
  if (issue.code === "unrecognized_keys") {
    problem = `${field} ${issue.message}`;
  } else if (value === undefined) {
    problem = issue.code === "invalid_type"
      ? `${field} is missing: expected ${issue.expected}`
      : `${field} ${issue.message}`;
  } else if (/^(is|has) /.test(issue.message)) {
    problem = `${field} = ${showValue(value)} ${issue.message}`; // ours, written as a predicate
  } else {
    // zod's own: "Invalid input: expected int, received number" -> "expected int, received number"
    const words = issue.message.replace(/^Invalid input: /, "");
    problem = `${field} = ${showValue(value)}: ${words[0].toLowerCase()}${words.slice(1)}`;
  }
  return new ModelJsonError({ file: source.file, line: source.lineOf(path), field }, problem);
}

/** Runs `read`, turning a `ConfigError` (the embedded config, or the YAML pass) into ours. */
function fromConfigError<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const prefix = `${error.file}:${error.line}: `;
    const problem = error.message.startsWith(prefix)
      ? error.message.slice(prefix.length)
      : error.message;
    throw new ModelJsonError(
      { file: error.file, line: error.line, field: error.field },
      problem.replace(/^invalid YAML: /, "not valid JSON: "),
      { cause: error },
    );
  }
}

/** `["graphs", "unet", "inputs", 3]` → `graphs.unet.inputs[3]`; `files["unet.onnx"]` for odd keys. */
function fieldName(path: YamlPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_]\w*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out || "(root)";
}

/** 1-based line of a `JSON.parse` error: V8 names the line or the offset; else the last line. */
function jsonErrorLine(text: string, error: unknown): number {
  const message = messageOf(error);
  const line = /\(line (\d+) column \d+\)/.exec(message);
  if (line) return Number(line[1]);
  const position = /at position (\d+)/.exec(message);
  const end = position ? Number(position[1]) : text.length;
  return text.slice(0, end).split("\n").length;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
