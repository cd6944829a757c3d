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
import {
  type GraphManifest,
  type GraphName,
  MANIFEST_FILE,
  ModelJsonError,
  type ModelManifest,
  readModelJson,
} from "../model_json/mod.ts";

export { MANIFEST_FILE };

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
 * the wrong size or (with `verify`) the wrong hash. `dir` and `file` name the culprit, `field` the
 * entry of `model.json` at fault (`graphs.unet.data`, `config.unet.channelMult[1]`).
 */
export class ModelDirectoryError extends Error {
  /** The model directory as given. */
  readonly dir: string;
  /** The offending file, relative to `dir`. */
  readonly file: string;
  /** The field of `model.json` at fault, or that names the offending file; null when none. */
  readonly field: string | null;
  constructor(
    dir: string,
    file: string,
    message: string,
    options?: ErrorOptions & { readonly field?: string | null },
  ) {
    super(message, options);
    this.name = "ModelDirectoryError";
    this.dir = dir;
    this.file = file;
    this.field = options?.field ?? null;
  }
}

/**
 * Reads and checks `dir/model.json` (all of it: see `pipeline/model_json/`), then checks that
 * each graph's files exist with the recorded byte sizes (and sha256 with `verify`), and returns
 * the manifest with absolute paths.
 *
 * @throws {ModelDirectoryError} naming the directory, the file and the field of `model.json`.
 */
export async function readModelDirectory(
  dir: string,
  options: ReadModelDirectoryOptions = {},
): Promise<ModelDirectory> {
  const fail: Fail = (
    file,
    problem,
    { cause, field, prefix = `Cannot load model directory "${dir}"` } = {},
  ) => {
    throw new ModelDirectoryError(dir, file, `${prefix}: ${problem}`, {
      ...(cause === undefined ? {} : { cause }),
      field,
    });
  };
  let absolute = "";
  try {
    absolute = await Deno.realPath(dir);
  } catch (cause) {
    fail(".", `the directory cannot be opened (${message(cause)})`, { cause });
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
        { field: "graphs" },
      );
    }
    for (const key of ["file", "data"] as const) {
      const file = graph![key];
      if (file !== undefined) {
        const field = `graphs.${name}.${key}`;
        await checkFile(absolute, file, field, manifest, options.verify ?? false, fail);
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
type Fail = (
  file: string,
  problem: string,
  details?: { cause?: unknown; field?: string; prefix?: string },
) => never;

async function readManifest(path: string, fail: Fail): Promise<ModelManifest> {
  try {
    return await readModelJson(path);
  } catch (cause) {
    if (cause instanceof ModelJsonError) {
      fail(MANIFEST_FILE, cause.message, { cause, field: cause.field ?? undefined });
    }
    if (cause instanceof Deno.errors.NotFound) {
      fail(MANIFEST_FILE, `${MANIFEST_FILE} is missing (is this a converted model directory?)`, {
        cause,
      });
    }
    fail(MANIFEST_FILE, `${MANIFEST_FILE} cannot be read (${message(cause)})`, { cause });
  }
}

/**
 * Checks one file a graph entry names (`field`) against its record in `files`. The reader has
 * made sure the record exists.
 */
async function checkFile(
  dir: string,
  file: string,
  field: string,
  manifest: ModelManifest,
  verify: boolean,
  fail: Fail,
): Promise<void> {
  const recorded = manifest.files[file];
  const named = `(${MANIFEST_FILE} ${field})`;
  let bytes = 0;
  try {
    const stat = await Deno.stat(`${dir}/${file}`);
    if (!stat.isFile) fail(file, `"${file}" is not a file ${named}`, { field });
    bytes = stat.size;
  } catch (cause) {
    if (cause instanceof ModelDirectoryError) throw cause;
    if (cause instanceof Deno.errors.NotFound) {
      fail(file, `"${file}" is missing ${named}`, { cause, field });
    }
    fail(file, `"${file}" cannot be read (${message(cause)}) ${named}`, { cause, field });
  }
  const prefix = `Cannot load weights "${file}" in "${dir}"`;
  const files = `files[${JSON.stringify(file)}]`;
  if (bytes !== recorded.bytes) {
    fail(
      file,
      `${bytes} bytes on disk, ${MANIFEST_FILE} records ${recorded.bytes} (truncated or replaced?)`,
      { prefix, field: `${files}.bytes` },
    );
  }
  if (!verify) return;
  const actual = await sha256File(`${dir}/${file}`);
  if (actual !== recorded.sha256) {
    fail(file, `sha256 mismatch: expected ${recorded.sha256}, got ${actual}`, {
      prefix,
      field: `${files}.sha256`,
    });
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
