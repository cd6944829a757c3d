/**
 * Plain tensors: `{ dims, data }` with free functions (no classes, no ORT types).
 *
 * @module
 */

/** Element types a tensor can hold; names follow safetensors (`F32`, `F16`, ...). */
export type DType = "F32" | "F16" | "BF16" | "I64" | "U8";

/** A float32 tensor in C order. */
export interface Tensor {
  /** Shape, outermost first. */
  readonly dims: readonly number[];
  /** Values in C order; `data.length === numel(dims)`. */
  readonly data: Float32Array;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Makes a tensor, checking that the data fits the shape. */
export function tensor(dims: readonly number[], data?: Float32Array): Tensor {
  const n = numel(dims);
  const values = data ?? new Float32Array(n);
  if (values.length !== n) {
    throw new RangeError(`Tensor data has ${values.length} values, shape [${dims}] needs ${n}`);
  }
  return { dims: [...dims], data: values };
}

/** Formats a shape as `[a, b, c]` for messages. */
export function formatDims(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** True when two shapes are equal. */
export function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Largest absolute difference between two tensors of the same shape. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (!sameDims(a.dims, b.dims)) {
    throw new RangeError(`Shapes differ: ${formatDims(a.dims)} vs ${formatDims(b.dims)}`);
  }
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
