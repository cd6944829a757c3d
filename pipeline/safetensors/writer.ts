/**
 * A streaming safetensors writer: the header is computed from the shapes up front, then each
 * tensor's bytes are produced and written one at a time, so memory stays near the largest tensor.
 *
 * @module
 */

import { type DType, formatDims, numel, type Tensor } from "../tensor.ts";
import { bytesPerElement } from "./reader.ts";

/** One tensor to write; `bytes` is called once, when its turn comes. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly bytes: () => Uint8Array | Promise<Uint8Array>;
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String metadata stored under `__metadata__`. */
  metadata?: Record<string, string>;
  /** Called after each tensor with the bytes written so far and the total. */
  onProgress?: (written: number, total: number) => void;
}

/**
 * Writes `entries` (sorted by name, as safetensors files conventionally are) to `path`.
 * The file appears only when complete: it is written to `path.partial` and renamed.
 *
 * @example
 * ```ts
 * await writeSafetensors("/tmp/a.safetensors", [float32Entry("x", tensor([2], new Float32Array([1, 2])))]);
 * ```
 */
export async function writeSafetensors(
  path: string,
  entries: readonly TensorEntry[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const entry of sorted) {
    if (entry.name in header) throw new RangeError(`Tensor "${entry.name}" is listed twice`);
    const length = numel(entry.dims) * bytesPerElement(entry.dtype);
    header[entry.name] = {
      dtype: entry.dtype,
      shape: entry.dims,
      data_offsets: [offset, offset + length],
    };
    offset += length;
  }
  const total = offset;
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);

  const partial = `${path}.partial`;
  const file = await Deno.open(partial, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, prefix);
    await writeAll(file, headerBytes);
    let written = 0;
    for (const entry of sorted) {
      const bytes = await entry.bytes();
      const expected = numel(entry.dims) * bytesPerElement(entry.dtype);
      if (bytes.byteLength !== expected) {
        throw new RangeError(
          `Tensor "${entry.name}" produced ${bytes.byteLength} bytes, ${entry.dtype} ${
            formatDims(entry.dims)
          } needs ${expected}`,
        );
      }
      await writeAll(file, bytes);
      written += bytes.byteLength;
      options.onProgress?.(written, total);
    }
    file.close();
    await Deno.rename(partial, path);
  } catch (error) {
    try {
      file.close();
    } catch { /* already closed */ }
    await Deno.remove(partial).catch(() => {});
    throw error;
  }
}

/** An entry holding a float32 tensor already in memory. */
export function float32Entry(name: string, t: Tensor): TensorEntry {
  return {
    name,
    dtype: "F32",
    dims: t.dims,
    bytes: () => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  };
}

/** Writes every byte of `bytes`. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += await file.write(bytes.subarray(done));
}
