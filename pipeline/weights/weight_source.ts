/**
 * Where a graph builder gets its weights: a checkpoint, or seeded random values of the right
 * shapes (for full-size graphs built without the real 9.56 GB files).
 *
 * @module
 */

/** A read-only set of named float tensors. */
export interface WeightSource {
  /** Human-readable origin for messages (a path, or "random(seed=1)"). */
  readonly description: string;
  /** Every key the source holds, or undefined when it can produce any key (random weights). */
  keys(): readonly string[] | undefined;
  /** Shape of `key`, undefined when absent. `expected` is what the builder asks for. */
  dims(key: string, expected: readonly number[]): readonly number[] | undefined;
  /** Values of `key` as float32 (F16/BF16 widened exactly). */
  read(key: string, dims: readonly number[]): Promise<Float32Array>;
}

/** A checkpoint does not fit the network: a key is missing, has the wrong shape, or is unused. */
export class WeightsMismatchError extends Error {
  /** The offending checkpoint key. */
  readonly key: string;
  constructor(key: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WeightsMismatchError";
    this.key = key;
  }
}
