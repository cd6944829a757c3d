/**
 * CUDA readiness without CUDA: every (op, domain, opset, element types) that the full-size
 * SVD / SVD-XT graphs hold, fp16 and fp32, with fused and with decomposed attention, has a kernel registered by ONNX Runtime's CUDA
 * execution provider, per the rows of `docs/OperatorKernels.md` kept in
 * `tests/fixtures/ort_cuda_kernels.md` (its header says which ORT version and commit).
 *
 * The signatures come from the graph builders themselves (built without weights and typed by
 * `inferShapes`), so a change of graph form is checked without editing this file. A node without
 * a kernel would run on the CPU provider, with a copy across PCIe each way.
 *
 * Run: deno test --allow-read tests/runtime/cuda_coverage_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import type { GraphName } from "../../pipeline/model_json/mod.ts";
import { ATTENTION_FORMS, type AttentionForm } from "../../pipeline/networks/layers.ts";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import {
  formatSignature,
  type OpSignature,
  opSignatures,
} from "../../pipeline/onnx/op_signatures.ts";
import { inferShapes } from "../../pipeline/onnx/shape_inference.ts";
import { buildGraphStructure, graphInputDims } from "../../pipeline/plan/graph_structure.ts";
import { type KernelRow, missingKernel, parseOperatorKernels } from "./_operator_kernels.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const GRAPHS: GraphName[] = ["image_encoder", "vae_encoder", "unet", "vae_decoder"];
/** Types do not depend on sizes: a small run shape keeps the inference quick. */
const RUN = { frames: 2, width: 128, height: 64, decodingT: 2 };

async function cudaKernels(): Promise<KernelRow[]> {
  return parseOperatorKernels(
    await Deno.readTextFile(`${ROOT}tests/fixtures/ort_cuda_kernels.md`),
  );
}

/**
 * Signatures of every graph of `configFile` at `precision` with `attention`, with the graph they
 * come from.
 */
async function signatures(
  configFile: string,
  precision: "fp16" | "fp32",
  attention: AttentionForm,
): Promise<(OpSignature & { graph: GraphName })[]> {
  const config = await loadConfig(`${ROOT}configs/${configFile}`);
  return GRAPHS.flatMap((name) => {
    const graph = buildGraphStructure(name, config, precision, attention);
    const values = inferShapes(graph, graphInputDims(name, config, RUN));
    return opSignatures(graph, values).map((s) => ({ ...s, graph: name }));
  });
}

for (const precision of ["fp16", "fp32"] as const) {
  for (const configFile of ["svd_xt.yaml", "svd_xt_image_decoder.yaml"]) {
    for (const attention of ATTENTION_FORMS) {
      Deno.test(`every op of the full-size ${configFile} ${precision} graphs with ${attention} attention has a CUDA kernel`, async () => {
        const rows = await cudaKernels();
        const all = await signatures(configFile, precision, attention);
        const missing = all.flatMap((s) => {
          const why = missingKernel(rows, s);
          return why
            ? [`${s.graph}: ${formatSignature(s)} (${s.nodes} nodes, e.g. ${s.example}): ${why}`]
            : [];
        });
        assert.deepEqual(missing, [], `No CUDA kernel for:\n${missing.join("\n")}`);
        // The listing is real: the UNet's attention, convolutions and centred norms are among the
        // signatures.
        const unetOps = new Set(all.filter((s) => s.graph === "unet").map((s) => s.op));
        const attentionOp = attention === "fused" ? "MultiHeadAttention" : "Softmax";
        for (const op of ["Conv", "MatMul", attentionOp, "LayerNormalization", "ReduceMean"]) {
          assert.ok(unetOps.has(op), `the UNet has ${op}`);
        }
        if (attention === "decomposed") assert.ok(!unetOps.has("MultiHeadAttention"));
      });
    }
  }
}

Deno.test("the fp16 UNet runs attention, convolutions and matrix products in float16", async () => {
  const config = await loadConfig(`${ROOT}configs/svd_xt.yaml`);
  const graph = buildGraphStructure("unet", config, "fp16");
  const values = inferShapes(graph, graphInputDims("unet", config, RUN));
  const heavy = graph.nodes.filter((n) =>
    ["Conv", "MatMul", "MultiHeadAttention"].includes(n.opType)
  );
  const float32 = heavy.filter((n) => values.get(n.outputs[0])!.type === "float32");
  // Only the first Linear of each sinusoidal embedding stays float32 (layers.ts): time_embed.0,
  // label_emb.0.0 and time_pos_embed.0 of each of the 16 spatial-video transformers.
  assert.deepEqual(
    float32.filter((n) =>
      !/(time_embed\.0|label_emb\.0\.0|time_pos_embed\.0)\.weight$/.test(n.inputs[1])
    ),
    [],
  );
  assert.equal(float32.length, 2 + 16);
  assert.ok(heavy.length - float32.length > 500);
});

Deno.test("a node without a registered CUDA kernel is reported with the reason", async () => {
  const rows = await cudaKernels();
  const g = new GraphBuilder("uncovered");
  // Range has no float16 kernel on CUDA.
  g.op("Range", [g.constHalf([0], []), g.constHalf([4], []), g.constHalf([1], [])]);
  const [range] = opSignatures(g, inferShapes(g, {}));
  assert.match(
    missingKernel(rows, range)!,
    /start is float16, T allows double, float, int16, int32, int64/,
  );
  const groupNorm: OpSignature = {
    domain: "ai.onnx",
    op: "GroupNormalization",
    opset: 21,
    inputs: ["float32", "float32", "float32"],
    outputs: ["float32"],
    nodes: 1,
    example: "GroupNormalization_1",
  };
  assert.equal(missingKernel(rows, groupNorm), "no kernel for this op at all");
  const attention23: OpSignature = { ...groupNorm, op: "Attention", outputs: ["float16"] };
  assert.equal(
    missingKernel(rows, attention23),
    "no kernel for opset 21 (registered: 24+, [23, 23])",
  );
});
