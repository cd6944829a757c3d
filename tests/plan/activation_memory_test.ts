/**
 * The activation replay and the BFC arena model on graphs and allocation sequences small enough
 * to follow by hand.
 *
 * Run: deno test tests/plan/activation_memory_test.ts
 */

import assert from "node:assert/strict";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import { inferShapes } from "../../pipeline/onnx/shape_inference.ts";
import {
  type MemoryEvent,
  runAllocations,
  simulateBfcArena,
} from "../../pipeline/plan/activation_memory.ts";

const MIB = 1024 ** 2;

Deno.test("runAllocations() frees a tensor after its last use and lets Reshape and Identity alias", () => {
  // x [2, 3] float32 = 24 B; y = Sigmoid(x); z = Add(y, x); out = Reshape(z, [6]).
  const g = new GraphBuilder("hand");
  const x = g.input("x", "float32", [2, 3]);
  const y = g.op("Sigmoid", [x]);
  const z = g.op("Add", [y, x]);
  g.output("out", g.op("Reshape", [z, g.constInt([6])]), "float32", [6]); // + an Identity
  const run = runAllocations(g, inferShapes(g, { x: [2, 3] }));
  // feeds: x 24 → Sigmoid: +y 48 → Add: +z 72, then y dies → 48; Reshape and Identity: aliases.
  assert.equal(run.livePeakBytes, 72);
  assert.equal(run.livePeakNode, "Add_1");
  const allocs = run.events.filter((e) => e.kind === "alloc");
  assert.deepEqual(allocs.map((e) => e.kind === "alloc" && e.bytes), [24, 24, 24]);
  assert.equal(run.events.filter((e) => e.kind === "free").length, 1);
});

Deno.test("runAllocations() gives a Conv a workspace of its input plus its output while it runs", () => {
  // x [1, 1, 4, 4] = 64 B; Conv 3×3, pad 1, 2 filters → [1, 2, 4, 4] = 128 B; workspace 192 B.
  const g = new GraphBuilder("conv");
  const x = g.input("x", "float32", [1, 1, 4, 4]);
  const w = g.constFloat(new Array(18).fill(0.1), [2, 1, 3, 3]);
  const y = g.op("Conv", [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.output("y", y, "float32", [1, 2, 4, 4]);
  const run = runAllocations(g, inferShapes(g, { x: [1, 1, 4, 4] }));
  assert.equal(run.livePeakBytes, 64 + 128 + 192);
  // After the Conv only x (a feed) and y (an output) stay.
  let live = 0;
  const sizes = new Map<number, number>();
  for (const e of run.events) {
    if (e.kind === "alloc") {
      sizes.set(e.id, e.bytes);
      live += e.bytes;
    } else live -= sizes.get(e.id)!;
  }
  assert.equal(live, 64 + 128);
});

Deno.test("runAllocations() counts flash attention's log-sum-exp scratch, not a score matrix", () => {
  // q, k, v [2, 1000, 64] float16, 4 heads: scratch 4·B·N·S = 32 000 B; scores would be 16 MB.
  const g = new GraphBuilder("mha");
  const [q, k, v] = ["q", "k", "v"].map((n) => g.input(n, "float16", [2, 1000, 64]));
  const o = g.op("MultiHeadAttention", [q, k, v], { num_heads: 4 }, "com.microsoft");
  g.output("o", o, "float16", [2, 1000, 64]);
  const dims = { q: [2, 1000, 64], k: [2, 1000, 64], v: [2, 1000, 64] };
  const run = runAllocations(g, inferShapes(g, dims));
  const tensor = 2 * 1000 * 64 * 2;
  assert.equal(run.livePeakBytes, 4 * tensor + 4 * 2 * 4 * 1000);
});

Deno.test("simulateBfcArena() reserves power-of-two regions, best-fits and splits as ORT's BFC arena", () => {
  const events: MemoryEvent[] = [
    // 3 MiB: the 1 MiB region size doubles to 4 MiB; no split (4 < 2·3, waste < 128 MiB).
    { kind: "alloc", id: 1, bytes: 3 * MIB, node: "a" },
    // 1 MiB: no free chunk; a region of the current size (4 MiB), split (4 ≥ 2·1); next size 8.
    { kind: "alloc", id: 2, bytes: 1 * MIB, node: "b" },
    { kind: "free", id: 1 },
    // 2 MiB: best fit is the 3 MiB rest of region 2, not the 4 MiB chunk freed in region 1.
    { kind: "alloc", id: 3, bytes: 2 * MIB, node: "c" },
    // 5 MiB: the freed 4 MiB is too small: a new region of the current size, 8 MiB.
    { kind: "alloc", id: 4, bytes: 5 * MIB, node: "d" },
  ];
  const arena = simulateBfcArena(events);
  assert.deepEqual(arena.regions, [4 * MIB, 4 * MIB, 8 * MIB]);
  assert.equal(arena.reservedBytes, 16 * MIB);
  // In use at the end: b 1 + c 3 (unsplit rest) + d 8 (5 MiB in an 8 MiB chunk: 8 < 2·5, no split).
  assert.equal(arena.peakInUseBytes, (1 + 3 + 8) * MIB);
  // Written: region 1 up to 4 MiB (a), region 2 all 4 MiB (b, c), region 3 all 8 MiB (d).
  assert.equal(arena.touchedBytes, 16 * MIB);
});

Deno.test("simulateBfcArena() coalesces freed neighbours and caps region growth at 1 GiB", () => {
  const events: MemoryEvent[] = [];
  // Regions 1, 2, 4, … 512 MiB, then 1 GiB each: 11 allocations of a region's full size.
  let id = 0;
  for (const mib of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024]) {
    events.push({ kind: "alloc", id: id++, bytes: mib * MIB, node: `n${id}` });
  }
  const arena = simulateBfcArena(events);
  assert.deepEqual(arena.regions.map((r) => r / MIB), [
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
    256,
    512,
    1024,
    1024,
    1024,
  ]);
  // Two halves freed in one region merge into a chunk that holds a request of the whole size.
  const merged = simulateBfcArena([
    { kind: "alloc", id: 1, bytes: MIB / 2, node: "a" },
    { kind: "alloc", id: 2, bytes: MIB / 2, node: "b" },
    { kind: "free", id: 1 },
    { kind: "free", id: 2 },
    { kind: "alloc", id: 3, bytes: MIB, node: "c" },
  ]);
  assert.deepEqual(merged.regions, [MIB]);
});
