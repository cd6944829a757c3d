/**
 * Reads and checks a converted model directory (`model.json` plus the `.onnx` and `.onnx.data`
 * files it lists) before anything is handed to ONNX Runtime. Sizes are always checked (cheap: a
 * truncated copy or an interrupted download shows up here, not as an opaque ORT error); sha256
 * only with `{ verify: true }`, since hashing a full-size SVD directory reads ~9 GB.
 *
 * @example
 * ```ts
 * import { readModelDirectory } from "./pipeline/runtime/model_dir.ts";
 * const model = await readModelDirectory("models/svd_xt", { graphs: ["unet"] });
 * model.graphs.unet?.path; // "/abs/models/svd_xt/unet.onnx"
 * ```
 *
 * @module
 */

import { sha256File } from "../convert/file_hash.ts";
import { ATTENTION_FORMS } from "../networks/layers.ts";
import {
  GRAPH_FILES,
  type GraphManifest,
  type GraphName,
  MODEL_FORMAT,
  type ModelManifest,
} from "../convert/model_manifest.ts";

/** Name of the manifest inside a model directory. */
export const MANIFEST_FILE = "model.json";

/** One graph of a checked model directory. */
export interface ModelGraph {
  readonly name: GraphName;
  /** Absolute path of the `.onnx` file. */
  readonly path: string;
  /** Absolute path of its external data file, if it has one. */
  readonly dataPath?: string;
  /** The graph's entry of `model.json` (inputs and outputs with symbolic dims). */
  readonly manifest: GraphManifest;
}

/** A model directory whose manifest parsed and whose files have the recorded sizes. */
export interface ModelDirectory {
  /** Absolute, symlink-free path of the directory. */
  readonly dir: string;
  readonly manifest: ModelManifest;
  /** The checked graphs (those asked for, by default every graph of the manifest). */
  readonly graphs: Partial<Record<GraphName, ModelGraph>>;
}

/** Options of {@linkcode readModelDirectory}. */
export interface ReadModelDirectoryOptions {
  /** Also compare every checked file's sha256 with `model.json` (reads every byte). */
  readonly verify?: boolean;
  /** Graphs to check (default: every graph in the manifest). Each must be in the manifest. */
  readonly graphs?: readonly GraphName[];
}

/**
 * A model directory that cannot be loaded: `model.json` missing or malformed, a file missing, of
 * the wrong size or (with `verify`) the wrong hash. `dir` and `file` name the culprit.
 */
export class ModelDirectoryError extends Error {
  /** The model directory as given. */
  readonly dir: string;
  /** The offending file, relative to `dir`. */
  readonly file: string;
  constructor(dir: string, file: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelDirectoryError";
    this.dir = dir;
    this.file = file;
  }
}

/**
 * Parses `dir/model.json`, checks its format tag and that each graph's files exist with the
 * recorded byte sizes (and sha256 with `verify`), and returns the manifest with absolute paths.
 *
 * @throws {ModelDirectoryError} naming the directory and the file.
 */
export async function readModelDirectory(
  dir: string,
  options: ReadModelDirectoryOptions = {},
): Promise<ModelDirectory> {
  const fail: Fail = (file, problem, cause, prefix = `Cannot load model directory "${dir}"`) => {
    throw new ModelDirectoryError(
      dir,
      file,
      `${prefix}: ${problem}`,
      cause === undefined ? undefined : { cause },
    );
  };
  let absolute = "";
  try {
    absolute = await Deno.realPath(dir);
  } catch (cause) {
    fail(".", `the directory cannot be opened (${message(cause)})`, cause);
  }
  const manifest = await readManifest(`${absolute}/${MANIFEST_FILE}`, fail);
  const present = Object.keys(manifest.graphs) as GraphName[];
  const names = options.graphs ?? present;
  const graphs: Partial<Record<GraphName, ModelGraph>> = {};
  for (const name of names) {
    const graph = manifest.graphs[name];
    if (!graph) {
      fail(
        MANIFEST_FILE,
        `graph "${name}" is not in ${MANIFEST_FILE} (it has: ${present.join(", ") || "none"})`,
      );
    }
    checkGraphEntry(name, graph!, fail);
    for (const file of [graph!.file, graph!.data]) {
      if (file !== undefined) {
        await checkFile(absolute, file, manifest, options.verify ?? false, fail);
      }
    }
    graphs[name] = {
      name,
      path: `${absolute}/${graph!.file}`,
      ...(graph!.data ? { dataPath: `${absolute}/${graph!.data}` } : {}),
      manifest: graph!,
    };
  }
  return { dir: absolute, manifest, graphs };
}

/** Throws a {@linkcode ModelDirectoryError} about `file`, by default prefixed with the directory. */
type Fail = (file: string, problem: string, cause?: unknown, prefix?: string) => never;

async function readManifest(path: string, fail: Fail): Promise<ModelManifest> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      fail(
        MANIFEST_FILE,
        `${MANIFEST_FILE} is missing (is this a converted model directory?)`,
        cause,
      );
    }
    fail(MANIFEST_FILE, `${MANIFEST_FILE} cannot be read (${message(cause)})`, cause);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    fail(MANIFEST_FILE, `${MANIFEST_FILE} is not valid JSON (${message(cause)})`, cause);
  }
  if (!isObject(value)) fail(MANIFEST_FILE, `${MANIFEST_FILE} is not a JSON object`);
  const record = value as Record<string, unknown>;
  if (record.format !== MODEL_FORMAT) {
    fail(
      MANIFEST_FILE,
      `${MANIFEST_FILE} has format ${JSON.stringify(record.format)}, expected "${MODEL_FORMAT}"`,
    );
  }
  if (!isObject(record.graphs)) fail(MANIFEST_FILE, `${MANIFEST_FILE} has no "graphs" object`);
  if (!isObject(record.files)) fail(MANIFEST_FILE, `${MANIFEST_FILE} has no "files" object`);
  for (const name of Object.keys(record.graphs as object)) {
    if (!(name in GRAPH_FILES)) {
      fail(
        MANIFEST_FILE,
        `${MANIFEST_FILE} lists unknown graph "${name}" (known: ${Object.keys(GRAPH_FILES)})`,
      );
    }
  }
  // Converters before the field existed wrote fused attention only.
  record.attention ??= "fused";
  if (!ATTENTION_FORMS.includes(record.attention as never)) {
    fail(
      MANIFEST_FILE,
      `${MANIFEST_FILE} has attention ${JSON.stringify(record.attention)}, expected one of ${
        ATTENTION_FORMS.join(", ")
      }`,
    );
  }
  return record as unknown as ModelManifest;
}

/** Checks the shape of one `graphs` entry, which the client relies on to validate feeds. */
function checkGraphEntry(name: GraphName, graph: GraphManifest, fail: Fail): void {
  const where = `${MANIFEST_FILE} graphs.${name}`;
  if (!isObject(graph) || !isPlainFileName(graph.file)) {
    fail(MANIFEST_FILE, `${where}.file must be a file name inside the directory`);
  }
  if (graph.data !== undefined && !isPlainFileName(graph.data)) {
    fail(MANIFEST_FILE, `${where}.data must be a file name inside the directory`);
  }
  for (const key of ["inputs", "outputs"] as const) {
    const values = graph[key];
    const valid = Array.isArray(values) &&
      values.every((v) =>
        isObject(v) && typeof v.name === "string" && Array.isArray(v.dims) &&
        v.dims.every((d) => typeof d === "string" || Number.isInteger(d))
      );
    if (!valid) fail(MANIFEST_FILE, `${where}.${key} must list {name, type, dims} entries`);
  }
}

async function checkFile(
  dir: string,
  file: string,
  manifest: ModelManifest,
  verify: boolean,
  fail: Fail,
): Promise<void> {
  const recorded = manifest.files[file];
  if (!isObject(recorded) || !Number.isInteger(recorded.bytes)) {
    fail(MANIFEST_FILE, `"${file}" has no size in ${MANIFEST_FILE} "files"`);
  }
  let bytes = 0;
  try {
    const stat = await Deno.stat(`${dir}/${file}`);
    if (!stat.isFile) fail(file, `"${file}" is not a file`);
    bytes = stat.size;
  } catch (cause) {
    if (cause instanceof ModelDirectoryError) throw cause;
    if (cause instanceof Deno.errors.NotFound) fail(file, `"${file}" is missing`, cause);
    fail(file, `"${file}" cannot be read (${message(cause)})`, cause);
  }
  const weights = `Cannot load weights "${file}" in "${dir}"`;
  if (bytes !== recorded.bytes) {
    fail(
      file,
      `${bytes} bytes on disk, ${MANIFEST_FILE} records ${recorded.bytes} (truncated or replaced?)`,
      undefined,
      weights,
    );
  }
  if (!verify) return;
  const actual = await sha256File(`${dir}/${file}`);
  if (actual !== recorded.sha256) {
    fail(file, `sha256 mismatch: expected ${recorded.sha256}, got ${actual}`, undefined, weights);
  }
}

/** A name without separators or `..`: ORT refuses external data outside the model directory. */
function isPlainFileName(name: unknown): name is string {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." &&
    !name.includes("/") && !name.includes("\\");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
