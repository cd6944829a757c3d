/**
 * Reads our own config format (`configs/*.yaml`): sections `model` (`scale_factor`, `unet`,
 * `vae`, `image_encoder`) and `sampling`, plus `name` and `checkpoint`. Every key must be known.
 *
 * @module
 */

import type { FieldReader } from "./_field_reader.ts";
import { childKeys, FIELD_SPECS, sectionPaths } from "./_field_specs.ts";

/**
 * Type- and range-checks every field of our format into `reader.raw`.
 *
 * @throws {ConfigError} for a section that is not a mapping, an unknown key, or a bad value.
 */
export function readSvdStreamConfig(reader: FieldReader): void {
  // Sections first (parents before children), so an unknown key is reported as such and not as
  // a missing field further down.
  for (const section of sectionPaths()) {
    reader.mapping(section === "" ? [] : section.split("."), childKeys(section));
  }
  for (const key of Object.keys(FIELD_SPECS)) reader.field(key, key.split("."));
}
