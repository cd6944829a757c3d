/**
 * Element type, concrete shape and (for small integer tensors) value of every value of a
 * {@linkcode GraphBuilder} graph, for given input shapes, without running it: what ONNX shape
 * inference does, for the ops our builders emit, with the symbolic dims bound to numbers.
 *
 * Two users: the CUDA coverage check (which (op, domain, dtype) a graph holds) and the memory plan
 * (the size of every activation and when it dies). Tests check it value by value against ONNX
 * Runtime on the tiny model, so a rule that drifts from ORT's shapes or types fails there.
 *
 * Not a library: none exists for JS (onnx's shape inference is C++/Python; onnxruntime-node does
 * not expose intermediate shapes), and our op set is small. An op without a rule here stops the
 * inference with its name, so a builder that starts emitting a new op cannot be planned or
 * checked silently wrong.
 *
 * @module
 */

import type { ElementType, GraphBuilder, GraphNode, Initializer } from "./graph.ts";

/** What is known of one value. */
export interface ValueInfo {
  readonly type: ElementType;
  readonly dims: readonly number[];
  /** Element values, for small int64/float tensors computed from shapes and constants. */
  readonly value?: readonly number[];
}

/** Thrown when the graph cannot be inferred: unknown op, missing value, inconsistent shapes. */
export class ShapeInferenceError extends Error {
  constructor(node: GraphNode | undefined, message: string) {
    super(node ? `${node.name} (${node.opType}): ${message}` : message);
    this.name = "ShapeInferenceError";
  }
}

const CAST_TO: Record<number, ElementType> = { 1: "float32", 7: "int64", 9: "bool", 10: "float16" };
/** Tensors up to this many elements carry their values (shape arithmetic, scalars). */
const VALUE_LIMIT = 64;

type Rule = (inputs: (ValueInfo | undefined)[], node: GraphNode) => ValueInfo[];

/**
 * Infers every value of `graph` for the given input dims (every graph input by name).
 *
 * @returns value name → info, for inputs, initializers and every node output
 * @throws {ShapeInferenceError} naming the node that cannot be inferred
 *
 * @example
 * ```ts
 * const { graph } = buildVideoUnet(FULL.unet, new RecordingSource(), { precision: "fp16" });
 * const values = inferShapes(graph, { x: [50, 8, 72, 128], timesteps: [50], ... });
 * values.get("out")!.dims; // [50, 4, 72, 128]
 * ```
 */
export function inferShapes(
  graph: GraphBuilder,
  inputDims: Readonly<Record<string, readonly number[]>>,
): Map<string, ValueInfo> {
  const values = new Map<string, ValueInfo>();
  for (const input of graph.inputs) {
    const dims = inputDims[input.name];
    if (!dims) {
      throw new ShapeInferenceError(undefined, `No dims given for graph input "${input.name}"`);
    }
    if (dims.length !== input.dims.length) {
      throw new ShapeInferenceError(
        undefined,
        `Input "${input.name}" has rank ${input.dims.length}, got dims [${dims}]`,
      );
    }
    input.dims.forEach((d, i) => {
      if (typeof d === "number" && d !== dims[i]) {
        throw new ShapeInferenceError(
          undefined,
          `Input "${input.name}" has dim ${i} = ${d}, got dims [${dims}]`,
        );
      }
    });
    values.set(input.name, { type: input.type, dims: [...dims] });
  }
  for (const init of graph.initializers) values.set(init.name, initializerInfo(init));
  for (const node of graph.nodes) {
    const rule = RULES[`${node.domain}:${node.opType}`];
    if (!rule) {
      throw new ShapeInferenceError(
        node,
        `no shape rule for ${
          node.domain || "ai.onnx"
        }.${node.opType}: add one to shape_inference.ts`,
      );
    }
    const inputs = node.inputs.map((name) => {
      if (name === "") return undefined;
      const info = values.get(name);
      if (!info) throw new ShapeInferenceError(node, `input "${name}" is not defined before use`);
      return info;
    });
    const outputs = rule(inputs, node);
    node.outputs.forEach((name, i) => {
      if (outputs[i]) values.set(name, withValueLimit(outputs[i]));
    });
  }
  return values;
}

/** Bytes of one value. */
export function valueBytes(info: ValueInfo): number {
  const per = info.type === "float32"
    ? 4
    : info.type === "float16"
    ? 2
    : info.type === "int64"
    ? 8
    : 1;
  return info.dims.reduce((a, b) => a * b, 1) * per;
}

function withValueLimit(info: ValueInfo): ValueInfo {
  if (info.value && info.value.length > VALUE_LIMIT) return { type: info.type, dims: info.dims };
  return info;
}

function initializerInfo(init: Initializer): ValueInfo {
  if (!init.data || init.dims.reduce((a, b) => a * b, 1) > VALUE_LIMIT) {
    return { type: init.type, dims: init.dims };
  }
  const bytes = init.data;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = init.dims.reduce((a, b) => a * b, 1);
  const value: number[] = [];
  for (let i = 0; i < n; i++) {
    if (init.type === "int64") value.push(Number(view.getBigInt64(8 * i, true)));
    else if (init.type === "float32") value.push(view.getFloat32(4 * i, true));
    else if (init.type === "float16") value.push(halfToFloat(view.getUint16(2 * i, true)));
    else value.push(view.getUint8(i));
  }
  return { type: init.type, dims: init.dims, value };
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** IEEE half bits → number. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function need(node: GraphNode, info: ValueInfo | undefined, what: string): ValueInfo {
  if (!info) throw new ShapeInferenceError(node, `missing ${what}`);
  return info;
}

function needValue(node: GraphNode, info: ValueInfo | undefined, what: string): readonly number[] {
  const v = need(node, info, what).value;
  if (!v) throw new ShapeInferenceError(node, `${what} is not a constant computable from shapes`);
  return v;
}

function attr(node: GraphNode, name: string): unknown {
  const value = node.attributes[name];
  if (value !== null && typeof value === "object" && "ints" in value) return value.ints;
  if (value !== null && typeof value === "object" && "float" in value) return value.float;
  return value;
}

function axisOf(axis: number, rank: number, node: GraphNode): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeInferenceError(node, `axis ${axis} out of rank ${rank}`);
  return a;
}

function sameType(node: GraphNode, infos: ValueInfo[]): void {
  for (const info of infos) {
    if (info.type !== infos[0].type) {
      throw new ShapeInferenceError(
        node,
        `inputs mix ${infos[0].type} and ${info.type}: ONNX requires one type here`,
      );
    }
  }
}

/** numpy broadcasting of several shapes. */
function broadcast(node: GraphNode, shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + i] ?? 1;
      if (x === 1) continue;
      if (d !== 1 && d !== x) {
        throw new ShapeInferenceError(
          node,
          `shapes ${shapes.map((s) => `[${s}]`)} do not broadcast`,
        );
      }
      d = x;
    }
    out.push(d);
  }
  return out;
}

/** Element-wise values of a broadcast op when every input has values of the same length. */
function elementwise(
  inputs: ValueInfo[],
  f: (...xs: number[]) => number,
): readonly number[] | undefined {
  if (!inputs.every((i) => i.value)) return undefined;
  const n = Math.max(...inputs.map((i) => i.value!.length));
  if (!inputs.every((i) => i.value!.length === n || i.value!.length === 1)) return undefined;
  return Array.from(
    { length: n },
    (_, k) => f(...inputs.map((i) => i.value![i.value!.length === 1 ? 0 : k])),
  );
}

function unary(inputs: (ValueInfo | undefined)[], node: GraphNode): ValueInfo[] {
  const x = need(node, inputs[0], "input");
  return [{ type: x.type, dims: x.dims }];
}

function binary(f?: (a: number, b: number) => number, outType?: ElementType): Rule {
  return (inputs, node) => {
    const xs = inputs.map((x, i) => need(node, x, `input ${i}`));
    sameType(node, xs);
    const value = f ? elementwise(xs, f) : undefined;
    return [{ type: outType ?? xs[0].type, dims: broadcast(node, xs.map((x) => x.dims)), value }];
  };
}

/** Slice bounds of ONNX Slice / Split semantics, clamped as ONNX does. */
function sliceRange(start: number, end: number, step: number, dim: number): number[] {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
  } else {
    s = clamp(s, 0, dim - 1);
    e = clamp(e, -1, dim - 1);
  }
  const out: number[] = [];
  for (let i = s; step > 0 ? i < e : i > e; i += step) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rules, by "domain:op"

const RULES: Record<string, Rule> = {
  ":Identity": (inputs, node) => [need(node, inputs[0], "input")],
  ":Cast": (inputs, node) => {
    const x = need(node, inputs[0], "input");
    const to = CAST_TO[attr(node, "to") as number];
    if (!to) throw new ShapeInferenceError(node, `Cast to ${attr(node, "to")} is not modelled`);
    return [{ type: to, dims: x.dims, value: x.value }];
  },
  ":Shape": (inputs, node) => {
    const x = need(node, inputs[0], "input");
    return [{ type: "int64", dims: [x.dims.length], value: [...x.dims] }];
  },
  ":Add": binary((a, b) => a + b),
  ":Sub": binary((a, b) => a - b),
  ":Mul": binary((a, b) => a * b),
  ":Div": binary((a, b) => a / b),
  ":Equal": binary((a, b) => (a === b ? 1 : 0), "bool"),
  ":Where": (inputs, node) => {
    const [c, a, b] = inputs.map((x, i) => need(node, x, `input ${i}`));
    if (c.type !== "bool") throw new ShapeInferenceError(node, `condition is ${c.type}, not bool`);
    sameType(node, [a, b]);
    return [{ type: a.type, dims: broadcast(node, [c.dims, a.dims, b.dims]) }];
  },
  ":Sigmoid": unary,
  ":Cos": unary,
  ":Sin": unary,
  ":Erf": unary,
  ":Gelu": unary,
  ":Softmax": unary,
  ":InstanceNormalization": unary,
  ":LayerNormalization": (inputs, node) => {
    const [x, scale] = [need(node, inputs[0], "X"), need(node, inputs[1], "Scale")];
    if (node.outputs.length > 1) {
      throw new ShapeInferenceError(node, "only the Y output of LayerNormalization is modelled");
    }
    sameType(node, [x, scale]);
    return [{ type: x.type, dims: x.dims }];
  },
  ":ReduceMean": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const axes = inputs[1] ? needValue(node, inputs[1], "axes") : [];
    if (axes.length === 0 && attr(node, "noop_with_empty_axes") === 1) {
      return [{ type: x.type, dims: x.dims }];
    }
    // No axes: every axis is reduced.
    const reduced = axes.length === 0
      ? x.dims.map((_, i) => i)
      : axes.map((a) => axisOf(a, x.dims.length, node));
    const keep = (attr(node, "keepdims") as number | undefined) ?? 1;
    const dims = keep
      ? x.dims.map((d, i) => (reduced.includes(i) ? 1 : d))
      : x.dims.filter((_, i) => !reduced.includes(i));
    return [{ type: x.type, dims }];
  },
  ":Clip": (inputs, node) => {
    const xs = inputs.filter((x) => x) as ValueInfo[];
    sameType(node, xs);
    return unary(inputs, node);
  },
  ":MatMul": (inputs, node) => {
    const [a, b] = [need(node, inputs[0], "A"), need(node, inputs[1], "B")];
    sameType(node, [a, b]);
    if (a.dims.length < 2 || b.dims.length < 2) {
      throw new ShapeInferenceError(node, "1-D MatMul operands are not modelled");
    }
    const [m, k] = a.dims.slice(-2);
    const [k2, n] = b.dims.slice(-2);
    if (k !== k2) throw new ShapeInferenceError(node, `inner dims ${k} and ${k2} differ`);
    const batch = broadcast(node, [a.dims.slice(0, -2), b.dims.slice(0, -2)]);
    return [{ type: a.type, dims: [...batch, m, n] }];
  },
  ":Conv": (inputs, node) => {
    const x = need(node, inputs[0], "X");
    const w = need(node, inputs[1], "W");
    sameType(node, inputs.filter((v) => v) as ValueInfo[]);
    const spatial = x.dims.length - 2;
    const kernel = (attr(node, "kernel_shape") as number[] | undefined) ?? w.dims.slice(2);
    const stride = (attr(node, "strides") as number[] | undefined) ?? new Array(spatial).fill(1);
    const dilation = (attr(node, "dilations") as number[] | undefined) ??
      new Array(spatial).fill(1);
    const pads = (attr(node, "pads") as number[] | undefined) ?? new Array(2 * spatial).fill(0);
    const group = (attr(node, "group") as number | undefined) ?? 1;
    if (w.dims[1] * group !== x.dims[1]) {
      throw new ShapeInferenceError(node, `W [${w.dims}] does not fit X [${x.dims}]`);
    }
    const out = [x.dims[0], w.dims[0]];
    for (let i = 0; i < spatial; i++) {
      const size = x.dims[2 + i] + pads[i] + pads[spatial + i];
      out.push(Math.floor((size - dilation[i] * (kernel[i] - 1) - 1) / stride[i]) + 1);
    }
    return [{ type: x.type, dims: out }];
  },
  ":Reshape": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const shape = needValue(node, inputs[1], "shape");
    const total = x.dims.reduce((a, b) => a * b, 1);
    const out = shape.map((d, i) => (d === 0 ? x.dims[i] : d));
    const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const inferred = out.map((d) => (d === -1 ? total / known : d));
    if (out.filter((d) => d === -1).length > 1 || inferred.reduce((a, b) => a * b, 1) !== total) {
      throw new ShapeInferenceError(node, `cannot reshape [${x.dims}] to [${shape}]`);
    }
    return [{ type: x.type, dims: inferred, value: x.value }];
  },
  ":Transpose": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const perm = (attr(node, "perm") as number[] | undefined) ??
      x.dims.map((_, i) => x.dims.length - 1 - i);
    return [{ type: x.type, dims: perm.map((p) => x.dims[p]) }];
  },
  ":Unsqueeze": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const axes = needValue(node, inputs[1], "axes");
    const rank = x.dims.length + axes.length;
    const normal = axes.map((a) => axisOf(a, rank, node));
    const out: number[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) out.push(normal.includes(i) ? 1 : x.dims[k++]);
    return [{ type: x.type, dims: out, value: x.value }];
  },
  ":Squeeze": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const axes = inputs[1]
      ? needValue(node, inputs[1], "axes").map((a) => axisOf(a, x.dims.length, node))
      : x.dims.flatMap((d, i) => (d === 1 ? [i] : []));
    for (const a of axes) {
      if (x.dims[a] !== 1) throw new ShapeInferenceError(node, `axis ${a} of [${x.dims}] is not 1`);
    }
    return [{ type: x.type, dims: x.dims.filter((_, i) => !axes.includes(i)), value: x.value }];
  },
  ":Concat": (inputs, node) => {
    const xs = inputs.map((x, i) => need(node, x, `input ${i}`));
    sameType(node, xs);
    const axis = axisOf(attr(node, "axis") as number, xs[0].dims.length, node);
    const dims = [...xs[0].dims];
    dims[axis] = xs.reduce((sum, x) => sum + x.dims[axis], 0);
    const value = xs[0].dims.length === 1 && xs.every((x) => x.value)
      ? xs.flatMap((x) => x.value!)
      : undefined;
    return [{ type: xs[0].type, dims, value }];
  },
  ":Split": (inputs, node) => {
    const x = need(node, inputs[0], "input");
    const axis = axisOf((attr(node, "axis") as number | undefined) ?? 0, x.dims.length, node);
    const sizes = inputs[1]
      ? needValue(node, inputs[1], "split")
      : new Array(node.outputs.length).fill(x.dims[axis] / node.outputs.length);
    if (sizes.reduce((a, b) => a + b, 0) !== x.dims[axis] || sizes.length !== node.outputs.length) {
      throw new ShapeInferenceError(node, `split [${sizes}] does not fit axis of ${x.dims[axis]}`);
    }
    return sizes.map((s) => ({ type: x.type, dims: x.dims.map((d, i) => (i === axis ? s : d)) }));
  },
  ":Slice": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const starts = needValue(node, inputs[1], "starts");
    const ends = needValue(node, inputs[2], "ends");
    const axes = inputs[3] ? needValue(node, inputs[3], "axes") : starts.map((_, i) => i);
    const steps = inputs[4] ? needValue(node, inputs[4], "steps") : starts.map(() => 1);
    const kept = x.dims.map((d) => Array.from({ length: d }, (_, i) => i));
    axes.forEach((a, i) => {
      const axis = axisOf(a, x.dims.length, node);
      kept[axis] = sliceRange(starts[i], ends[i], steps[i], x.dims[axis]);
    });
    const dims = kept.map((k) => k.length);
    let value: number[] | undefined;
    if (x.value && x.dims.length === 1) value = kept[0].map((i) => x.value![i]);
    return [{ type: x.type, dims, value }];
  },
  ":Gather": (inputs, node) => {
    const x = need(node, inputs[0], "data");
    const indices = need(node, inputs[1], "indices");
    const axis = axisOf((attr(node, "axis") as number | undefined) ?? 0, x.dims.length, node);
    const dims = [...x.dims.slice(0, axis), ...indices.dims, ...x.dims.slice(axis + 1)];
    let value: number[] | undefined;
    if (x.value && indices.value && x.dims.length === 1) {
      value = indices.value.map((i) => x.value![i < 0 ? i + x.dims[0] : i]);
    }
    return [{ type: x.type, dims, value }];
  },
  ":Range": (inputs, node) => {
    const [start, limit, delta] = ["start", "limit", "delta"].map((w, i) => {
      const v = needValue(node, inputs[i], w);
      if (v.length !== 1) throw new ShapeInferenceError(node, `${w} is not a scalar`);
      return v[0];
    });
    const n = Math.max(Math.ceil((limit - start) / delta), 0);
    return [{
      type: need(node, inputs[0], "start").type,
      dims: [n],
      value: Array.from({ length: n }, (_, i) => start + i * delta),
    }];
  },
  ":Expand": (inputs, node) => {
    const x = need(node, inputs[0], "input");
    const shape = needValue(node, inputs[1], "shape");
    return [{ type: x.type, dims: broadcast(node, [x.dims, shape]) }];
  },
  ":Resize": (inputs, node) => {
    const x = need(node, inputs[0], "X");
    if (inputs[3]) {
      return [{ type: x.type, dims: [...needValue(node, inputs[3], "sizes")] }];
    }
    const scales = needValue(node, inputs[2], "scales");
    return [{ type: x.type, dims: x.dims.map((d, i) => Math.floor(d * scales[i])) }];
  },
  "com.microsoft:MultiHeadAttention": (inputs, node) => {
    const q = need(node, inputs[0], "query");
    const k = need(node, inputs[1], "key");
    const v = need(node, inputs[2], "value");
    sameType(node, [q, k, v]);
    if (q.dims.length !== 3 || k.dims.length !== 3 || v.dims.length !== 3) {
      throw new ShapeInferenceError(
        node,
        "only 3-D query, key and value ([B, S, hidden]) are modelled",
      );
    }
    if (inputs.length > 3 || node.outputs.length > 1) {
      throw new ShapeInferenceError(
        node,
        "only the query/key/value form without extras is modelled",
      );
    }
    return [{ type: q.type, dims: [q.dims[0], q.dims[1], v.dims[2]] }];
  },
};
