/**
 * Activation memory of one graph run, from the graph itself: every intermediate tensor's size
 * (from {@linkcode inferShapes}) and when it dies (its last consumer), replayed in node order
 * through a model of ONNX Runtime's BFC arena.
 *
 * What the model assumes (each a fact of ORT's source unless marked as an assumption):
 * - Nodes run in the builder's order (a topological order; ORT's own order may differ a little).
 * - Each node's outputs are allocated before it runs; an input is freed after its last consumer.
 *   Graph inputs (the device copies of the feeds) live for the whole run, graph outputs from their
 *   producer to the end. Initializers are weights and are counted elsewhere.
 * - `Reshape`, `Squeeze`, `Unsqueeze` and `Identity` alias their input (ORT's kernels declare
 *   `Alias(0, 0)`): no new buffer, the input's lifetime extends.
 * - Assumption, conservative: no in-place reuse and no fused nodes. ORT fuses some patterns at
 *   load (SiLU, GELU, bias adds) and may compute some element-wise ops in place, which only
 *   lowers the real figure.
 * - Assumption: every `Conv` also needs a cuDNN workspace the size of its input plus its output
 *   (room for the NCHW↔NHWC transposes of float16 tensor-core convolutions or a transform-based
 *   algorithm), live only while it runs. The exhaustive algorithm search of the first run with
 *   a shape may briefly take up to 90 % of the free memory (ORT's `GetMaxWorkspaceSize`); that
 *   transient is released at once and is not counted here.
 * - `MultiHeadAttention` runs flash or memory-efficient attention (docs/cuda.md): scratch of
 *   `4·B·N·S` bytes (the softmax log-sum-exp), never the `B·N·S·L` score matrix.
 * - The arena: `BFCArena` with `kNextPowerOfTwo` from 1 MiB (ORT's CUDA default, not settable
 *   from onnxruntime-node): best-fit over free chunks, a chunk is split only when at least twice
 *   the request or more than 128 MiB would be wasted, neighbours coalesce on free, and when
 *   nothing fits a new region is reserved: the current region size, doubled until the request
 *   fits; after a region that needed no doubling the next one is twice as large, but no larger
 *   than `max_power_of_two_extend_bytes` (1 GiB). Regions are never returned during a session.
 *
 * @module
 */

import type { GraphBuilder } from "../onnx/graph.ts";
import { valueBytes, type ValueInfo } from "../onnx/shape_inference.ts";

/** One allocation or free of the replay. */
export type MemoryEvent =
  | { readonly kind: "alloc"; readonly id: number; readonly bytes: number; readonly node: string }
  | { readonly kind: "free"; readonly id: number };

/** The allocations of one run, in order. */
export interface RunAllocations {
  readonly events: readonly MemoryEvent[];
  /** Largest sum of live bytes at any point: what any allocator needs at least. */
  readonly livePeakBytes: number;
  /** Node during which the live peak happens. */
  readonly livePeakNode: string;
}

/** ORT's arena after a run. */
export interface ArenaState {
  /** Bytes of all regions reserved from the device. */
  readonly reservedBytes: number;
  readonly regions: readonly number[];
  /** Largest bytes in use at once (after rounding to 256 B). */
  readonly peakInUseBytes: number;
  /**
   * Bytes of the regions ever handed out, up to each region's highest used address: what a CPU
   * arena makes resident (its regions are malloc'd; pages count once written).
   */
  readonly touchedBytes: number;
}

const ALIASING_OPS = new Set(["Reshape", "Squeeze", "Unsqueeze", "Identity"]);

/**
 * The allocations of one run of `graph` with the inferred `values`, in node order.
 *
 * @param values `inferShapes(graph, inputDims)` for the run's input dims
 */
export function runAllocations(
  graph: GraphBuilder,
  values: ReadonlyMap<string, ValueInfo>,
): RunAllocations {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const bytesOf = (name: string) => {
    const info = values.get(name);
    if (!info) throw new RangeError(`No inferred shape for "${name}"`);
    return valueBytes(info);
  };

  // Buffer of every value (aliases share their input's buffer) and the last step using it.
  const bufferOf = new Map<string, number>();
  const bufferBytes: number[] = [];
  const lastUse: number[] = [];
  const END = graph.nodes.length;
  const newBuffer = (name: string, bytes: number, step: number) => {
    const id = bufferBytes.length;
    bufferBytes.push(bytes);
    lastUse.push(step);
    bufferOf.set(name, id);
    return id;
  };
  for (const input of graph.inputs) newBuffer(input.name, bytesOf(input.name), END);
  graph.nodes.forEach((node, step) => {
    for (const name of node.inputs) {
      const id = bufferOf.get(name);
      if (id !== undefined) lastUse[id] = Math.max(lastUse[id], step);
    }
    node.outputs.forEach((name, i) => {
      const aliased = i === 0 && ALIASING_OPS.has(node.opType)
        ? bufferOf.get(node.inputs[0])
        : undefined;
      if (aliased !== undefined) bufferOf.set(name, aliased);
      else newBuffer(name, bytesOf(name), step);
    });
  });
  for (const name of outputs) {
    const id = bufferOf.get(name);
    if (id !== undefined) lastUse[id] = END;
  }

  const events: MemoryEvent[] = [];
  let live = 0;
  let livePeakBytes = 0;
  let livePeakNode = "";
  let scratchId = bufferBytes.length;
  const alloc = (id: number, bytes: number, node: string) => {
    events.push({ kind: "alloc", id, bytes, node });
    live += bytes;
    if (live > livePeakBytes) {
      livePeakBytes = live;
      livePeakNode = node;
    }
  };
  const free = (id: number, bytes: number) => {
    events.push({ kind: "free", id });
    live -= bytes;
  };

  const inputIds = graph.inputs.map((input) => bufferOf.get(input.name)!);
  for (const id of inputIds) alloc(id, bufferBytes[id], "(feeds)");
  const dying = new Map<number, number[]>();
  lastUse.forEach((step, id) => {
    if (step >= END) return;
    if (!dying.has(step)) dying.set(step, []);
    dying.get(step)!.push(id);
  });
  graph.nodes.forEach((node, step) => {
    node.outputs.forEach((name, i) => {
      if (i === 0 && ALIASING_OPS.has(node.opType) && bufferOf.has(node.inputs[0])) return;
      const id = bufferOf.get(name)!;
      alloc(id, bufferBytes[id], node.name);
    });
    const scratch = scratchBytes(node, values);
    if (scratch > 0) alloc(scratchId, scratch, node.name);
    if (scratch > 0) free(scratchId++, scratch);
    for (const id of dying.get(step) ?? []) free(id, bufferBytes[id]);
  });
  return { events, livePeakBytes, livePeakNode };
}

/** Bytes a node needs only while it runs (cuDNN workspace, attention scratch). */
function scratchBytes(
  node: GraphBuilder["nodes"][number],
  values: ReadonlyMap<string, ValueInfo>,
): number {
  if (node.opType === "Conv") {
    return valueBytes(values.get(node.inputs[0])!) + valueBytes(values.get(node.outputs[0])!);
  }
  if (node.opType === "MultiHeadAttention") {
    const q = values.get(node.inputs[0])!;
    const heads = node.attributes.num_heads as number;
    return 4 * q.dims[0] * heads * q.dims[1];
  }
  return 0;
}

const MIN_ALLOCATION = 256;
const INITIAL_REGION = 1 << 20;
const MAX_DEAD_BYTES_PER_CHUNK = 128 << 20;
const MAX_POWER_OF_TWO_EXTEND = 1 << 30;

interface Chunk {
  region: number;
  offset: number;
  size: number;
  free: boolean;
}

/**
 * Replays `events` through a model of ORT's BFC arena (see the module doc) and returns what it
 * reserved.
 */
export function simulateBfcArena(events: readonly MemoryEvent[]): ArenaState {
  const regions: number[] = [];
  const highWater: number[] = [];
  let chunks: Chunk[] = [];
  let nextRegion = INITIAL_REGION;
  const held = new Map<number, Chunk>();
  let inUse = 0;
  let peakInUse = 0;

  const round = (n: number) => Math.ceil(n / MIN_ALLOCATION) * MIN_ALLOCATION;
  const extend = (bytes: number) => {
    let increased = false;
    while (bytes > nextRegion) {
      nextRegion *= 2;
      increased = true;
    }
    regions.push(nextRegion);
    highWater.push(0);
    chunks.push({ region: regions.length - 1, offset: 0, size: nextRegion, free: true });
    if (!increased) {
      nextRegion = nextRegion * 2 < MAX_POWER_OF_TWO_EXTEND
        ? nextRegion * 2
        : MAX_POWER_OF_TWO_EXTEND;
    }
  };
  const bestFit = (bytes: number) => {
    let best: Chunk | undefined;
    for (const c of chunks) {
      if (!c.free || c.size < bytes) continue;
      if (!best || c.size < best.size) best = c;
    }
    return best;
  };

  for (const event of events) {
    if (event.kind === "alloc") {
      if (event.bytes === 0) continue;
      const bytes = round(event.bytes);
      let chunk = bestFit(bytes);
      if (!chunk) {
        extend(bytes);
        chunk = bestFit(bytes)!;
      }
      if (chunk.size >= 2 * bytes || chunk.size - bytes >= MAX_DEAD_BYTES_PER_CHUNK) {
        const rest: Chunk = {
          region: chunk.region,
          offset: chunk.offset + bytes,
          size: chunk.size - bytes,
          free: true,
        };
        chunk.size = bytes;
        chunks.splice(chunks.indexOf(chunk) + 1, 0, rest);
      }
      chunk.free = false;
      highWater[chunk.region] = Math.max(highWater[chunk.region], chunk.offset + chunk.size);
      held.set(event.id, chunk);
      inUse += chunk.size;
      peakInUse = Math.max(peakInUse, inUse);
    } else {
      const chunk = held.get(event.id);
      if (!chunk) continue;
      held.delete(event.id);
      inUse -= chunk.size;
      chunk.free = true;
      chunks = coalesce(chunks);
    }
  }
  return {
    reservedBytes: regions.reduce((a, b) => a + b, 0),
    regions,
    peakInUseBytes: peakInUse,
    touchedBytes: highWater.reduce((a, b) => a + b, 0),
  };
}

/** Merges free neighbours of the same region (chunks are kept in region, offset order). */
function coalesce(chunks: Chunk[]): Chunk[] {
  const out: Chunk[] = [];
  for (const c of chunks) {
    const last = out[out.length - 1];
    if (last && last.free && c.free && last.region === c.region) last.size += c.size;
    else out.push(c);
  }
  return out;
}
