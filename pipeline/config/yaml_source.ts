/**
 * A parsed YAML file that remembers where each key sits, so errors can name a line.
 *
 * @module
 */

import process from "node:process";
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "./config_error.ts";

/** Keys and list indices from the root: `["model", "unet", "channel_mult", 2]`. */
export type YamlPath = readonly (string | number)[];

/** `["model", "unet", "channel_mult", 2]` → `model.unet.channel_mult[2]`. */
export function formatPath(path: YamlPath): string {
  let out = "";
  for (const segment of path) {
    out += typeof segment === "number" ? `[${segment}]` : out === "" ? segment : `.${segment}`;
  }
  return out || "(root)";
}

/** A YAML document's values (plain JS) and the line of each key. */
export class YamlSource {
  /** Path of the file as given. */
  readonly file: string;
  /** The document as plain data (mappings are objects, sequences arrays). */
  readonly root: unknown;
  readonly #doc: Document;
  readonly #lines: LineCounter;

  private constructor(file: string, doc: Document, lines: LineCounter) {
    this.file = file;
    this.#doc = doc;
    this.#lines = lines;
    this.root = doc.toJS();
  }

  /**
   * Parses `text`. Duplicate keys, tabs as indentation and several documents are errors.
   *
   * @throws {ConfigError} with the line of the first syntax error and the parser's error as `cause`.
   */
  static parse(text: string, file: string): YamlSource {
    const lines = new LineCounter();
    const doc = withoutEnvLookups(() =>
      parseDocument(text, { lineCounter: lines, uniqueKeys: true })
    );
    const first = doc.errors[0];
    if (first) {
      const line = first.linePos?.[0].line ?? 1;
      // The parser's message repeats the position and quotes the source below it; keep the words.
      const words = first.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
      throw new ConfigError(
        { file, line: Math.max(line, 1), field: null, allowed: "" },
        `invalid YAML: ${words}`,
        { cause: first },
      );
    }
    return new YamlSource(file, doc, lines);
  }

  /** The value at `path`, or `undefined` where the path leaves the document. */
  get(path: YamlPath): unknown {
    let node: unknown = this.root;
    for (const segment of path) {
      if (node === null || typeof node !== "object") return undefined;
      if (Array.isArray(node) !== (typeof segment === "number")) return undefined;
      if (!Object.hasOwn(node, segment)) return undefined;
      node = (node as Record<string | number, unknown>)[segment];
    }
    return node;
  }

  /**
   * 1-based line of the key (for mapping entries) or item (for list entries) at `path`; where the
   * path leaves the document, the line of the deepest part that exists (so a missing key is
   * reported at its parent).
   */
  lineOf(path: YamlPath): number {
    let node: unknown = this.#doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.#doc);
      let next: unknown;
      if (isMap(node) && typeof segment === "string") {
        const pair = node.items.find((p) => keyText(p.key) === segment);
        if (!pair) break;
        offset = rangeStart(pair.key) ?? rangeStart(pair.value) ?? offset;
        next = pair.value;
      } else if (isSeq(node) && typeof segment === "number" && segment < node.items.length) {
        next = node.items[segment];
        offset = rangeStart(next) ?? offset;
      } else {
        break;
      }
      node = next;
    }
    return Math.max(this.#lines.linePos(offset).line, 1);
  }
}

/**
 * Runs `parse` with an empty `process.env` unless env access is granted. Quirk: npm `yaml`'s
 * parser reads `process.env.LOG_TOKENS` / `LOG_STREAM` (debug logging) for every token, and under
 * Deno that read throws `NotCapable` without `--allow-env`; configs must load with `--allow-read`
 * alone. The swap is synchronous, so no other code can observe it.
 */
function withoutEnvLookups<T>(parse: () => T): T {
  const granted = (variable: string) => {
    try {
      return Deno.permissions.querySync({ name: "env", variable }).state === "granted";
    } catch {
      return false; // no permissions API (some hosted runtimes): swap to be safe
    }
  };
  if (granted("LOG_TOKENS") && granted("LOG_STREAM")) return parse();
  const env = Object.getOwnPropertyDescriptor(process, "env");
  if (!env?.configurable) return parse();
  Object.defineProperty(process, "env", { ...env, value: {} });
  try {
    return parse();
  } finally {
    Object.defineProperty(process, "env", env);
  }
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === "string" ? key : undefined;
}
