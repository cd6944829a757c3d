/**
 * Reads checked values out of a `YamlSource` into a `RawSvdConfig`, remembering where in the
 * file each field came from, so later checks (defaults, cross-field) still report the right line.
 *
 * @module
 */

import { ConfigError } from "./config_error.ts";
import { allowedOf, checkValue } from "../request/field_values.ts";
import { FIELD_SPECS } from "./_field_specs.ts";
import { checkLimit, describeLimit, type Limit } from "./limits.ts";
import type { RawSvdConfig } from "./svd_config.ts";
import { formatPath, type YamlPath, YamlSource } from "./yaml_source.ts";

/** Collects a `RawSvdConfig` from one file. */
export class FieldReader {
  readonly source: YamlSource;
  readonly raw: RawSvdConfig = {};
  /** Where each raw field (dotted key of our format) sits in the file. */
  readonly #where = new Map<string, YamlPath>();

  constructor(source: YamlSource) {
    this.source = source;
  }

  /**
   * Checks `value` (by default the one at `path`) against the spec of our field `key` and stores
   * it in `raw`. `null` or absent stores nothing, so the default applies. Either way `path` is
   * remembered as the field's place.
   *
   * @throws {ConfigError} at `path` when the value has the wrong type or is out of range.
   */
  field(key: string, path: YamlPath, value: unknown = this.source.get(path)): void {
    this.#where.set(key, path);
    if (value === null || value === undefined) return;
    const spec = FIELD_SPECS[key];
    if (!spec) throw new Error(`No spec for config field ${key}`);
    if (spec.kind === "text") {
      if (typeof value !== "string" || !spec.pattern.test(value)) {
        this.failAt(
          path,
          value,
          typeof value === "string" ? "is not allowed" : "is not a string",
          spec.allowed,
        );
      }
    } else if (spec.kind === "value") {
      this.check(path, value, spec.limit);
    } else if (spec.kind === "request") {
      const problem = checkValue(spec.field, value);
      if (problem) this.failAt(path, value, problem, allowedOf(spec.field));
    } else {
      const allowed = `a list of ${describeLimit(spec.length)} entries, each ${
        describeLimit(spec.item)
      }`;
      if (!Array.isArray(value)) this.failAt(path, value, "is not a list", allowed);
      if (checkLimit(spec.length, value.length)) {
        this.failAt(path, value, `has ${value.length} entries`, allowed);
      }
      value.forEach((item, i) => this.check([...path, i], item, spec.item));
      value = [...value];
    }
    setDotted(this.raw, key, value);
  }

  /** Checks `value` at `path` against `limit` and returns it. */
  check<T = number>(path: YamlPath, value: unknown, limit: Limit): T {
    const problem = checkLimit(limit, value);
    if (problem) this.failAt(path, value, problem, describeLimit(limit));
    return value as T;
  }

  /** Where field `key` was read from (or would have been). */
  pathOf(key: string): YamlPath {
    return this.#where.get(key) ?? key.split(".");
  }

  /** 1-based line and dotted name of field `key` in the file. */
  locate(key: string): { file: string; line: number; field: string } {
    return this.locatePath(this.pathOf(key));
  }

  /** 1-based line and dotted name of `path` in the file. */
  locatePath(path: YamlPath): { file: string; line: number; field: string } {
    return { file: this.source.file, line: this.source.lineOf(path), field: formatPath(path) };
  }

  /** Throws a `ConfigError` for field `key` holding `value`. */
  fail(key: string, value: unknown, problem: string, allowed: string): never {
    this.failAt(this.pathOf(key), value, problem, allowed);
  }

  /** Throws a `ConfigError` for the value at `path`. */
  failAt(path: YamlPath, value: unknown, problem: string, allowed: string): never {
    throw ConfigError.badValue(this.locatePath(path), value, problem, allowed);
  }

  /** Throws a `ConfigError` saying that field `key` is required. */
  missing(key: string, allowed = describeSpec(key)): never {
    this.missingAt(this.pathOf(key), allowed);
  }

  /** Throws a `ConfigError` saying that `path` is required. */
  missingAt(path: YamlPath, allowed: string): never {
    const where = this.locatePath(path);
    throw new ConfigError({ ...where, allowed }, `${where.field} is missing: allowed ${allowed}`);
  }

  /**
   * The mapping at `path`, or `undefined` when absent or null.
   *
   * @throws {ConfigError} when it is something else, or (given `allowedKeys`) has another key.
   */
  mapping(path: YamlPath, allowedKeys?: readonly string[]): Record<string, unknown> | undefined {
    const value = this.source.get(path);
    if (value === null || value === undefined) return undefined;
    const keysText = allowedKeys ? `a mapping with keys ${allowedKeys.join(", ")}` : "a mapping";
    if (typeof value !== "object" || Array.isArray(value)) {
      this.failAt(path, value, "is not a mapping", keysText);
    }
    if (allowedKeys) {
      for (const key of Object.keys(value)) {
        if (!allowedKeys.includes(key)) {
          const where = this.locatePath([...path, key]);
          throw new ConfigError(
            { ...where, allowed: allowedKeys.join(", ") },
            `${where.field} is not a known key: allowed ${allowedKeys.join(", ")}`,
          );
        }
      }
    }
    return value as Record<string, unknown>;
  }

  /** The list at `path`, or `undefined` when absent or null; throws when it is something else. */
  list(path: YamlPath, allowed: string): unknown[] | undefined {
    const value = this.source.get(path);
    if (value === null || value === undefined) return undefined;
    if (!Array.isArray(value)) this.failAt(path, value, "is not a list", allowed);
    return value;
  }
}

/** The allowed values of our field `key`, in words. */
export function describeSpec(key: string): string {
  const spec = FIELD_SPECS[key];
  if (!spec) return "a value";
  if (spec.kind === "text") return spec.allowed;
  if (spec.kind === "value") return describeLimit(spec.limit);
  if (spec.kind === "request") return allowedOf(spec.field);
  return `a list of ${describeLimit(spec.length)} entries, each ${describeLimit(spec.item)}`;
}

function setDotted(target: object, key: string, value: unknown): void {
  const parts = key.split(".");
  let node = target as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}
