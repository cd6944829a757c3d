/**
 * GPU-kernel tier: where ONNX Runtime runs each node of the tiny model's four graphs under the
 * WebGPU provider (read from ORT's verbose placement log, `tests/bench/node_placement.ts`). No
 * compute-heavy node (Conv, MatMul/Gemm, attention, normalisation, softmax) may fall back to the
 * CPU; the only CPU nodes allowed are the shape arithmetic ORT keeps there on purpose.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env --allow-run tests/gpu/placement_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { convertCheckpoint } from "../../pipeline/convert/convert.ts";
import { readModelDirectory } from "../../pipeline/runtime/model_dir.ts";
import { CheckpointWeights } from "../../pipeline/weights/checkpoint_weights.ts";
import {
  computeOnCpu,
  ORT_PROVIDER_NAMES,
  readNodePlacement,
  unexpectedOnCpu,
} from "../bench/node_placement.ts";
import { fixturePath } from "../_fixtures.ts";
import { webgpuTest } from "./_webgpu.ts";

for (const attention of ["fused", "decomposed"] as const) {
  webgpuTest(
    `WebGPU runs every compute node of the ${attention}-attention graphs itself`,
    async () => {
      const root = await Deno.makeTempDir({ prefix: "placement_test_" });
      try {
        using source = await CheckpointWeights.open([fixturePath("weights.safetensors")]);
        const config = await loadConfig(fixturePath("config.yaml"));
        await convertCheckpoint({ config, source, out: `${root}/tiny`, attention });
        const model = await readModelDirectory(`${root}/tiny`);
        for (const graph of Object.values(model.graphs)) {
          const placement = await readNodePlacement(graph.path, "webgpu");
          const onGpu = placement.byProvider[ORT_PROVIDER_NAMES.webgpu] ?? {};
          const cpu = placement.byProvider[ORT_PROVIDER_NAMES.cpu] ?? {};
          console.log(
            `  ${graph.name}: ${sum(onGpu)} nodes on WebGPU, ${sum(cpu)} on the CPU ${
              JSON.stringify(cpu)
            }`,
          );
          assert.deepEqual(computeOnCpu(placement), [], `${graph.name}: compute on the CPU`);
          assert.deepEqual(unexpectedOnCpu(placement), [], `${graph.name}: unexpected CPU nodes`);
          // The compute itself is there: attention in the chosen form, convolutions, norms.
          const expected = attention === "fused" ? "MultiHeadAttention" : "Softmax";
          assert.ok(onGpu[expected] > 0, `${graph.name}: no ${expected} on WebGPU`);
        }
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  );
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
