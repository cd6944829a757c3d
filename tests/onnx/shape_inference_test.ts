/**
 * `inferShapes` against ONNX Runtime: every value of the four tiny graphs (fp32 and fp16) is made
 * a graph output declared with the inferred element type, so ORT's own type inference refuses the
 * model at load where a type is wrong, and the run's output dims are compared value by value.
 *
 * Run: deno test --allow-read --allow-write --allow-ffi --allow-env tests/onnx/shape_inference_test.ts
 */

import assert from "node:assert/strict";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { buildGraph } from "../../pipeline/convert/convert.ts";
import type { GraphName } from "../../pipeline/model_json/mod.ts";
import { ATTENTION_FORMS } from "../../pipeline/networks/layers.ts";
import { GraphBuilder } from "../../pipeline/onnx/graph.ts";
import { writeOnnxModel } from "../../pipeline/onnx/model_writer.ts";
import { inferShapes, ShapeInferenceError } from "../../pipeline/onnx/shape_inference.ts";
import { graphInputDims } from "../../pipeline/plan/graph_structure.ts";
import { OnnxSession } from "../../pipeline/runtime/onnx_session.ts";
import { tensor } from "../../pipeline/tensor.ts";
import { RandomWeights } from "../../pipeline/weights/random_weights.ts";
import { fixturePath } from "../_fixtures.ts";

const RUN = { frames: 3, width: 128, height: 64, decodingT: 2 };
const GRAPHS: GraphName[] = ["image_encoder", "vae_encoder", "unet", "vae_decoder"];
/** Each precision with each attention form (decomposed adds Softmax and batched MatMuls). */
const PRECISION_ATTENTION = (["fp32", "fp16"] as const).flatMap((precision) =>
  ATTENTION_FORMS.map((attention) => [precision, attention] as const)
);

for (const [precision, attention] of PRECISION_ATTENTION) {
  for (const name of GRAPHS) {
    Deno.test(`inferShapes() gives ORT's type and dims for every value of the tiny ${name} (${precision}, ${attention} attention)`, async () => {
      const config = await loadConfig(fixturePath("config.yaml"));
      const { graph } = buildGraph(name, config, new RandomWeights(1), precision, attention);
      const inputDims = graphInputDims(name, config, RUN);
      const values = inferShapes(graph, inputDims);
      const declared = new Set(graph.outputs.map((o) => o.name));
      const probed: string[] = [];
      for (const node of graph.nodes) {
        for (const output of node.outputs) {
          if (declared.has(output)) continue;
          const info = values.get(output)!;
          graph.outputs.push({
            name: output,
            type: info.type,
            dims: info.dims.map((_, i) => `${output}_d${i}`),
          });
          probed.push(output);
        }
      }
      const dir = await Deno.makeTempDir({ prefix: "shape_inference_test_" });
      try {
        await writeOnnxModel(graph, `${dir}/m.onnx`);
        // Types: ORT checks each declared output type against its own inference at load.
        const session = await OnnxSession.create(`${dir}/m.onnx`, { optimization: "disabled" });
        try {
          const feeds = Object.fromEntries(
            Object.entries(inputDims).map(([input, dims]) => [input, tensor(dims)]),
          );
          const results = await session.run(feeds);
          let compared = 0;
          for (const name of [...declared, ...probed]) {
            assert.deepEqual(results[name].dims, values.get(name)!.dims, `dims of "${name}"`);
            compared++;
          }
          assert.equal(compared, graph.outputs.length);
          assert.ok(compared > 20);
        } finally {
          await session.release();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("ORT refuses a model whose declared output type disagrees (the check above can fail)", async () => {
  const g = new GraphBuilder("wrong_type");
  const x = g.input("x", "float32", ["N"]);
  g.outputs.push({ name: g.op("Sigmoid", [x]), type: "float16", dims: ["N"] });
  const dir = await Deno.makeTempDir({ prefix: "shape_inference_test_" });
  try {
    await writeOnnxModel(g, `${dir}/m.onnx`);
    await assert.rejects(() => OnnxSession.create(`${dir}/m.onnx`), /type|Type/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inferShapes() names the node and op it has no rule for", () => {
  const g = new GraphBuilder("unknown");
  const x = g.input("x", "float32", [2]);
  g.op("Hardmax", [x]);
  assert.throws(() => inferShapes(g, { x: [2] }), (error: unknown) => {
    assert.ok(error instanceof ShapeInferenceError);
    assert.match(error.message, /Hardmax_0 \(Hardmax\): no shape rule for ai\.onnx\.Hardmax/);
    return true;
  });
});

Deno.test("inferShapes() refuses input dims that contradict a fixed dim", () => {
  const g = new GraphBuilder("fixed");
  g.input("x", "float32", ["N", 8]);
  assert.throws(() => inferShapes(g, { x: [2, 9] }), /Input "x" has dim 1 = 8, got dims \[2,9\]/);
});
