/**
 * Reads a resolved {@linkcode SvdConfig} stored as JSON (the `config` of a model directory's
 * `model.json`) back through the checks a YAML config gets: each field's type and range
 * (`_field_specs.ts`), the defaults (for a field an older file lacks), the cross-field checks.
 * There is no second copy of the rules: only the place of each field differs.
 *
 * The stored form uses the resolved config's names (`unet.channelMult`, `sampling.numSteps`);
 * each of our format's dotted keys maps to one of them by dropping `model.` and camelCasing, except
 * the entries of {@linkcode RENAMED}. Errors name the field as stored: `config.unet.channelMult[1]`.
 *
 * @module
 */

import type { FieldReader } from "./_field_reader.ts";
import { FIELD_SPECS } from "./_field_specs.ts";
import type { SvdConfig } from "./svd_config.ts";
import type { YamlPath } from "./yaml_source.ts";

/** Keys of our format whose resolved name is not the mechanical one. */
const RENAMED: Readonly<Record<string, string>> = {
  // The YAML says `steps` (as the CLI and the API do); the resolved field is sgm's `num_steps`.
  "sampling.steps": "sampling.numSteps",
};

/** The recorded origin of the config: `source` {path, format}. */
const SOURCE_KEYS = ["path", "format"] as const;
const SOURCE_FORMATS = ["svd-stream", "sgm"] as const;

/**
 * The resolved name of our format's dotted `key`: `model.unet.channel_mult` → `unet.channelMult`,
 * `model.scale_factor` → `scaleFactor`, `sampling.steps` → `sampling.numSteps`.
 */
export function resolvedKey(key: string): string {
  if (Object.hasOwn(RENAMED, key)) return RENAMED[key];
  const parts = key.split(".");
  return (parts[0] === "model" ? parts.slice(1) : parts).map(camelCase).join(".");
}

/**
 * Type- and range-checks every field of the resolved config at `at` into `reader.raw` (our
 * format's raw config), so that `resolve` and the cross-field checks run on it unchanged.
 *
 * @returns the recorded `source` of the config.
 * @throws {ConfigError} for a section that is not a mapping, an unknown key, or a bad value.
 */
export function readEmbeddedConfig(reader: FieldReader, at: YamlPath): SvdConfig["source"] {
  const places = Object.keys(FIELD_SPECS).map((key) => ({
    key,
    path: [...at, ...resolvedKey(key).split(".")],
  }));
  // Sections first (parents before children), so an unknown key is reported as such.
  const sections = new Map<string, Set<string>>([["", new Set(["source"])]]);
  for (const { key } of places) {
    const parts = resolvedKey(key).split(".");
    for (let i = 0; i < parts.length; i++) {
      const section = parts.slice(0, i).join(".");
      if (!sections.has(section)) sections.set(section, new Set());
      sections.get(section)!.add(parts[i]);
    }
  }
  for (const [section, keys] of sections) {
    reader.mapping(section === "" ? at : [...at, ...section.split(".")], [...keys]);
  }
  for (const { key, path } of places) reader.field(key, path);
  return readSource(reader, [...at, "source"]);
}

function readSource(reader: FieldReader, at: YamlPath): SvdConfig["source"] {
  const allowed = `a mapping with keys ${SOURCE_KEYS.join(", ")}`;
  const source = reader.mapping(at, SOURCE_KEYS) ?? reader.missingAt(at, allowed);
  const path = source.path;
  if (path === undefined) reader.missingAt([...at, "path"], "the path of the config file");
  if (typeof path !== "string") {
    reader.failAt([...at, "path"], path, "is not a string", "the path of the config file");
  }
  const formats = { kind: "choice", values: SOURCE_FORMATS } as const;
  if (source.format === undefined) reader.missingAt([...at, "format"], formats.values.join(" | "));
  const format = reader.check<SvdConfig["source"]["format"]>(
    [...at, "format"],
    source.format,
    formats,
  );
  return { path, format };
}

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
