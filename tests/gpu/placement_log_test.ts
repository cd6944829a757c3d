/**
 * Parsing ORT's verbose node-placement log (`tests/bench/node_placement.ts`), on logs as ORT 1.30
 * prints them. No GPU needed.
 *
 * Run: deno test tests/gpu/placement_log_test.ts
 */

import assert from "node:assert/strict";
import { computeOnCpu, parsePlacementLog, unexpectedOnCpu } from "../bench/node_placement.ts";

const PREFIX = "2026-12-05 02:23:03.567 [V:onnxruntime:, session_state.cc:1383 " +
  "VerifyEachNodeIsAssignedToAnEp]";

function log(lines: string[]): string {
  return [
    "2026-12-05 02:23:03.5 [V:onnxruntime:, graph.cc:1 Resolve] unrelated verbose line",
    `${PREFIX} Node placements`,
    ...lines.map((line) => `${PREFIX}${line}`),
    "2026-12-05 02:23:03.6 [V:onnxruntime:, session_state.cc:2 Other] after the section",
  ].join("\n");
}

Deno.test("parsePlacementLog() counts each provider's nodes by op type and lists the CPU's", () => {
  const placement = parsePlacementLog(log([
    "  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3",
    "   Gather (Gather)",
    "   Concat (Concat_23)",
    "   Gather (Gather_token_1)",
    "  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 2",
    "   Conv (Conv_5)",
    "   MultiHeadAttention (MultiHeadAttention_9)",
  ]));
  assert.deepEqual(placement.byProvider, {
    CPUExecutionProvider: { Gather: 2, Concat: 1 },
    WebGpuExecutionProvider: { Conv: 1, MultiHeadAttention: 1 },
  });
  assert.deepEqual(placement.cpuNodes, [
    "Gather (Gather)",
    "Concat (Concat_23)",
    "Gather (Gather_token_1)",
  ]);
  assert.deepEqual(computeOnCpu(placement), []);
  assert.deepEqual(unexpectedOnCpu(placement), []);
});

Deno.test("computeOnCpu() flags convolutions, matrix products, attention and norms on the CPU", () => {
  const placement = parsePlacementLog(log([
    "  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 6",
    "   FusedMatMul (MatMul_3)",
    "   InstanceNormalization (InstanceNormalization_7)",
    "   MultiHeadAttention (MultiHeadAttention_1)",
    "   Conv (Conv_2)",
    "   Sin (Sin_3)",
    "   Shape (Shape_4)",
    "  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 1",
    "   Add (Add_1)",
  ]));
  assert.deepEqual(computeOnCpu(placement), [
    "FusedMatMul (MatMul_3)",
    "InstanceNormalization (InstanceNormalization_7)",
    "MultiHeadAttention (MultiHeadAttention_1)",
    "Conv (Conv_2)",
  ]);
  assert.deepEqual(unexpectedOnCpu(placement), [
    "FusedMatMul (MatMul_3)",
    "InstanceNormalization (InstanceNormalization_7)",
    "MultiHeadAttention (MultiHeadAttention_1)",
    "Conv (Conv_2)",
    "Sin (Sin_3)",
  ]);
});

Deno.test("a graph ORT placed wholly on the CPU counts as compute on the CPU", () => {
  const placement = parsePlacementLog(
    `${PREFIX} All nodes placed on [CPUExecutionProvider]. Number of nodes: 42`,
  );
  assert.deepEqual(placement.byProvider, { CPUExecutionProvider: { "(all)": 42 } });
  assert.deepEqual(computeOnCpu(placement), ["(all) (42 nodes)"]);
});

Deno.test("parsePlacementLog() refuses a log without placements or with a short block", () => {
  assert.throws(() => parsePlacementLog("no placements here"), /has no node placements/);
  assert.throws(
    () =>
      parsePlacementLog(log([
        "  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2",
        "   Gather (Gather)",
      ])),
    /announces 2 nodes on CPUExecutionProvider but lists 1/,
  );
});
