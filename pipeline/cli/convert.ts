/**
 * `deno task convert --config configs/svd_xt.yaml --checkpoint svd_xt.safetensors --out models/svd_xt
 * [--dtype fp16|fp32] [--attention fused|decomposed] [--force]`: writes SVD's four ONNX graphs and
 * model.json.
 *
 * `--checkpoint` takes an sgm single-file checkpoint, a diffusers-format folder, or `random[:SEED]`
 * (random weights of the real shapes, for benchmarks and tests).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../config/mod.ts";
import { convertCheckpoint } from "../convert/convert.ts";
import { GRAPH_FILES, type GraphName } from "../model_json/mod.ts";
import { openWeightSource } from "../convert/open_source.ts";
import { ATTENTION_FORMS } from "../networks/layers.ts";
import { ProgressBar } from "../weights/progress_bar.ts";
import { peakRssBytes } from "./peak_rss.ts";
import { runCli, UsageError } from "./run_cli.ts";

const USAGE = `Usage: deno task convert --config FILE --checkpoint PATH|random[:SEED] --out DIR
       [--dtype fp32|fp16] [--attention fused|decomposed] [--graphs unet,vae_decoder,...] [--force]

  --attention  fused (default): one MultiHeadAttention node per attention, for every provider;
               decomposed: MatMul-Softmax-MatMul, for GPUs whose fused kernel is wrong (the
               runtime says so when it refuses a model); holds all attention scores: small models`;

/** Runs the converter CLI with `args`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      checkpoint: { type: "string" },
      out: { type: "string" },
      dtype: { type: "string", default: "fp32" },
      attention: { type: "string", default: "fused" },
      graphs: { type: "string" },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  for (const flag of ["config", "checkpoint", "out"] as const) {
    if (!values[flag]) throw new UsageError(`--${flag} is required\n${USAGE}`);
  }
  if (values.dtype !== "fp32" && values.dtype !== "fp16") {
    throw new UsageError(`--dtype must be fp32 or fp16, got "${values.dtype}"`);
  }
  const attention = ATTENTION_FORMS.find((form) => form === values.attention);
  if (attention === undefined) {
    throw new UsageError(
      `--attention must be ${ATTENTION_FORMS.join(" or ")}, got "${values.attention}"`,
    );
  }
  const graphs = values.graphs?.split(",").map((g) => g.trim()) as GraphName[] | undefined;
  for (const g of graphs ?? []) {
    if (!(g in GRAPH_FILES)) {
      throw new UsageError(
        `--graphs: unknown graph "${g}" (allowed: ${Object.keys(GRAPH_FILES).join(", ")})`,
      );
    }
  }
  const config = await loadConfig(values.config!);
  const source = await openWeightSource(values.checkpoint!);
  const started = performance.now();
  const bar = new ProgressBar({ label: "convert" });
  try {
    const manifest = await convertCheckpoint({
      config,
      source,
      out: values.out!,
      precision: values.dtype,
      attention,
      force: values.force,
      graphs,
      onProgress: ({ graph, written, total }) => bar.update(written, total, graph),
    });
    bar.done();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    for (const [name, graph] of Object.entries(manifest.graphs)) {
      console.log(
        `${name}: ${graph.file} (${graph.dtype}, attention ${manifest.attention}, ${
          graph.parameters.toLocaleString("en")
        } parameters)`,
      );
    }
    const rss = (peakRssBytes() / 2 ** 30).toFixed(2);
    console.log(
      `Wrote ${values.out} from ${source.description} in ${seconds} s, peak RSS ${rss} GiB`,
    );
  } finally {
    source.close?.();
  }
}

if (import.meta.main) await runCli(main);
