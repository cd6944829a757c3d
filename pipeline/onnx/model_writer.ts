/**
 * Writes a {@linkcode GraphBuilder} as an ONNX model with external data.
 *
 * Weights are streamed: each initializer's bytes are loaded, written to `<model>.data` and dropped
 * before the next is loaded, so peak memory stays near the largest tensor. The graph itself is
 * small and encoded once at the end. Both files appear only when complete.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from "onnx-buf";
import { writeAll } from "../safetensors/writer.ts";
import {
  type AttributeValue,
  type GraphBuilder,
  type GraphNode,
  ONNX_DATA_TYPE,
  type ValueInfo,
} from "./graph.ts";

/** Options of {@linkcode writeOnnxModel}. */
export interface WriteOnnxOptions {
  /** Initializers smaller than this stay inline in the model file (default 1 KiB). */
  inlineBelow?: number;
  /** Called after each streamed initializer with bytes written so far and the total. */
  onProgress?: (written: number, total: number, name: string) => void;
  /** Metadata stored in the model's `metadata_props`. */
  metadata?: Record<string, string>;
}

/** What {@linkcode writeOnnxModel} wrote. */
export interface WrittenModel {
  readonly modelPath: string;
  /** Path of the external data file, or undefined when every initializer was inline. */
  readonly dataPath?: string;
  readonly modelBytes: number;
  readonly dataBytes: number;
}

const ALIGN_LARGE = 64 * 1024;
const LARGE = 1024 * 1024;

/** Writes `graph` to `modelPath` (and `modelPath + ".data"` for the weights). */
export async function writeOnnxModel(
  graph: GraphBuilder,
  modelPath: string,
  options: WriteOnnxOptions = {},
): Promise<WrittenModel> {
  const inlineBelow = options.inlineBelow ?? 1024;
  const dataPath = `${modelPath}.data`;
  const location = dataPath.slice(dataPath.lastIndexOf("/") + 1);
  const external = graph.initializers.filter((i) => i.byteLength >= inlineBelow || !i.data);
  const total = external.reduce((sum, i) => sum + i.byteLength, 0);

  const partialData = `${dataPath}.partial`;
  const partialModel = `${modelPath}.partial`;
  const cleanup = async () => {
    await Deno.remove(partialData).catch(() => {});
    await Deno.remove(partialModel).catch(() => {});
  };
  const tensors: TensorProto[] = [];
  let offset = 0;
  let streamed = 0;
  try {
    const file = external.length > 0
      ? await Deno.open(partialData, { write: true, create: true, truncate: true })
      : undefined;
    try {
      for (const init of graph.initializers) {
        const proto = create(TensorProtoSchema, {
          name: init.name,
          dataType: ONNX_DATA_TYPE[init.type],
          dims: init.dims.map(BigInt),
        });
        if (!external.includes(init)) {
          proto.rawData = copy(init.data!);
          tensors.push(proto);
          continue;
        }
        const bytes = init.data ?? await init.load!();
        if (bytes.byteLength !== init.byteLength) {
          throw new RangeError(
            `Initializer "${init.name}" loaded ${bytes.byteLength} bytes, expected ${init.byteLength}`,
          );
        }
        const align = init.byteLength >= LARGE ? ALIGN_LARGE : 16;
        const padded = Math.ceil(offset / align) * align;
        if (padded > offset) await writeAll(file!, new Uint8Array(padded - offset));
        offset = padded;
        await writeAll(file!, bytes);
        proto.dataLocation = TensorProto_DataLocation.EXTERNAL;
        proto.externalData = [
          entry("location", location),
          entry("offset", String(offset)),
          entry("length", String(bytes.byteLength)),
        ];
        offset += bytes.byteLength;
        streamed += bytes.byteLength;
        tensors.push(proto);
        options.onProgress?.(streamed, total, init.name);
      }
    } finally {
      file?.close();
    }

    const bytes = modelBytes(graph, tensors, options.metadata);
    await Deno.writeFile(partialModel, bytes);
    if (external.length > 0) await Deno.rename(partialData, dataPath);
    else await Deno.remove(dataPath).catch(() => {});
    await Deno.rename(partialModel, modelPath);
    return {
      modelPath,
      dataPath: external.length > 0 ? dataPath : undefined,
      modelBytes: bytes.byteLength,
      dataBytes: offset,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/**
 * `graph` as the bytes of an ONNX model with every initializer inline, for small graphs that are
 * built and loaded in memory (ONNX Runtime takes a model's bytes; nothing is written).
 *
 * @throws {RangeError} when an initializer has no bytes in memory (a streamed weight).
 */
export function encodeOnnxModel(
  graph: GraphBuilder,
  metadata?: Record<string, string>,
): Uint8Array {
  const tensors = graph.initializers.map((init) => {
    if (!init.data) {
      throw new RangeError(
        `Initializer "${init.name}" is streamed from its source; write the model with writeOnnxModel`,
      );
    }
    return create(TensorProtoSchema, {
      name: init.name,
      dataType: ONNX_DATA_TYPE[init.type],
      dims: init.dims.map(BigInt),
      rawData: copy(init.data),
    });
  });
  return modelBytes(graph, tensors, metadata);
}

/** The serialized ModelProto of `graph` with the initializers `tensors`. */
function modelBytes(
  graph: GraphBuilder,
  tensors: TensorProto[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    producerName: "svd-stream",
    producerVersion: "1",
    opsetImport: [...graph.opsets].map(([domain, version]) =>
      create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })
    ),
    metadataProps: Object.entries(metadata).map(([k, v]) => entry(k, v)),
    graph: create(GraphProtoSchema, {
      name: graph.name,
      node: graph.nodes.map(nodeProto),
      initializer: tensors,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    }),
  });
  return toBinary(ModelProtoSchema, model);
}

function copy(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

function entry(key: string, value: string) {
  return create(StringStringEntryProtoSchema, { key, value });
}

function nodeProto(node: GraphNode) {
  return create(NodeProtoSchema, {
    name: node.name,
    opType: node.opType,
    domain: node.domain,
    input: [...node.inputs],
    output: [...node.outputs],
    attribute: Object.entries(node.attributes).map(([name, value]) => attribute(name, value)),
  });
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === "string") {
    return create(AttributeProtoSchema, {
      name,
      type: AttributeProto_AttributeType.STRING,
      s: new TextEncoder().encode(value),
    });
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value)) {
      throw new TypeError(`Attribute "${name}" = ${value} is not an integer; use { float }`);
    }
    return create(AttributeProtoSchema, {
      name,
      type: AttributeProto_AttributeType.INT,
      i: BigInt(value),
    });
  }
  if (Array.isArray(value)) {
    return create(AttributeProtoSchema, {
      name,
      type: AttributeProto_AttributeType.INTS,
      ints: value.map(BigInt),
    });
  }
  if ("ints" in value) {
    return create(AttributeProtoSchema, {
      name,
      type: AttributeProto_AttributeType.INTS,
      ints: value.ints.map(BigInt),
    });
  }
  return create(AttributeProtoSchema, {
    name,
    type: AttributeProto_AttributeType.FLOAT,
    f: value.float,
  });
}

function valueInfo(info: ValueInfo) {
  return create(ValueInfoProtoSchema, {
    name: info.name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType: ONNX_DATA_TYPE[info.type],
          shape: create(TensorShapeProtoSchema, {
            dim: info.dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === "number"
                  ? { case: "dimValue", value: BigInt(d) }
                  : { case: "dimParam", value: d },
              })
            ),
          }),
        }),
      },
    }),
  });
}
