/**
 * Binds checkpoint keys to graph initializers: every key is shape-checked when a builder takes it,
 * named by its full checkpoint key, loaded only when the model writer streams it, and counted, so
 * that a key the network never used is reported.
 *
 * @module
 */

import { formatDims, numel, sameDims } from "../tensor.ts";
import { WeightsMismatchError, type WeightSource } from "../weights/weight_source.ts";
import { bytesPerElement, float32ToFloat16Bytes, type GraphBuilder } from "./graph.ts";

/** How a checkpoint tensor is laid out in the graph. */
export interface TakeOptions {
  /** Element type stored in the graph (default: the binder's compute type). */
  type?: "float32" | "float16";
  /** Store a 2-D `[out, in]` matrix as `[in, out]` (Linear weights used by MatMul). */
  transpose?: boolean;
  /** Declare the same bytes with another shape (e.g. a (3,1,1) Conv3d kernel as a (3,1) Conv2d). */
  as?: readonly number[];
}

/** Counts of what a build did with its weights. */
export interface WeightStats {
  used: number;
  skipped: number;
  /** Parameters written to the graph. */
  parameters: number;
  /** Parameters of skipped keys (checked, counted, not written). */
  skippedParameters: number;
  /** float16 values clipped to ±65504. */
  clipped: number;
}

/** Takes weights from a {@linkcode WeightSource} into a {@linkcode GraphBuilder}. */
export class WeightBinder {
  readonly source: WeightSource;
  readonly graph: GraphBuilder;
  readonly computeType: "float32" | "float16";
  readonly stats: WeightStats = {
    used: 0,
    skipped: 0,
    parameters: 0,
    skippedParameters: 0,
    clipped: 0,
  };
  readonly #taken = new Map<string, string>();

  constructor(source: WeightSource, graph: GraphBuilder, computeType: "float32" | "float16") {
    this.source = source;
    this.graph = graph;
    this.computeType = computeType;
  }

  /**
   * Checks `key` against `dims` and returns the name of its initializer (the key itself).
   * Throws {@linkcode WeightsMismatchError} naming the key when it is missing, has another shape,
   * or was already taken.
   */
  take(key: string, dims: readonly number[], options: TakeOptions = {}): string {
    this.#check(key, dims);
    const type = options.type ?? this.computeType;
    const graphDims = options.transpose ? [dims[1], dims[0]] : options.as ?? dims;
    if (numel(graphDims) !== numel(dims)) {
      throw new RangeError(`Cannot view "${key}" ${formatDims(dims)} as ${formatDims(graphDims)}`);
    }
    const source = this.source;
    const stats = this.stats;
    const transpose = options.transpose === true;
    this.graph.addInitializer({
      name: key,
      type,
      dims: graphDims,
      byteLength: numel(dims) * bytesPerElement(type),
      load: async () => {
        let values = await source.read(key, dims);
        if (transpose) values = transpose2d(values, dims[0], dims[1]);
        if (type === "float32") {
          return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
        }
        const { bytes, clipped } = float32ToFloat16Bytes(values);
        stats.clipped += clipped;
        return bytes;
      },
    });
    this.#taken.set(key, key);
    this.stats.used++;
    this.stats.parameters += numel(dims);
    return key;
  }

  /**
   * Marks `key` as used without writing it, after checking its shape: for weights that are
   * mathematically irrelevant (the q/k projections of a cross-attention over one context token).
   */
  skip(key: string, dims: readonly number[]): void {
    this.#check(key, dims);
    this.#taken.set(key, "");
    this.stats.skipped++;
    this.stats.skippedParameters += numel(dims);
  }

  /**
   * Throws {@linkcode WeightsMismatchError} when the source holds a key under one of `prefixes`
   * that no builder took.
   */
  assertAllUsed(prefixes: readonly string[]): void {
    const keys = this.source.keys();
    if (!keys) return;
    const unused = keys.filter((k) => prefixes.some((p) => k.startsWith(p)) && !this.#taken.has(k));
    if (unused.length > 0) {
      const shown = unused.slice(0, 5).map((k) => `"${k}"`).join(", ");
      const more = unused.length > 5 ? ` and ${unused.length - 5} more` : "";
      throw new WeightsMismatchError(
        unused[0],
        `Checkpoint ${this.source.description} has ${unused.length} unused key(s) under ${
          prefixes.join(", ")
        }: ${shown}${more}; the config does not match this checkpoint`,
      );
    }
  }

  #check(key: string, dims: readonly number[]): void {
    if (this.#taken.has(key)) {
      throw new WeightsMismatchError(key, `Weight "${key}" is used twice by the graph builder`);
    }
    const actual = this.source.dims(key, dims);
    if (actual === undefined) {
      throw new WeightsMismatchError(
        key,
        `Weight "${key}" is missing from ${this.source.description} (expected shape ${
          formatDims(dims)
        })`,
      );
    }
    if (!sameDims(actual, dims)) {
      throw new WeightsMismatchError(
        key,
        `Weight "${key}" has shape ${
          formatDims(actual)
        } in ${this.source.description}, the config needs ${formatDims(dims)}`,
      );
    }
  }
}

/** `[rows, cols]` → `[cols, rows]`. */
export function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}
