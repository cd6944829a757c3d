/**
 * A lazy safetensors reader: parses the header once and reads one tensor at a time by key,
 * so a 9.56 GB checkpoint is never loaded whole.
 *
 * Format: 8-byte little-endian header length N, a JSON header
 * `{ name: { dtype, shape, data_offsets: [begin, end) } , __metadata__?: {..} }`, then the data,
 * little-endian, C order, offsets relative to byte 8 + N.
 *
 * @module
 */

import { type DType, formatDims, numel, type Tensor } from "../tensor.ts";

/** Header entry of one tensor. */
export interface TensorInfo {
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

const BYTES_PER_ELEMENT: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bytes per element of a safetensors dtype. */
export function bytesPerElement(dtype: DType): number {
  return BYTES_PER_ELEMENT[dtype];
}

/** An open safetensors file. Close it with `close()` (or `using`). */
export class SafetensorsFile implements Disposable {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #infos: Map<string, TensorInfo>;
  readonly #file: Deno.FsFile;

  private constructor(
    path: string,
    file: Deno.FsFile,
    infos: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#file = file;
    this.#infos = infos;
    this.metadata = metadata;
  }

  /**
   * Opens a file and validates its header (dtypes, shapes, and that every range lies inside the
   * file and matches its shape).
   *
   * @example
   * ```ts
   * using st = await SafetensorsFile.open("tests/fixtures/tiny/unet.safetensors");
   * const out = await st.readFloat32("out"); // { dims: [8, 4, 8, 16], data }
   * ```
   */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const head = await readExactly(file, 0, 8, path);
      const headerLength = Number(new DataView(head.buffer).getBigUint64(0, true));
      if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
        throw new SyntaxError(
          `Cannot read safetensors "${path}": header length ${headerLength} is invalid for a ${size}-byte file`,
        );
      }
      const headerBytes = await readExactly(file, 8, headerLength, path);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(new TextDecoder().decode(headerBytes));
      } catch (cause) {
        throw new SyntaxError(`Cannot read safetensors "${path}": header is not JSON`, { cause });
      }
      const dataStart = 8 + headerLength;
      const infos = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, value] of Object.entries(header)) {
        if (name === "__metadata__") {
          metadata = value as Record<string, string>;
          continue;
        }
        infos.set(name, parseEntry(path, name, value, dataStart, size));
      }
      return new SafetensorsFile(path, file, infos, metadata);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.#infos.keys()];
  }

  /** True when the file holds `key`. */
  has(key: string): boolean {
    return this.#infos.has(key);
  }

  /** Header entry of `key`; throws a `RangeError` naming the key when it is absent. */
  info(key: string): TensorInfo {
    const info = this.#infos.get(key);
    if (!info) throw new RangeError(`Tensor "${key}" is not in "${this.path}"`);
    return info;
  }

  /** Raw little-endian bytes of `key`. */
  readBytes(key: string): Promise<Uint8Array> {
    const info = this.info(key);
    return readExactly(this.#file, info.offset, info.byteLength, this.path);
  }

  /** Reads `key` as float32, widening F16 and BF16 exactly. */
  async readFloat32(key: string): Promise<Tensor> {
    const info = this.info(key);
    const bytes = await this.readBytes(key);
    return { dims: info.dims, data: toFloat32(info.dtype, bytes, key) };
  }

  /** Reads an integer tensor (I64 or U8) as numbers. */
  async readIntegers(key: string): Promise<{ dims: readonly number[]; data: number[] }> {
    const info = this.info(key);
    const bytes = await this.readBytes(key);
    if (info.dtype === "U8") return { dims: info.dims, data: [...bytes] };
    if (info.dtype === "I64") {
      const view = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
      return { dims: info.dims, data: [...view].map(Number) };
    }
    throw new TypeError(`Tensor "${key}" has dtype ${info.dtype}, expected I64 or U8`);
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function parseEntry(
  path: string,
  name: string,
  value: unknown,
  dataStart: number,
  fileSize: number,
): TensorInfo {
  const fail = (why: string) =>
    new SyntaxError(`Cannot read safetensors "${path}": tensor "${name}" ${why}`);
  const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof entry?.dtype !== "string" || !(entry.dtype in BYTES_PER_ELEMENT)) {
    throw fail(`has unsupported dtype ${JSON.stringify(entry?.dtype)} (F32, F16, BF16, I64, U8)`);
  }
  const dtype = entry.dtype as DType;
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw fail(`has an invalid shape ${JSON.stringify(shape)}`);
  }
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]
  ) {
    throw fail(`has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const byteLength = offsets[1] - offsets[0];
  const expected = numel(shape) * BYTES_PER_ELEMENT[dtype];
  if (byteLength !== expected) {
    throw fail(`holds ${byteLength} bytes, but ${dtype} ${formatDims(shape)} needs ${expected}`);
  }
  const offset = dataStart + offsets[0];
  if (offset + byteLength > fileSize) {
    throw fail(`ends at byte ${offset + byteLength}, past the end of the file (${fileSize} bytes)`);
  }
  return { dtype, dims: shape, offset, byteLength };
}

async function readExactly(
  file: Deno.FsFile,
  offset: number,
  length: number,
  path: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(out.subarray(done));
    if (n === null) {
      throw new SyntaxError(
        `Cannot read safetensors "${path}": file ends before byte ${offset + length}`,
      );
    }
    done += n;
  }
  return out;
}

/** Converts raw little-endian bytes of a float dtype to float32 (exact for F16 and BF16). */
export function toFloat32(dtype: DType, bytes: Uint8Array, name = "tensor"): Float32Array {
  switch (dtype) {
    case "F32":
      return bytes.byteOffset % 4 === 0
        ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
        : new Float32Array(bytes.slice().buffer);
    case "F16": {
      const half = new Uint16Array(bytes.slice().buffer);
      const out = new Float32Array(half.length);
      for (let i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]);
      return out;
    }
    case "BF16": {
      const half = new Uint16Array(bytes.slice().buffer);
      const out = new Float32Array(half.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
      return out;
    }
    default:
      throw new TypeError(`Tensor "${name}" has dtype ${dtype}, which is not a float type`);
  }
}

/** IEEE 754 half bits to a number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
