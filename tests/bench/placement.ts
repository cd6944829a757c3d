/**
 * Node placement report: which execution provider ORT assigns each node of each graph to, and
 * whether any compute-heavy node (Conv, MatMul/Gemm, attention, normalisation, softmax) fell back
 * to the CPU. One JSON line per graph; exits with status 1 when any did.
 *
 * Usage: deno task bench placement [--provider webgpu|cuda|cpu] [--model DIR]
 *        [--attention fused|decomposed] [--dtype fp32|fp16]
 *
 * Without `--model`, the tiny fixture model is converted into a temporary folder (with the given
 * attention form, default fused, and precision, default fp32). WebGPU over SwiftShader (no GPU) needs
 * `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json` in the environment.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../../pipeline/config/mod.ts";
import { convertCheckpoint } from "../../pipeline/convert/convert.ts";
import { ATTENTION_FORMS } from "../../pipeline/networks/layers.ts";
import { readModelDirectory } from "../../pipeline/runtime/model_dir.ts";
import type { Provider } from "../../pipeline/runtime/onnx_session.ts";
import { CheckpointWeights } from "../../pipeline/weights/checkpoint_weights.ts";
import { computeOnCpu, readNodePlacement, unexpectedOnCpu } from "./node_placement.ts";

const FIXTURES = new URL("../fixtures/tiny/", import.meta.url).pathname;

/** Runs the report. */
export async function placement(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      provider: { type: "string", default: "webgpu" },
      model: { type: "string" },
      attention: { type: "string", default: "fused" },
      dtype: { type: "string", default: "fp32" },
    },
  });
  const provider = values.provider as Provider;
  if (!["cpu", "cuda", "webgpu"].includes(provider)) {
    throw new RangeError(`--provider must be cpu, cuda or webgpu, got "${values.provider}"`);
  }
  const attention = ATTENTION_FORMS.find((form) => form === values.attention);
  if (!attention) {
    throw new RangeError(`--attention must be fused or decomposed, got "${values.attention}"`);
  }
  if (values.dtype !== "fp32" && values.dtype !== "fp16") {
    throw new RangeError(`--dtype must be fp32 or fp16, got "${values.dtype}"`);
  }
  const temporary = values.model ? undefined : await Deno.makeTempDir({ prefix: "placement_" });
  try {
    const dir = values.model ?? `${temporary}/tiny`;
    if (!values.model) {
      using source = await CheckpointWeights.open([`${FIXTURES}weights.safetensors`]);
      const config = await loadConfig(`${FIXTURES}config.yaml`);
      await convertCheckpoint({
        config,
        source,
        out: dir,
        attention,
        precision: values.dtype,
      });
    }
    const model = await readModelDirectory(dir);
    let failed = false;
    for (const graph of Object.values(model.graphs)) {
      const found = await readNodePlacement(graph.path, provider);
      const heavy = computeOnCpu(found);
      failed ||= provider !== "cpu" && heavy.length > 0;
      const nodes = Object.fromEntries(
        Object.entries(found.byProvider).map(([ep, ops]) => [
          ep,
          Object.values(ops).reduce((a, b) => a + b, 0),
        ]),
      );
      console.log(JSON.stringify({
        graph: graph.name,
        provider,
        attention: model.manifest.attention,
        dtype: graph.manifest.dtype,
        nodes,
        cpuOps: found.byProvider.CPUExecutionProvider ?? {},
        computeOnCpu: provider === "cpu" ? [] : heavy,
        unexpectedOnCpu: provider === "cpu" ? [] : unexpectedOnCpu(found),
      }));
    }
    if (failed) {
      console.error(`Compute-heavy nodes fell back to the CPU under ${provider} (see above)`);
      Deno.exitCode = 1;
    }
  } finally {
    if (temporary) await Deno.remove(temporary, { recursive: true });
  }
}
