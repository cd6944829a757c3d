/**
 * Writes `model.json`. What is written is first read back through the reader's checks, so the
 * converter can never leave a manifest the runtime would refuse; the file appears complete or not
 * at all (written beside, then renamed).
 *
 * @example
 * ```ts
 * import { writeModelJson } from "./pipeline/model_json/mod.ts";
 * await writeModelJson("models/svd_xt/model.json", manifest);
 * ```
 *
 * @module
 */

import { parseModelJson } from "./reader.ts";
import type { ModelManifest } from "./schema.ts";

/** `manifest` as the text of `model.json` (two-space JSON, a final newline). */
export function formatModelJson(manifest: ModelManifest): string {
  return JSON.stringify(manifest, null, 2) + "\n";
}

/**
 * Checks `manifest` and writes it to `path`.
 *
 * @throws {ModelJsonError} when the manifest would not pass the reader (nothing is written).
 */
export async function writeModelJson(path: string, manifest: ModelManifest): Promise<void> {
  const text = formatModelJson(manifest);
  parseModelJson(text, path);
  const partial = `${path}.partial-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(partial, text);
    await Deno.rename(partial, path);
  } catch (error) {
    await Deno.remove(partial).catch(() => {});
    throw error;
  }
}
