/**
 * A thin ONNX graph builder: values are names, nodes are appended in order, initializers are
 * either small inline constants or lazily loaded weights that the model writer streams to disk.
 *
 * This module and `model_writer.ts` are the only places that know ONNX's data model; the network
 * files describe SVD in terms of `GraphBuilder` calls.
 *
 * @module
 */

/** ONNX element types used by the builders. */
export type ElementType = "float32" | "float16" | "int64" | "bool";

/** ONNX `TensorProto.DataType` codes. */
export const ONNX_DATA_TYPE: Record<ElementType, number> = {
  float32: 1,
  bool: 9,
  float16: 10,
  int64: 7,
};

/** Attribute values a node may carry. */
export type AttributeValue = number | string | number[] | { ints: number[] } | { float: number };

/** One node of the graph. */
export interface GraphNode {
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

/** A graph input or output: name, element type, and dims (numbers or symbolic names). */
export interface ValueInfo {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly (number | string)[];
}

/** An initializer: inline `data`, or `load` called once by the writer when it streams weights. */
export interface Initializer {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly number[];
  readonly byteLength: number;
  readonly data?: Uint8Array;
  readonly load?: () => Promise<Uint8Array>;
}

const BYTES: Record<ElementType, number> = { float32: 4, float16: 2, int64: 8, bool: 1 };

/** Builds one ONNX graph. */
export class GraphBuilder {
  readonly name: string;
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly nodes: GraphNode[] = [];
  readonly initializers: Initializer[] = [];
  /** Opset imports: domain → version. */
  readonly opsets = new Map<string, number>([["", 21]]);
  readonly #names = new Set<string>();
  readonly #constants = new Map<string, string>();
  #counter = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Declares a graph input and returns its value name. */
  input(name: string, type: ElementType, dims: readonly (number | string)[]): string {
    this.#claim(name);
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Declares `value` as a graph output named `name` (an Identity is added when names differ). */
  output(name: string, value: string, type: ElementType, dims: readonly (number | string)[]): void {
    if (value !== name) this.node("Identity", [value], {}, { outputs: [name] });
    this.outputs.push({ name, type, dims });
  }

  /**
   * Appends a node and returns its output names (one unless `options.outputs` asks for more).
   * Pass `""` as an input to leave an optional input out.
   */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    options: { domain?: string; outputs?: number | readonly string[]; name?: string } = {},
  ): string[] {
    const domain = options.domain ?? "";
    if (domain !== "" && !this.opsets.has(domain)) this.opsets.set(domain, 1);
    const n = this.#counter++;
    const outputs = typeof options.outputs === "object"
      ? [...options.outputs]
      : Array.from({ length: options.outputs ?? 1 }, (_, i) => `${opType}_${n}_${i}`);
    for (const output of outputs) this.#claim(output);
    this.nodes.push({
      opType,
      domain,
      name: options.name ?? `${opType}_${n}`,
      inputs: [...inputs],
      outputs,
      attributes,
    });
    return outputs;
  }

  /** Appends a single-output node and returns its output. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    domain = "",
  ): string {
    return this.node(opType, inputs, attributes, { domain })[0];
  }

  /** A float32 constant (deduplicated by value). */
  constFloat(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.#constant("float32", dims, new Uint8Array(new Float32Array(values).buffer));
  }

  /** A float16 constant (deduplicated by value). */
  constHalf(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.#constant("float16", dims, float32ToFloat16Bytes(new Float32Array(values)).bytes);
  }

  /** An int64 constant (deduplicated by value). */
  constInt(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.#constant(
      "int64",
      dims,
      new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer),
    );
  }

  /** Adds an initializer whose bytes are loaded only when the model is written. */
  addInitializer(init: Initializer): string {
    this.#claim(init.name);
    const expected = init.dims.reduce((a, b) => a * b, 1) * BYTES[init.type];
    if (init.byteLength !== expected) {
      throw new RangeError(
        `Initializer "${init.name}" declares ${init.byteLength} bytes, ${init.type} [${init.dims}] needs ${expected}`,
      );
    }
    this.initializers.push(init);
    return init.name;
  }

  #constant(type: ElementType, dims: readonly number[], data: Uint8Array): string {
    const key = `${type}|${dims.join(",")}|${Array.from(data).join(",")}`;
    const known = this.#constants.get(key);
    if (known) return known;
    const name = `const_${this.#constants.size}`;
    this.addInitializer({ name, type, dims, byteLength: data.byteLength, data });
    this.#constants.set(key, name);
    return name;
  }

  #claim(name: string): void {
    if (this.#names.has(name)) throw new RangeError(`Value name "${name}" is used twice`);
    this.#names.add(name);
  }
}

/** Bytes per element of an ONNX element type. */
export function bytesPerElement(type: ElementType): number {
  return BYTES[type];
}

/**
 * Rounds float32 values to IEEE half, saturating at ±65504 (finite values never become
 * infinite), and reports how many were clipped.
 */
export function float32ToFloat16Bytes(
  values: Float32Array,
): { bytes: Uint8Array; clipped: number } {
  const out = new Uint16Array(values.length);
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    if (v > 65504) {
      v = 65504;
      clipped++;
    } else if (v < -65504) {
      v = -65504;
      clipped++;
    }
    out[i] = floatToHalfBits(v);
  }
  return { bytes: new Uint8Array(out.buffer), clipped };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round to nearest even. */
export function floatToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rem = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rem = mantissa & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}
