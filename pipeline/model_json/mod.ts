/**
 * `model.json`, the manifest of a converted model directory: its schema (format tag, the four
 * graphs with their I/O signatures, every file's size and sha256, the resolved config), the
 * reader that checks all of it with errors naming file, line and field, and the writer the
 * converter uses. `pipeline/runtime/model_dir.ts` adds the checks against the files on disk.
 *
 * @example
 * ```ts
 * import { readModelJson } from "./pipeline/model_json/mod.ts";
 * const manifest = await readModelJson("models/svd_xt/model.json");
 * Object.keys(manifest.graphs); // ["image_encoder", "vae_encoder", "unet", "vae_decoder"]
 * ```
 *
 * @module
 */

export { ModelJsonError, type ModelJsonErrorDetails } from "./model_json_error.ts";
export { parseModelJson, readModelJson } from "./reader.ts";
export {
  type FileRecord,
  GRAPH_FILES,
  type GraphManifest,
  type GraphName,
  type GraphValueSignature,
  isPlainFileName,
  MANIFEST_FILE,
  MODEL_FORMAT,
  MODEL_JSON_SCHEMA,
  type ModelManifest,
} from "./schema.ts";
export { formatModelJson, writeModelJson } from "./writer.ts";
